import { deepStrictEqual, strictEqual } from "node:assert/strict";
import { Session } from "../../../lib/smtp/session.ts";
import { ehloReply, formatReply } from "../../../lib/smtp/reply.ts";
import { encodeBase64 } from "../../../lib/smtp/sasl.ts";
import type { SessionConfig, SessionEvent } from "../../../lib/smtp/events.ts";
import { bytes, testConfig, tr } from "../../helpers/feed.ts";

const DECODER = new TextDecoder();
function ehlo(config: SessionConfig = testConfig(), tls = false): string {
  return DECODER.decode(formatReply(ehloReply(config, "c.test", { tls }))).replace(/\r\n$/, "");
}
const HI = "EHLO c.test\r\n";
const AUTH_OK = "235 2.7.0 Authentication successful";
const b64 = encodeBase64;

Deno.test("Session STARTTLS: 220, reset to the connected state, TLS in the envelope", () => {
  const out = tr(HI + "MAIL FROM:<a@b>\r\nRSET\r\nSTARTTLS\r\n", {
    replies: [ehlo(), "250 2.1.0 Ok", "250 2.0.0 Ok", "220 2.0.0 Ready to start TLS"],
  });
  strictEqual(out.events.at(-1)!.type, "starttls");
  const after = tr(HI + "STARTTLS\r\n", { replies: [ehlo(), "220 2.0.0 Ready to start TLS"] });
  const session = after.session;
  session.receive(bytes("MAIL FROM:<a@b>\r\n" + HI + "MAIL FROM:<a@b>\r\n"));
  const replies: string[] = [];
  for (let i = 0; i < 20; i++) {
    const ev = session.next();
    if (ev.type === "need-data") break;
    if (ev.type === "reply") replies.push(DECODER.decode(ev.bytes).trimEnd());
    if (ev.type === "helo") session.resumeHelo(null);
    if (ev.type === "mail") session.resumeMail(null);
  }
  deepStrictEqual(replies, [
    "503 5.5.1 Error: send HELO/EHLO first",
    ehlo(testConfig(), true),
    "250 2.1.0 Ok",
  ]);
});

Deno.test("Session STARTTLS: commands pipelined after it are discarded (CVE-2011-0411)", () => {
  const session = new Session(testConfig());
  session.receive(bytes(HI + "STARTTLS\r\nMAIL FROM:<evil@x>\r\nRCPT TO:<v@x>\r\n"));
  const events: SessionEvent[] = [];
  for (let i = 0; i < 10; i++) {
    const ev = session.next();
    events.push(ev);
    if (ev.type === "helo") session.resumeHelo(null);
    if (ev.type === "starttls") break;
  }
  strictEqual(session.next().type, "paused");
  strictEqual(DECODER.decode(session.pending()), "MAIL FROM:<evil@x>\r\nRCPT TO:<v@x>\r\n");
  session.resumeTls();
  strictEqual(session.pending().length, 0);
  strictEqual(session.next().type, "need-data");
  strictEqual(events.filter((e) => e.type === "mail").length, 0);
});

Deno.test("Session STARTTLS refusals", () => {
  tr("STARTTLS x\r\n" + HI + "MAIL FROM:<a@b>\r\nSTARTTLS\r\n", {
    replies: [
      "501 5.5.4 Syntax: STARTTLS",
      ehlo(),
      "250 2.1.0 Ok",
      "503 5.5.1 Error: MAIL transaction in progress",
    ],
  });
  tr("STARTTLS\r\n", { replies: ["502 5.5.1 Error: command not available"] }, {
    config: testConfig({ starttls: false }),
  });
  tr("STARTTLS\r\n", { replies: ["503 5.5.1 Error: TLS already active"] }, {
    config: testConfig({ tlsActive: true }),
  });
  // An implicit-TLS listener offers no STARTTLS; TLS is active all the same.
  tr("STARTTLS\r\n", { replies: ["503 5.5.1 Error: TLS already active"] }, {
    config: testConfig({ starttls: false, tlsActive: true }),
  });
});

Deno.test("Session --require-tls and --require-auth", () => {
  const config = testConfig({ requireTls: true });
  tr(HI + "MAIL FROM:<a@b>\r\nAUTH PLAIN\r\n", {
    replies: [
      ehlo(config),
      "530 5.7.0 Must issue a STARTTLS command first",
      "530 5.7.0 Must issue a STARTTLS command first",
    ],
  }, { config });
  const tls = testConfig({ requireTls: true, tlsActive: true, starttls: false });
  tr(HI + "MAIL FROM:<a@b>\r\n", { replies: [ehlo(tls, true), "250 2.1.0 Ok"] }, { config: tls });
  const auth = testConfig({ requireAuth: true });
  tr(HI + `MAIL FROM:<a@b>\r\nAUTH PLAIN ${b64("\0u\0p")}\r\nMAIL FROM:<a@b>\r\n`, {
    replies: [ehlo(auth), "530 5.7.0 Authentication required", AUTH_OK, "250 2.1.0 Ok"],
  }, { config: auth });
});

Deno.test("Session AUTH PLAIN, LOGIN, CRAM-MD5 to the auth event", () => {
  const out = tr(HI + "AUTH PLAIN\r\n" + b64("\0bob\0pw") + "\r\n", {
    replies: [ehlo(), "334 ", AUTH_OK],
  });
  const auth = out.events.find((e) => e.type === "auth");
  deepStrictEqual(auth, { type: "auth", mechanism: "PLAIN", username: "bob", password: "pw" });
  tr(HI + "auth login\r\n" + b64("bob") + "\r\n" + b64("pw") + "\r\n", {
    replies: [ehlo(), "334 VXNlcm5hbWU6", "334 UGFzc3dvcmQ6", AUTH_OK],
  });
  const cram = tr(HI + "AUTH CRAM-MD5\r\n" + b64("bob " + "a".repeat(32)) + "\r\n", {
    replies: [ehlo(), `334 ${b64("<1896.697170952@mx.test>")}`, AUTH_OK],
  });
  deepStrictEqual(cram.events.find((e) => e.type === "auth"), {
    type: "auth",
    mechanism: "CRAM-MD5",
    username: "bob",
    challenge: "<1896.697170952@mx.test>",
    digest: "a".repeat(32),
  });
});

Deno.test("Session AUTH: the envelope records the mechanism and user", () => {
  const out = tr(
    HI + `AUTH PLAIN ${b64("\0bob\0pw")}\r\nMAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\n.\r\n`,
    {
      replies: [
        ehlo(),
        AUTH_OK,
        "250 2.1.0 Ok",
        "250 2.1.5 Ok",
        "354 End data with <CR><LF>.<CR><LF>",
        "250 2.0.0 Ok: queued as Q1",
      ],
    },
  );
  deepStrictEqual(out.messages[0]!.envelope.auth, { mechanism: "PLAIN", username: "bob" });
});

Deno.test("Session AUTH refusals", () => {
  const cancel = "501 5.0.0 Authentication cancelled";
  tr(
    "AUTH PLAIN\r\n" + HI +
      "AUTH XOAUTH2\r\nAUTH\r\nAUTH PLAIN !!\r\nAUTH LOGIN\r\n*\r\nAUTH PLAIN\r\nNOOP\r\n" +
      "MAIL FROM:<a@b>\r\nAUTH PLAIN\r\n",
    {
      replies: [
        "503 5.5.1 Error: send HELO/EHLO first",
        ehlo(),
        "504 5.5.4 Unrecognized authentication type",
        "501 5.5.4 Syntax: AUTH mechanism [initial-response]",
        "501 5.5.2 Cannot decode response",
        "334 VXNlcm5hbWU6",
        cancel,
        "334 ",
        "501 5.5.2 Malformed authentication data",
        "250 2.1.0 Ok",
        "503 5.5.1 Error: MAIL transaction in progress",
      ],
    },
  );
  const policy = {
    auth: () => ({ code: 535, enhanced: "5.7.8", lines: ["Authentication credentials invalid"] }),
  };
  tr(HI + `AUTH PLAIN ${b64("\0u\0p")}\r\nAUTH PLAIN ${b64("\0u\0p")}\r\n`, {
    replies: [
      ehlo(),
      "535 5.7.8 Authentication credentials invalid",
      "535 5.7.8 Authentication credentials invalid",
    ],
  }, { policy });
  tr(HI + `AUTH PLAIN ${b64("\0u\0p")}\r\nAUTH PLAIN ${b64("\0u\0p")}\r\n`, {
    replies: [ehlo(), AUTH_OK, "503 5.5.1 Error: already authenticated"],
  });
  const only = testConfig({ authMechanisms: ["PLAIN"] });
  tr(HI + "AUTH CRAM-MD5\r\n", {
    replies: [ehlo(only), "504 5.5.4 Unrecognized authentication type"],
  }, {
    config: only,
  });
  // ı (U+0131) upper-cases to I in Unicode, never in SMTP.
  tr(HI + `AUTH PLA\u0131N ${b64("\0u\0p")}\r\n`, {
    replies: [ehlo(), "504 5.5.4 Unrecognized authentication type"],
  });
});

Deno.test("Session AUTH: lines up to 12288 octets (RFC 4954 §4), longer ones 500 5.5.6", () => {
  // A 5344-octet response: over the 4096 of a command line.
  const long = b64("\0bob\0" + "p".repeat(4003));
  strictEqual(long.length, 5344);
  const out = tr(HI + `AUTH PLAIN\r\n${long}\r\n`, { replies: [ehlo(), "334 ", AUTH_OK] });
  strictEqual(out.events.find((e) => e.type === "auth")?.type, "auth");
  tr(HI + `AUTH PLAIN ${long}\r\n`, { replies: [ehlo(), AUTH_OK] });
  const tooLong = "500 5.5.6 Authentication exchange line is too long";
  // The exchange is over: the rest of the line is skipped, the next line is a command.
  tr(HI + `AUTH LOGIN\r\n${"QUIT".repeat(3073)}\r\nNOOP\r\n`, {
    replies: [ehlo(), "334 VXNlcm5hbWU6", tooLong, "250 2.0.0 Ok"],
  });
  tr(HI + `AUTH PLAIN ${"QUIT".repeat(3072)}\r\nNOOP\r\n`, {
    replies: [ehlo(), tooLong, "250 2.0.0 Ok"],
  });
  // Other commands keep the 4096-octet limit.
  tr(HI + `NOOP ${"x".repeat(4092)}\r\n`, {
    replies: [ehlo(), "500 5.5.2 Error: line too long"],
  });
});

Deno.test("Session AUTH: a SASL response is never parsed as a command", () => {
  // "QUIT" is valid base64: here it is a user name and a password.
  const out = tr(HI + "AUTH LOGIN\r\nQUIT\r\nQUIT\r\n", {
    replies: [ehlo(), "334 VXNlcm5hbWU6", "334 UGFzc3dvcmQ6", AUTH_OK],
  });
  strictEqual(out.closed, false);
});

Deno.test("Session XCLIENT and XFORWARD need --trust-proxy", () => {
  tr("XCLIENT NAME=x\r\nXFORWARD NAME=x\r\n", {
    replies: [
      "550 5.7.0 Error: insufficient authorization",
      "550 5.7.0 Error: insufficient authorization",
    ],
  });
});

Deno.test("Session XCLIENT restarts the session with a new greeting", () => {
  const config = testConfig({ trustedProxy: true });
  const out = tr(
    HI +
      `AUTH PLAIN ${
        b64("\0u\0p")
      }\r\nXCLIENT NAME=spike.test ADDR=192.0.2.1 LOGIN=joe HELO=spike\r\n` +
      "MAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\n.\r\n",
    {
      replies: [
        ehlo(config),
        AUTH_OK,
        "220 mx.test ESMTP smtpd",
        "250 2.1.0 Ok",
        "250 2.1.5 Ok",
        "354 End data with <CR><LF>.<CR><LF>",
        "250 2.0.0 Ok: queued as Q1",
      ],
    },
    { config },
  );
  const attributes = { NAME: "spike.test", ADDR: "192.0.2.1", LOGIN: "joe", HELO: "spike" };
  deepStrictEqual(out.events.find((e) => e.type === "xclient"), { type: "xclient", attributes });
  const envelope = out.messages[0]!.envelope;
  deepStrictEqual([envelope.helo, envelope.auth, envelope.esmtp, envelope.xclient], [
    "spike",
    { mechanism: "XCLIENT", username: "joe" },
    false,
    attributes,
  ]);
  tr(
    "XCLIENT\r\nXCLIENT FOO=1\r\nXCLIENT NAME=a+zz\r\n" + HI +
      "MAIL FROM:<a@b>\r\nXCLIENT NAME=x\r\n",
    {
      replies: [
        "501 5.5.4 Syntax: XCLIENT NAME=... ADDR=... PORT=... PROTO=... HELO=... LOGIN=...",
        "501 5.5.4 Bad XCLIENT attribute: FOO=1",
        "501 5.5.4 Bad XCLIENT attribute: NAME=a+zz",
        ehlo(config),
        "250 2.1.0 Ok",
        "503 5.5.1 Error: MAIL transaction in progress",
      ],
    },
    { config },
  );
});

Deno.test("Session XCLIENT LOGIN authenticates the session; [UNAVAILABLE] clears it", () => {
  const config = testConfig({ trustedProxy: true, requireAuth: true });
  const tx = "MAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\n.\r\n";
  const go = ["250 2.1.0 Ok", "250 2.1.5 Ok", "354 End data with <CR><LF>.<CR><LF>"];
  const out = tr(
    "XCLIENT LOGIN=joe+40x HELO=h.test\r\n" + tx +
      `AUTH PLAIN ${b64("\0u\0p")}\r\nXCLIENT NAME=n.test\r\n` + tx +
      "XCLIENT LOGIN=[UNAVAILABLE]\r\nMAIL FROM:<a@b>\r\n" +
      `AUTH PLAIN ${b64("\0u\0p")}\r\nMAIL FROM:<a@b>\r\n`,
    {
      replies: [
        "220 mx.test ESMTP smtpd",
        ...go,
        "250 2.0.0 Ok: queued as Q1",
        // As for AUTH twice (RFC 4954 §4).
        "503 5.5.1 Error: already authenticated",
        // A later XCLIENT without LOGIN keeps the one in force, as Postfix keeps attributes.
        "220 mx.test ESMTP smtpd",
        ...go,
        "250 2.0.0 Ok: queued as Q2",
        "220 mx.test ESMTP smtpd",
        "530 5.7.0 Authentication required",
        AUTH_OK,
        "250 2.1.0 Ok",
      ],
    },
    { config },
  );
  const xclient = { mechanism: "XCLIENT", username: "joe@x" };
  deepStrictEqual(out.messages.map((m) => m.envelope.auth), [xclient, xclient]);
});

Deno.test("Session XCLIENT PROTO sets the protocol base; bad values get 501 5.5.4", () => {
  const config = testConfig({ trustedProxy: true });
  const tx = "MAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\n.\r\n";
  const go = ["250 2.1.0 Ok", "250 2.1.5 Ok", "354 End data with <CR><LF>.<CR><LF>"];
  const out = tr(
    "XCLIENT PROTO=esmtp HELO=h.test\r\n" + tx + "XCLIENT PROTO=SMTP\r\n" + tx +
      "XCLIENT PROTO=ESMTP\r\nHELO again\r\n" + tx +
      "XCLIENT PROTO=ESMTPA\r\nXCLIENT ADDR=192.0.2.300\r\nXCLIENT PORT=70000\r\n" +
      "XFORWARD ADDR=nowhere\r\n",
    {
      replies: [
        "220 mx.test ESMTP smtpd",
        ...go,
        "250 2.0.0 Ok: queued as Q1",
        "220 mx.test ESMTP smtpd",
        ...go,
        "250 2.0.0 Ok: queued as Q2",
        "220 mx.test ESMTP smtpd",
        "250 mx.test",
        ...go,
        "250 2.0.0 Ok: queued as Q3",
        "501 5.5.4 Bad XCLIENT attribute value: PROTO=ESMTPA",
        "501 5.5.4 Bad XCLIENT attribute value: ADDR=192.0.2.300",
        "501 5.5.4 Bad XCLIENT attribute value: PORT=70000",
        "501 5.5.4 Bad XFORWARD attribute value: ADDR=nowhere",
      ],
    },
    { config },
  );
  // A later HELO/EHLO sets the protocol as usual.
  deepStrictEqual(out.messages.map((m) => m.envelope.esmtp), [true, false, false]);
});

Deno.test("Session XFORWARD accumulates into the envelope and clears after the transaction", () => {
  const config = testConfig({ trustedProxy: true });
  const tx = "MAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\n.\r\n";
  const go = ["250 2.1.0 Ok", "250 2.1.5 Ok", "354 End data with <CR><LF>.<CR><LF>"];
  const out = tr(
    HI +
      "XFORWARD NAME=h.test ADDR=192.0.2.9\r\nXFORWARD ident=x+2By SOURCE=REMOTE ADDR=[UNAVAILABLE]\r\n" +
      tx + tx + "XFORWARD BAD=1\r\n",
    {
      replies: [
        ehlo(config),
        "250 2.0.0 Ok",
        "250 2.0.0 Ok",
        ...go,
        "250 2.0.0 Ok: queued as Q1",
        ...go,
        "250 2.0.0 Ok: queued as Q2",
        "501 5.5.4 Bad XFORWARD attribute: BAD=1",
      ],
    },
    { config },
  );
  deepStrictEqual(out.messages[0]!.envelope.xforward, {
    NAME: "h.test",
    IDENT: "x+y",
    SOURCE: "REMOTE",
  });
  deepStrictEqual(out.messages[1]!.envelope.xforward, {});
});
