import { deepStrictEqual, strictEqual } from "node:assert/strict";
import { parseCommand, redactCommand } from "../../../lib/smtp/command.ts";

Deno.test("parseCommand: verbs are case-insensitive and end at the first SP", () => {
  deepStrictEqual(parseCommand("mail FROM:<a@b>"), { verb: "MAIL", args: "FROM:<a@b>" });
  deepStrictEqual(parseCommand("StartTLS"), { verb: "STARTTLS", args: "" });
  deepStrictEqual(parseCommand("XFORWARD  ADDR=1.2.3.4 "), {
    verb: "XFORWARD",
    args: "ADDR=1.2.3.4",
  });
  deepStrictEqual(parseCommand("RSET "), { verb: "RSET", args: "" });
});

Deno.test("parseCommand: unknown or malformed verbs are null", () => {
  for (const line of ["", "WIZ", "MAILFROM:<a@b>", " NOOP", "NOOP\tx", "HELO\r"]) {
    strictEqual(parseCommand(line), null, JSON.stringify(line));
  }
});

Deno.test("parseCommand: a verb that Unicode case mapping turns into one is unknown", () => {
  // ſ → S, ı → I, ﬆ → ST under toUpperCase: smuggled past a byte-matching filter.
  for (
    const line of ["\u017fTARTTLS", "\ufb06ARTTLS", "R\u017fet", "QU\u0131T", "XCL\u0131ENT A=1"]
  ) {
    strictEqual(parseCommand(line), null, JSON.stringify(line));
  }
});

Deno.test("redactCommand hides an AUTH initial response only", () => {
  strictEqual(
    redactCommand("AUTH PLAIN AGJvYgBzZWNyZXQ=", parseCommand("AUTH PLAIN AGJvYgBzZWNyZXQ=")),
    "AUTH PLAIN ***",
  );
  strictEqual(redactCommand("auth login", parseCommand("auth login")), "auth login");
  strictEqual(redactCommand("NOOP x", parseCommand("NOOP x")), "NOOP x");
  strictEqual(redactCommand("WIZ", null), "WIZ");
  // A tab makes it an unknown command; the secret is hidden all the same.
  strictEqual(redactCommand("AUTH\tPLAIN AHUAUFd0YWI0", null), "AUTH PLAIN ***");
  strictEqual(redactCommand("auth \t login  dXNlcg==", null), "auth login ***");
  strictEqual(redactCommand("AUTHX PLAIN abc", null), "AUTHX PLAIN abc");
  // Near misses that may still carry credentials hide everything after AUTH.
  for (
    const line of [" AUTH PLAIN AGJvYg==", "AUTH:PLAIN dXNlcg", "AUTH=PLAIN x", "AUTH\vPLAIN x"]
  ) {
    strictEqual(redactCommand(line, null), "AUTH ***", JSON.stringify(line));
  }
  // Malformed: no word that could be a mechanism name shows (it may be a secret).
  strictEqual(
    redactCommand("AUTH PLAIN=AGJvYgBwdzE=", parseCommand("AUTH PLAIN=AGJvYgBwdzE=")),
    "AUTH ***",
  );
  strictEqual(redactCommand("AUTH =AGJvYgBwdzE=", parseCommand("AUTH =AGJvYgBwdzE=")), "AUTH ***");
  strictEqual(
    redactCommand("AUTH PLAIN:AGJv x", parseCommand("AUTH PLAIN:AGJv x")),
    "AUTH *** ***",
  );
  strictEqual(redactCommand("AUTH", parseCommand("AUTH")), "AUTH");
  // After an AUTH, a line that is no command is the client's SASL response.
  strictEqual(redactCommand("UGlwZVNlY3JldDQ=", null, true), "***");
  strictEqual(redactCommand("NOOP", parseCommand("NOOP"), true), "NOOP");
});
