import { deepStrictEqual, strictEqual, throws } from "node:assert/strict";
import { Session } from "../../../lib/smtp/session.ts";
import { ehloReply, formatReply, REPLY_CALLBACK_FAILED } from "../../../lib/smtp/reply.ts";
import type { SessionConfig } from "../../../lib/smtp/events.ts";
import { bytes, concat, run, testConfig, tr } from "../../helpers/feed.ts";

const DECODER = new TextDecoder();
/** The EHLO reply text for `config` before TLS. */
function ehlo(config: SessionConfig = testConfig(), domain = "c.test"): string {
  return DECODER.decode(formatReply(ehloReply(config, domain, { tls: false }))).replace(
    /\r\n$/,
    "",
  );
}
const HI = "EHLO c.test\r\n";
const OK = "250 2.0.0 Ok";

Deno.test("Session greeting has no enhanced code", () => {
  strictEqual(DECODER.decode(new Session(testConfig()).greeting()), "220 mx.test ESMTP smtpd\r\n");
});

Deno.test("Session HELO and EHLO", () => {
  tr("HELO c.test\r\n", { replies: ["250 mx.test"] });
  tr(HI, { replies: [ehlo()] });
  tr("ehlo   c.test  \r\n", { replies: [ehlo()] });
  tr("EHLO\r\nHELO \r\n", {
    replies: ["501 5.5.4 Syntax: EHLO hostname", "501 5.5.4 Syntax: HELO hostname"],
  });
});

Deno.test("Session HELO/EHLO may be refused by the helo decision", () => {
  const policy = { helo: () => ({ code: 550, enhanced: "5.7.1", lines: ["No"] }) };
  tr("EHLO c.test\r\nMAIL FROM:<a@b>\r\n", {
    replies: ["550 5.7.1 No", "503 5.5.1 Error: send HELO/EHLO first"],
  }, { policy });
});

Deno.test("Session command order errors are 503 5.5.1", () => {
  tr(
    "MAIL FROM:<a@b>\r\nRCPT TO:<b@c>\r\nDATA\r\n" + HI +
      "MAIL FROM:<a@b>\r\nMAIL FROM:<a@b>\r\nDATA\r\n",
    {
      replies: [
        "503 5.5.1 Error: send HELO/EHLO first",
        "503 5.5.1 Error: need MAIL command",
        "503 5.5.1 Error: need MAIL command",
        ehlo(),
        "250 2.1.0 Ok",
        "503 5.5.1 Error: nested MAIL command",
        "503 5.5.1 Error: need RCPT command",
      ],
    },
  );
});

Deno.test("Session: HELO/EHLO reset the transaction", () => {
  tr(HI + "MAIL FROM:<a@b>\r\nEHLO again\r\nRCPT TO:<b@c>\r\nMAIL FROM:<a@b>\r\n", {
    replies: [
      ehlo(),
      "250 2.1.0 Ok",
      ehlo(testConfig(), "again"),
      "503 5.5.1 Error: need MAIL command",
      "250 2.1.0 Ok",
    ],
  });
});

Deno.test("Session MAIL and RCPT record the envelope", () => {
  const out = tr(
    HI +
      "MAIL FROM: <a@b.test> BODY=8BITMIME SMTPUTF8\r\nRCPT TO:<ü@c.test> NOTIFY=NEVER\r\n" +
      "RCPT TO:<@r.test:d@e.test>\r\nRCPT TO:<postmaster>\r\nDATA\r\nhi\r\n.\r\n",
    {
      replies: [
        ehlo(),
        "250 2.1.0 Ok",
        "250 2.1.5 Ok",
        "250 2.1.5 Ok",
        "250 2.1.5 Ok",
        "354 End data with <CR><LF>.<CR><LF>",
        "250 2.0.0 Ok: queued as Q1",
      ],
      messages: ["hi\r\n"],
    },
  );
  const envelope = out.messages[0]!.envelope;
  deepStrictEqual(envelope, {
    mailFrom: "a@b.test",
    mailParams: { BODY: "8BITMIME", SMTPUTF8: true },
    rcptTo: ["ü@c.test", "d@e.test", "postmaster"],
    rcptParams: [{ NOTIFY: "NEVER" }, {}, {}],
    helo: "c.test",
    esmtp: true,
    tls: false,
    auth: null,
    smtputf8: true,
    xforward: {},
    xclient: {},
    via: "DATA",
  });
});

Deno.test("Session MAIL and RCPT refusals", () => {
  tr(
    HI +
      "MAIL FROM:a@b\r\nMAIL FROM:<a@b> X=1\r\nMAIL FROM:<ü@b>\r\nMAIL FROM:<a@b> SIZE=1001\r\n" +
      "MAIL FROM:<>\r\nRCPT TO:<x y>\r\nRCPT TO:<ü@b>\r\nRCPT TO:<b@c> NOTIFY=x\r\n",
    {
      replies: [
        ehlo(),
        "501 5.5.4 Syntax: MAIL FROM:<address>",
        "555 5.5.4 Unsupported option: X",
        "553 5.6.7 Must declare SMTPUTF8 to send unicode address",
        "552 5.3.4 Message size exceeds fixed limit",
        "250 2.1.0 Ok",
        "501 5.5.4 Bad recipient address syntax",
        "553 5.6.7 Must declare SMTPUTF8 to send unicode address",
        "501 5.5.4 Bad NOTIFY parameter syntax",
      ],
    },
  );
});

Deno.test("Session refuses addresses of malformed UTF-8 with the bad-address replies", () => {
  const bad = (text: string, ...raw: number[]) =>
    concat(
      text.split("%").flatMap((part, i) =>
        i === 0 ? [bytes(part)] : [Uint8Array.from(raw), bytes(part)]
      ),
    );
  const input = concat([
    bytes(HI),
    bad("MAIL FROM:<%@b.test> SMTPUTF8\r\n", 0xff, 0xfe),
    bad("MAIL FROM:<a%@b.test>\r\n", 0xc0, 0xaf),
    bytes("MAIL FROM:<\u00fc@b.test>\r\nMAIL FROM:<a@b.test> SMTPUTF8\r\n"),
    bad("RCPT TO:<x%@y.test>\r\n", 0xc0, 0xaf),
    bad("RCPT TO:<x@y%.test>\r\n", 0xed, 0xa0, 0x80),
    bad('RCPT TO:<"q%"@y.test>\r\n', 0x80),
    bad("RCPT TO:<x@y.test> ORCPT=rfc822;x%@y.test\r\n", 0xf4, 0x90, 0x80, 0x80),
    bytes("RCPT TO:<\u00fc\u{1F600}@y.test>\r\n"),
  ]);
  const out = tr(input, {
    replies: [
      ehlo(),
      "501 5.5.4 Bad sender address syntax",
      "501 5.5.4 Bad sender address syntax",
      // Well-formed non-ASCII without SMTPUTF8 keeps its RFC 6531 reply.
      "553 5.6.7 Must declare SMTPUTF8 to send unicode address",
      "250 2.1.0 Ok",
      "501 5.5.4 Bad recipient address syntax",
      "501 5.5.4 Bad recipient address syntax",
      "501 5.5.4 Bad recipient address syntax",
      "501 5.5.4 Bad ORCPT parameter syntax",
      "250 2.1.5 Ok",
    ],
  });
  strictEqual(out.events.filter((e) => e.type === "rcpt").length, 1);
  // HELO has no grammar to fail: its malformed bytes are recorded as U+FFFD, as before.
  const helo = tr(bad("HELO a%b\r\n", 0xff), { replies: ["250 mx.test"] });
  deepStrictEqual(helo.events.find((e) => e.type === "helo"), {
    type: "helo",
    verb: "HELO",
    domain: "a\ufffdb",
  });
});

Deno.test("Session --accept-rcpt: 550 without an event; VRFY answers accordingly", () => {
  const config = testConfig({ acceptRcpt: [/@ok\.test$/g] });
  const out = tr(
    HI +
      "MAIL FROM:<a@b>\r\nRCPT TO:<x@no.test>\r\nRCPT TO:<x@ok.test>\r\nRCPT TO:<y@ok.test>\r\n" +
      "VRFY <x@ok.test>\r\nVRFY z@no.test\r\nVRFY\r\n",
    {
      replies: [
        ehlo(config),
        "250 2.1.0 Ok",
        "550 5.1.1 <x@no.test>: Recipient address rejected",
        "250 2.1.5 Ok",
        "250 2.1.5 Ok",
        "250 2.1.5 <x@ok.test>",
        "550 5.1.1 <z@no.test>: Recipient address rejected",
        "501 5.5.4 Syntax: VRFY address",
      ],
    },
    { config },
  );
  strictEqual(out.events.filter((e) => e.type === "rcpt").length, 2);
  tr("VRFY bob\r\n", {
    replies: ["252 2.5.0 Cannot VRFY user, but will accept message and attempt delivery"],
  });
});

Deno.test("Session VRFY with --accept-rcpt judges a bare user name too (RFC 5321 §3.5.1)", () => {
  const config = testConfig({ acceptRcpt: [/^Ok$/, /@ok\.test$/] });
  tr(
    "VRFY Ok\r\nVRFY bob\r\nVRFY <Ok>\r\nVRFY Bob Smith\r\nVRFY <@r.test:x@ok.test>\r\n" +
      "VRFY x@ok.test smtputf8\r\n",
    {
      replies: [
        "250 2.1.5 <Ok>",
        "550 5.1.1 <bob>: Recipient address rejected",
        "250 2.1.5 <Ok>",
        "550 5.1.1 <Bob Smith>: Recipient address rejected",
        "250 2.1.5 <x@ok.test>",
        "250 2.1.5 <x@ok.test>",
      ],
    },
    { config },
  );
  tr("VRFY Ok\r\n", {
    replies: ["252 2.5.0 Cannot VRFY user, but will accept message and attempt delivery"],
  });
});

Deno.test("Session --accept-rcpt never refuses postmaster (RFC 5321 §4.5.1)", () => {
  const config = testConfig({ acceptRcpt: [/^ok@/] });
  const out = tr(
    HI +
      "MAIL FROM:<a@b>\r\nRCPT TO:<postmaster>\r\nRCPT TO:<PostMaster@MX.test>\r\n" +
      "RCPT TO:<postmaster@other.test>\r\nVRFY Postmaster\r\n",
    {
      replies: [
        ehlo(config),
        "250 2.1.0 Ok",
        "250 2.1.5 Ok",
        "250 2.1.5 Ok",
        "550 5.1.1 <postmaster@other.test>: Recipient address rejected",
        "250 2.1.5 <Postmaster>",
      ],
    },
    { config },
  );
  deepStrictEqual(
    out.events.filter((e) => e.type === "rcpt").map((e) => e.type === "rcpt" && e.forwardPath),
    ["postmaster", "PostMaster@MX.test"],
  );
  // K (U+212A) lower-cases to k in Unicode, never in a host name.
  const kx = testConfig({ acceptRcpt: [/^ok@/], hostname: "kx.test" });
  tr(HI + "MAIL FROM:<a@b> SMTPUTF8\r\nRCPT TO:<postmaster@\u212Ax.test>\r\n", {
    replies: [
      ehlo(kx),
      "250 2.1.0 Ok",
      "550 5.1.1 <postmaster@?x.test>: Recipient address rejected", // replies are ASCII
    ],
  }, { config: kx });
});

Deno.test("Session HELP lists STARTTLS, AUTH, XCLIENT, XFORWARD only where EHLO offers them", () => {
  const help = (commands: string) =>
    `214 2.0.0 Commands: EHLO HELO MAIL RCPT DATA BDAT RSET NOOP QUIT VRFY HELP${commands}`;
  tr("HELP\r\n", { replies: [help(" STARTTLS AUTH")] });
  tr("HELP\r\n", { replies: [help("")] }, {
    config: testConfig({ starttls: false, authMechanisms: [] }),
  });
  tr("HELP\r\n", { replies: [help(" AUTH")] }, {
    config: testConfig({ starttls: false, tlsActive: true }),
  });
  // --require-tls: AUTH only under TLS.
  tr("HELP\r\n", { replies: [help(" STARTTLS")] }, { config: testConfig({ requireTls: true }) });
  tr("HELP\r\n", { replies: [help(" AUTH")] }, {
    config: testConfig({ requireTls: true, tlsActive: true }),
  });
  tr("HELP\r\n", { replies: [help(" STARTTLS AUTH XCLIENT XFORWARD")] }, {
    config: testConfig({ trustedProxy: true }),
  });
});

Deno.test("Session: more than maxRecipients get 452 4.5.3; a refused rcpt is not added", () => {
  const policy = { rcpt: (a: string) => a.startsWith("bad") ? REPLY_CALLBACK_FAILED : null };
  const out = tr(
    HI +
      "MAIL FROM:<a@b>\r\nRCPT TO:<bad@c>\r\nRCPT TO:<1@c>\r\nRCPT TO:<2@c>\r\nRCPT TO:<3@c>\r\n" +
      "RCPT TO:<4@c>\r\nDATA\r\n.\r\n",
    {
      replies: [
        ehlo(),
        "250 2.1.0 Ok",
        "451 4.3.0 Error: local error in processing",
        "250 2.1.5 Ok",
        "250 2.1.5 Ok",
        "250 2.1.5 Ok",
        "452 4.5.3 Error: too many recipients",
        "354 End data with <CR><LF>.<CR><LF>",
        "250 2.0.0 Ok: queued as Q1",
      ],
      messages: [""],
    },
    { policy },
  );
  deepStrictEqual(out.messages[0]!.envelope.rcptTo, ["1@c", "2@c", "3@c"]);
});

Deno.test("Session RSET, NOOP, HELP, EXPN, unknown verbs, arguments to no-arg commands", () => {
  tr("RSET\r\nNOOP whatever\r\nHELP\r\nEXPN list\r\nWIZ\r\n\r\nRSET x\r\nDATA x\r\nQUIT now\r\n", {
    replies: [
      OK,
      OK,
      "214 2.0.0 Commands: EHLO HELO MAIL RCPT DATA BDAT RSET NOOP QUIT VRFY HELP STARTTLS AUTH",
      "502 5.5.1 Error: command not available",
      "500 5.5.2 Error: command not recognized",
      "500 5.5.2 Error: command not recognized",
      "501 5.5.4 Syntax: RSET",
      "501 5.5.4 Syntax: DATA",
      "501 5.5.4 Syntax: QUIT",
    ],
  });
});

Deno.test("Session: client text echoed in replies is ASCII and at most 512 octets a line", () => {
  const config = testConfig({ trustedProxy: true, acceptRcpt: [/^ok@/] });
  const raw = concat([bytes("EHLO a\x00b"), Uint8Array.of(0xff, 0xc3, 0xa9), bytes("\r\n")]);
  tr(raw, { replies: [ehlo(config, "a?b??")] }, { config });
  const h = "h".repeat(4000);
  const out = tr(
    `EHLO ${h}\r\nVRFY <${h}@x>\r\nMAIL FROM:<a@b> X${h}=1\r\nMAIL FROM:<a@b>\r\n` +
      `RCPT TO:<${h}@x>\r\nRCPT TO:<\u00e9\x01@x>\r\nRSET\r\nXFORWARD PORT=${h}\r\n` +
      `XCLIENT \u00e9${h}=1\r\n`,
    {
      replies: [
        ehlo(config, h).split("\r\n").map((l, i) => i === 0 ? l.slice(0, 510) : l).join("\r\n"),
        `550 5.1.1 <${h}`.slice(0, 510),
        `555 5.5.4 Unsupported option: X${h.toUpperCase()}`.slice(0, 510),
        "250 2.1.0 Ok",
        `550 5.1.1 <${h}`.slice(0, 510),
        "501 5.5.4 Bad recipient address syntax",
        OK,
        `501 5.5.4 Bad XFORWARD attribute value: PORT=${h}`.slice(0, 510),
        `501 5.5.4 Bad XCLIENT attribute: ?${h}`.slice(0, 510),
      ],
    },
    { config },
  );
  for (const r of out.replies) strictEqual(/^[\t\x20-\x7e\r\n]*$/.test(r), true, r);
});

Deno.test("Session QUIT replies 221 then closes; later bytes are ignored", () => {
  const out = tr("NOOP\r\nQUIT\r\nNOOP\r\n", { replies: [OK, "221 2.0.0 Bye"] });
  strictEqual(out.closed, true);
  strictEqual(out.events.at(-1)!.type, "close");
});

Deno.test("Session after a refusing greeting: 503 5.5.1 to every command until QUIT (RFC 5321 §3.1)", () => {
  const refusedGreeting = { code: 554, enhanced: "5.7.1", lines: ["Go away"] };
  const config = testConfig({ refusedGreeting });
  strictEqual(DECODER.decode(new Session(config).greeting()), "554 5.7.1 Go away\r\n");
  const refused = "503 5.5.1 Error: this session was refused at connect, only QUIT is accepted";
  const out = tr(
    "EHLO c.test\r\nMAIL FROM:<a@b>\r\nSTARTTLS\r\nAUTH PLAIN\r\nWIZ\r\nQUIT x\r\nQUIT\r\nNOOP\r\n",
    {
      replies: [
        refused,
        refused,
        refused,
        refused,
        refused,
        "501 5.5.4 Syntax: QUIT",
        "221 2.0.0 Bye",
      ],
    },
    { config },
  );
  strictEqual(out.closed, true);
  strictEqual(out.events.filter((e) => e.type !== "reply" && e.type !== "close").length, 0);
});

Deno.test("Session accepts bare LF line endings on commands", () => {
  tr("HELO c.test\nNOOP\r\n", { replies: ["250 mx.test", OK] });
});

Deno.test("Session: an overlong line gets one 500 5.5.2, then a working command", () => {
  tr(`${"x".repeat(10_000)}\r\nNOOP\r\n`, { replies: ["500 5.5.2 Error: line too long", OK] });
  tr(`MAIL FROM:<${"a".repeat(4100)}@b>\r\nHELO c\r\n`, {
    replies: ["500 5.5.2 Error: line too long", "250 mx.test"],
  });
});

Deno.test("Session: the 20th failed command gets its own reply, then 421 4.7.0 and close", () => {
  const unknown = "500 5.5.2 Error: command not recognized";
  const bye = "421 4.7.0 mx.test Error: too many errors";
  const replies = Array.from({ length: 20 }, () => unknown);
  replies.splice(5, 0, OK);
  // Exactly 20 failures: the 421 must not wait for a 21st command.
  const out = tr("WIZ\r\n".repeat(5) + "NOOP\r\n" + "WIZ\r\n".repeat(15), {
    replies: [...replies, bye],
  });
  strictEqual(out.closed, true);
  strictEqual(out.events.at(-1)!.type, "close");
  // A refusal by a decision counts the same, and what follows it is never read.
  const policy = { mail: () => ({ code: 550, enhanced: "5.7.1", lines: ["No"] }) };
  const refused = tr(HI + "WIZ\r\n".repeat(19) + "MAIL FROM:<a@b>\r\nNOOP\r\n", {
    replies: [ehlo(), ...Array.from({ length: 19 }, () => unknown), "550 5.7.1 No", bye],
  }, { policy });
  strictEqual(refused.closed, true);
});

Deno.test("Session: a 421 decision closes the session", () => {
  const policy = { mail: () => ({ code: 421, enhanced: "4.3.2", lines: ["Bye now"] }) };
  const out = tr(HI + "MAIL FROM:<a@b>\r\nNOOP\r\n", { replies: [ehlo(), "421 4.3.2 Bye now"] }, {
    policy,
  });
  strictEqual(out.closed, true);
});

Deno.test("Session transcript: every command line, AUTH secrets redacted", () => {
  const config = testConfig({ transcript: true });
  const out = run([bytes(HI + "AUTH PLAIN AGJvYgBzZWNyZXQ=\r\nAUTH LOGIN\r\nNOOP\r\n")], {
    config,
  });
  deepStrictEqual(out.transcript, ["EHLO c.test", "AUTH PLAIN ***", "AUTH LOGIN", "NOOP"]);
  const login = run([bytes(HI + "AUTH LOGIN\r\nYm9i\r\ncHc=\r\nNOOP\r\n")], { config });
  deepStrictEqual(login.transcript, ["EHLO c.test", "AUTH LOGIN", "***", "***", "NOOP"]);
});

Deno.test("Session keeps no view of a chunk after need-data: the driver may reuse it", () => {
  const session = new Session(testConfig());
  const chunk = bytes("NOOP\r\nHELO c.te");
  session.receive(chunk);
  strictEqual(session.next().type, "reply");
  strictEqual(session.next().type, "need-data");
  // NativeSocket reads the next bytes into the same buffer.
  chunk.fill(0x58);
  session.receive(bytes("st\r\n"));
  deepStrictEqual(session.next(), { type: "helo", verb: "HELO", domain: "c.test" });
});

Deno.test("Session: resuming at the wrong time throws; next() while paused says paused", () => {
  const session = new Session(testConfig());
  session.receive(bytes("HELO c\r\nNOOP\r\n"));
  strictEqual(session.next().type, "helo");
  strictEqual(session.next().type, "paused");
  strictEqual(DECODER.decode(session.pending()), "NOOP\r\n");
  throws(() => session.resumeMail(null), /Cannot resume "mail": the session is paused at "helo"/);
  session.resumeHelo(null);
  throws(() => session.resumeHelo(null), /not paused/);
  strictEqual(session.next().type, "reply");
  strictEqual(session.next().type, "reply");
  strictEqual(session.next().type, "need-data");
  strictEqual(session.idle(), true);
});
