import { deepStrictEqual, strictEqual } from "node:assert/strict";
import {
  decodeXtext,
  isMailbox,
  isRefusal,
  isXtext,
  parseAttributes,
  parseMailArgs,
  parseRcptArgs,
  splitPath,
} from "../../../lib/smtp/grammar.ts";
import type { Reply } from "../../../lib/smtp/events.ts";

function refusal(value: object | Reply): string {
  return isRefusal(value) ? `${value.code} ${value.enhanced} ${value.lines[0]}` : "accepted";
}

Deno.test("isMailbox accepts RFC 5321 mailboxes", () => {
  for (
    const m of [
      "a@b",
      "first.last@example.com",
      "x+tag@sub-domain.example.org",
      '"quoted string"@example.com',
      '"a\\"b"@example.com',
      "user@[192.0.2.1]",
      "user@[IPv6:2001:db8::1]",
      "user@[IPv6:::ffff:192.0.2.1]",
      "user@[IPv6:1:2:3:4:5:6:7:8]",
      "user@[IPv6:1:2:3:4:5:6::]",
      "user@[IPv6:1:2:3:4::1.2.3.4]",
      "user@[tag:stuff]",
      "üser@exämple.com",
    ]
  ) strictEqual(isMailbox(m), true, m);
});

Deno.test("isMailbox refuses malformed mailboxes", () => {
  for (
    const m of [
      "",
      "a",
      "@b",
      "a@",
      "a..b@c",
      ".a@b",
      "a.@b",
      "a b@c",
      "a@-b",
      "a@b-",
      "a@b..c",
      "a@[300.1.1.1]",
      "a@[IPv6:1:2:3]",
      "a@[IPv6:1::2::3]",
      // RFC 5321 §4.1.3: "::" stands for 2 groups at least.
      "a@[IPv6:1:2:3:4:5:6::7]",
      "a@[IPv6:1:2:3:4:5:6:7::]",
      "a@[IPv6:1:2:3:4:5::1.2.3.4]",
      'a"b@c',
      "a@b@c",
    ]
  ) strictEqual(isMailbox(m), false, m);
});

Deno.test("splitPath tolerates spaces after the colon and needs brackets", () => {
  deepStrictEqual(splitPath("from: <a@b> SIZE=1", "FROM"), { path: "a@b", rest: " SIZE=1" });
  deepStrictEqual(splitPath('FROM:<"x>y"@b>', "FROM"), { path: '"x>y"@b', rest: "" });
  strictEqual(splitPath("FROM:a@b", "FROM"), null);
  strictEqual(splitPath("FROM <a@b>", "FROM"), null);
  strictEqual(splitPath("FROM:<a@b>x", "FROM"), null);
  strictEqual(splitPath("TO:<a@b", "TO"), null);
});

Deno.test("parseMailArgs records names upper case, keyword values too, others as sent", () => {
  deepStrictEqual(parseMailArgs("FROM:<a@b.test> size=100 body=8bitmime SMTPUTF8", 1000), {
    reversePath: "a@b.test",
    params: { SIZE: "100", BODY: "8BITMIME", SMTPUTF8: true },
    smtputf8: true,
    body: "8BITMIME",
  });
  // Leading zeros: 16 characters, the value 1 (RFC 1870 §6 allows 20 digits).
  deepStrictEqual(parseMailArgs("FROM:<a@b.test> SIZE=0000000000000001", 1000), {
    reversePath: "a@b.test",
    params: { SIZE: "0000000000000001" },
    smtputf8: false,
    body: "",
  });
  deepStrictEqual(parseMailArgs("FROM:<>  RET=hdrs ENVID=QQ+2B1 AUTH=<>", 10), {
    reversePath: "",
    params: { RET: "HDRS", ENVID: "QQ+2B1", AUTH: "<>" },
    smtputf8: false,
    body: "",
  });
  strictEqual(
    (parseMailArgs("FROM:<@a.test,@b.test:u@d.test>", 10) as { reversePath: string }).reversePath,
    "u@d.test",
  );
});

Deno.test("parseMailArgs refusals", () => {
  const cases: [string, string][] = [
    ["FROM:a@b", "501 5.5.4 Syntax: MAIL FROM:<address>"],
    ["TO:<a@b>", "501 5.5.4 Syntax: MAIL FROM:<address>"],
    ["FROM:<a b@c>", "501 5.5.4 Bad sender address syntax"],
    // A source route to no mailbox is no null path (RFC 5321 §4.1.2).
    ["FROM:<@x.test:>", "501 5.5.4 Bad sender address syntax"],
    ["FROM:<@x.test,@z.test:> SMTPUTF8", "501 5.5.4 Bad sender address syntax"],
    ["FROM:<a@b> FOO=1", "555 5.5.4 Unsupported option: FOO"],
    ["FROM:<a@b> SIZE=x", "501 5.5.4 Bad SIZE parameter syntax"],
    ["FROM:<a@b> SIZE", "501 5.5.4 Bad SIZE parameter syntax"],
    ["FROM:<a@b> SIZE=1 SIZE=2", "501 5.5.4 Duplicate SIZE parameter"],
    ["FROM:<a@b> BODY=9BIT", "501 5.5.4 Bad BODY parameter syntax"],
    ["FROM:<a@b> SMTPUTF8=yes", "501 5.5.4 Bad SMTPUTF8 parameter syntax"],
    ["FROM:<a@b> RET=ALL", "501 5.5.4 Bad RET parameter syntax"],
    ["FROM:<a@b> ENVID=a+zz", "501 5.5.4 Bad ENVID parameter syntax"],
    ["FROM:<a@b> =x", "501 5.5.4 Syntax: parameters must be KEYWORD[=VALUE]"],
    ["FROM:<a@b> SIZE=1001", "552 5.3.4 Message size exceeds fixed limit"],
    // RFC 1870 §6: size-value = 1*20DIGIT; 20 nines is too big, 21 digits a syntax error.
    ["FROM:<a@b> SIZE=99999999999999999999", "552 5.3.4 Message size exceeds fixed limit"],
    ["FROM:<a@b> SIZE=000000000000000000001", "501 5.5.4 Bad SIZE parameter syntax"],
    ["FROM:<ü@b>", "553 5.6.7 Must declare SMTPUTF8 to send unicode address"],
  ];
  for (const [args, expected] of cases) {
    strictEqual(refusal(parseMailArgs(args, 1000)), expected, args);
  }
});

Deno.test("parseRcptArgs: postmaster, source routes, DSN params", () => {
  deepStrictEqual(parseRcptArgs("TO:<PostMaster>", false), {
    forwardPath: "PostMaster",
    params: {},
  });
  deepStrictEqual(parseRcptArgs("to:<@x.test,@y.test:u@d.test> NOTIFY=success,DELAY", false), {
    forwardPath: "u@d.test",
    params: { NOTIFY: "SUCCESS,DELAY" },
  });
  deepStrictEqual(parseRcptArgs("TO:<b@c> ORCPT=rfc822;b+40c", false), {
    forwardPath: "b@c",
    params: { ORCPT: "rfc822;b+40c" },
  });
  deepStrictEqual(parseRcptArgs("TO:<ü@c>", true), { forwardPath: "ü@c", params: {} });
});

Deno.test("parseRcptArgs refusals", () => {
  const cases: [string, string][] = [
    ["TO:b@c", "501 5.5.4 Syntax: RCPT TO:<address>"],
    ["TO:<>", "501 5.5.4 Bad recipient address syntax"],
    ["TO:<postmaster@>", "501 5.5.4 Bad recipient address syntax"],
    ["TO:<b@c> NOTIFY=NEVER,SUCCESS", "501 5.5.4 Bad NOTIFY parameter syntax"],
    ["TO:<b@c> ORCPT=rfc822", "501 5.5.4 Bad ORCPT parameter syntax"],
    ["TO:<b@c> SIZE=1", "555 5.5.4 Unsupported option: SIZE"],
    ["TO:<ü@c>", "553 5.6.7 Must declare SMTPUTF8 to send unicode address"],
  ];
  for (const [args, expected] of cases) {
    strictEqual(refusal(parseRcptArgs(args, false)), expected, args);
  }
});

Deno.test("xtext checks and decoding (RFC 3461 §4)", () => {
  strictEqual(isXtext("abc+2B+3D"), true);
  strictEqual(isXtext("a=b"), false);
  strictEqual(isXtext("a+b"), false);
  strictEqual(isXtext("ü"), false);
  strictEqual(isXtext("ü", true), true);
  strictEqual(decodeXtext("a+2Bb+3dc"), "a+b=c");
  strictEqual(decodeXtext("a+"), null);
});

Deno.test("xtext octets are UTF-8: +C3+A9 is the same text as a raw é", () => {
  strictEqual(decodeXtext("caf+C3+A9.example"), "café.example");
  strictEqual(decodeXtext("caf\u00e9+2B+C3+BC"), "café+ü");
  strictEqual(decodeXtext("+F0+9F+93+A7"), "\u{1F4E7}");
  strictEqual(decodeXtext("+E9"), null); // Latin-1, not UTF-8
  strictEqual(decodeXtext("+C3"), null); // truncated sequence
  strictEqual(decodeXtext("+C0+AF"), null); // overlong
});

Deno.test("parseAttributes decodes xtext and drops [UNAVAILABLE]", () => {
  deepStrictEqual(
    parseAttributes("XCLIENT", "name=spike.test ADDR=[UNAVAILABLE] HELO=a+20b", [
      "NAME",
      "ADDR",
      "HELO",
    ]),
    { NAME: "spike.test", ADDR: null, HELO: "a b" },
  );
  strictEqual(
    refusal(parseAttributes("XCLIENT", "", ["NAME"])),
    "501 5.5.4 Syntax: XCLIENT NAME=...",
  );
  strictEqual(
    refusal(parseAttributes("XFORWARD", "FOO=1", ["NAME"])),
    "501 5.5.4 Bad XFORWARD attribute: FOO=1",
  );
  deepStrictEqual(parseAttributes("XFORWARD", "HELO=h+C3+A9llo", ["HELO"]), { HELO: "héllo" });
  strictEqual(
    refusal(parseAttributes("XFORWARD", "HELO=h+E9llo", ["HELO"])),
    "501 5.5.4 Bad XFORWARD attribute: HELO=h+E9llo",
  );
  strictEqual(
    refusal(parseAttributes("XFORWARD", "NAME", ["NAME"])),
    "501 5.5.4 Bad XFORWARD attribute: NAME",
  );
  strictEqual(
    refusal(parseAttributes("XCLIENT", "LOGIN=", ["LOGIN"])),
    "501 5.5.4 Bad XCLIENT attribute: LOGIN=",
  );
});

Deno.test("parseAttributes checks ADDR, PORT and PROTO as Postfix does", () => {
  const names = ["ADDR", "PORT", "PROTO", "NAME"];
  for (const verb of ["XCLIENT", "XFORWARD"] as const) {
    for (
      const ok of [
        "ADDR=192.0.2.1",
        "ADDR=IPV6:2001:db8::1",
        "ADDR=ipv6:::ffff:192.0.2.1",
        "ADDR=2001:db8::1",
        "PORT=0",
        "PORT=65535",
        "PROTO=SMTP",
        "PROTO=esmtp",
        "ADDR=[UNAVAILABLE] PORT=[tempunavail] PROTO=[Unavailable]",
        "NAME=anything.at.all",
      ]
    ) {
      strictEqual(refusal(parseAttributes(verb, ok, names)), "accepted", `${verb} ${ok}`);
    }
    for (
      const bad of [
        "ADDR=256.0.0.1",
        "ADDR=192.0.2",
        "ADDR=IPV6:192.0.2.1",
        "ADDR=IPV6:2001:db8::g",
        "ADDR=host.example",
        "ADDR=[192.0.2.1]",
        "PORT=65536",
        "PORT=-1",
        "PORT=http",
        "PORT=123456",
        `PROTO=${"P".repeat(65)}`,
      ]
    ) {
      strictEqual(
        refusal(parseAttributes(verb, `NAME=x ${bad}`, names)),
        `501 5.5.4 Bad ${verb} attribute value: ${bad}`,
      );
    }
  }
  // XCLIENT_README: SMTP or ESMTP; XFORWARD_README: any protocol name up to 64 characters.
  strictEqual(
    refusal(parseAttributes("XCLIENT", "PROTO=ESMTPA", names)),
    "501 5.5.4 Bad XCLIENT attribute value: PROTO=ESMTPA",
  );
  strictEqual(
    refusal(parseAttributes("XCLIENT", "PROTO=QMQP", names)),
    "501 5.5.4 Bad XCLIENT attribute value: PROTO=QMQP",
  );
  deepStrictEqual(parseAttributes("XFORWARD", "PROTO=QMQP", names), { PROTO: "QMQP" });
});
