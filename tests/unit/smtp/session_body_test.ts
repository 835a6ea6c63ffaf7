import { deepStrictEqual, strictEqual } from "node:assert/strict";
import { Session } from "../../../lib/smtp/session.ts";
import { REPLY_SPOOL_UNWRITABLE } from "../../../lib/smtp/reply.ts";
import { bytes, chunk, concat, run, testConfig, tr } from "../../helpers/feed.ts";

const DECODER = new TextDecoder();
const START = "HELO c\r\nMAIL FROM:<a@b>\r\nRCPT TO:<b@c>\r\n";
const STARTED = ["250 mx.test", "250 2.1.0 Ok", "250 2.1.5 Ok"];
const GO = "354 End data with <CR><LF>.<CR><LF>";

/** DATA with `body` (already on the wire) → the stored text. */
function stored(wire: string): string[] {
  return tr(START + "DATA\r\n" + wire + "NOOP\r\n", {
    replies: [...STARTED, GO, "250 2.0.0 Ok: queued as Q1", "250 2.0.0 Ok"],
  }).messages.map((m) => m.text);
}

const SMUGGLING: [string, string, string][] = [
  ["LF . LF", "a\n.\nMAIL FROM:<evil@x>\r\n.\r\n", "a\n.\nMAIL FROM:<evil@x>\r\n"],
  ["LF . CRLF", "a\n.\r\nMAIL FROM:<evil@x>\r\n.\r\n", "a\n.\r\nMAIL FROM:<evil@x>\r\n"],
  ["CR . CR", "a\r.\rMAIL FROM:<evil@x>\r\n.\r\n", "a\r.\rMAIL FROM:<evil@x>\r\n"],
  ["CRLF . LF", "a\r\n.\nMAIL FROM:<evil@x>\r\n.\r\n", "a\r\n\nMAIL FROM:<evil@x>\r\n"],
  ["CR . CRLF", "a\r.\r\nMAIL FROM:<evil@x>\r\n.\r\n", "a\r.\r\nMAIL FROM:<evil@x>\r\n"],
];

for (const [name, wire, body] of SMUGGLING) {
  Deno.test(`Session stores ${name} as content (CVE-2023-51764)`, () => {
    deepStrictEqual(stored(wire), [body]);
  });
}

Deno.test("Session: x\\r\\r\\n.\\r\\n ends the message", () => {
  deepStrictEqual(stored("x\r\r\n.\r\n"), ["x\r\r\n"]);
});

Deno.test("Session: .\\rX keeps its CR, a stuffed dot loses one dot", () => {
  deepStrictEqual(stored(".\rX\r\n..y\r\n.\r\n"), ["\rX\r\n.y\r\n"]);
});

Deno.test("Session: an empty DATA body is 0 bytes", () => {
  const out = tr(START + "DATA\r\n.\r\n", {
    replies: [...STARTED, GO, "250 2.0.0 Ok: queued as Q1"],
  });
  strictEqual(out.messages[0]!.size, 0);
});

Deno.test("Session: pipelined transactions after DATA, HELO state kept", () => {
  const out = tr(
    START + "DATA\r\none\r\n.\r\nMAIL FROM:<c@d>\r\nRCPT TO:<e@f>\r\nDATA\r\ntwo\r\n.\r\n",
    {
      replies: [
        ...STARTED,
        GO,
        "250 2.0.0 Ok: queued as Q1",
        ...STARTED.slice(1),
        GO,
        "250 2.0.0 Ok: queued as Q2",
      ],
      messages: ["one\r\n", "two\r\n"],
    },
  );
  strictEqual(out.messages[1]!.envelope.mailFrom, "c@d");
});

Deno.test("Session: a body over maxSize is consumed, aborted and refused with 552", () => {
  const config = testConfig({ maxSize: 10 });
  const out = tr(START + "DATA\r\n" + "0123456789\r\nmore\r\n.\r\nNOOP\r\n", {
    replies: [...STARTED, GO, "552 5.3.4 Error: message too big", "250 2.0.0 Ok"],
    messages: [],
    aborts: ["size"],
  }, { config });
  strictEqual(out.events.some((e) => e.type === "message-end"), false);
  tr(START + "DATA\r\n12345678\r\n.\r\n", {
    replies: [...STARTED, GO, "250 2.0.0 Ok: queued as Q1"],
    messages: ["12345678\r\n"],
  }, { config });
});

Deno.test("Session: message-start refusal on DATA resets the transaction", () => {
  const policy = { messageStart: () => REPLY_SPOOL_UNWRITABLE };
  tr(START + "DATA\r\nRCPT TO:<x@y>\r\n", {
    replies: [
      ...STARTED,
      "451 4.3.0 Error: queue file write error",
      "503 5.5.1 Error: need MAIL command",
    ],
  }, { policy });
});

Deno.test("Session: message-end reply is sent as given, then the transaction is reset", () => {
  const policy = { messageEnd: () => ({ code: 554, enhanced: "5.6.0", lines: ["Nope"] }) };
  tr(START + "DATA\r\nx\r\n.\r\nRCPT TO:<b@c>\r\n", {
    replies: [...STARTED, GO, "554 5.6.0 Nope", "503 5.5.1 Error: need MAIL command"],
  }, { policy });
});

Deno.test("Session: DATA refused with BODY=BINARYMIME and after BDAT", () => {
  tr("HELO c\r\nMAIL FROM:<a@b> BODY=BINARYMIME\r\nRCPT TO:<b@c>\r\nDATA\r\n", {
    replies: [...STARTED, "503 5.5.1 Error: BODY=BINARYMIME requires BDAT"],
  });
  tr(START + "BDAT 2\r\nxyDATA\r\nBDAT 1 LAST\r\nz", {
    replies: [
      ...STARTED,
      "250 2.0.0 Ok: 2 octets received",
      "503 5.5.1 Error: DATA after BDAT",
      "250 2.0.0 Ok: queued as Q1",
    ],
    messages: ["xyz"],
  });
});

Deno.test("Session BDAT: chunks, LAST, binary-safe bytes, BDAT 0 LAST", () => {
  const binary = Uint8Array.of(0, 0xff, 0x0a);
  const out = tr(concat([bytes(START + "BDAT 5\r\n.\r\n\r\nBDAT 3 LAST\r\n"), binary]), {
    replies: [...STARTED, "250 2.0.0 Ok: 5 octets received", "250 2.0.0 Ok: queued as Q1"],
  });
  deepStrictEqual(out.messages[0]!.body, concat([bytes(".\r\n\r\n"), binary]));
  strictEqual(out.messages[0]!.envelope.via, "BDAT");
  tr(START + "BDAT 0 LAST\r\n", {
    replies: [...STARTED, "250 2.0.0 Ok: queued as Q1"],
    messages: [""],
  });
});

Deno.test("Session BDAT: a chunk refused at its end (spool full) fails the transaction until RSET", () => {
  const full = { code: 452, enhanced: "4.3.1", lines: ["Error: insufficient system storage"] };
  const again = "MAIL FROM:<a@b>\r\nRCPT TO:<b@c>\r\n";
  tr(START + "BDAT 3\r\nabcBDAT 2\r\ndeBDAT 1 LAST\r\nfRSET\r\n" + again + "BDAT 1 LAST\r\ng", {
    replies: [
      ...STARTED,
      "250 2.0.0 Ok: 3 octets received",
      "452 4.3.1 Error: insufficient system storage",
      "503 5.5.1 Error: transaction failed, send RSET",
      "250 2.0.0 Ok",
      "250 2.1.0 Ok",
      "250 2.1.5 Ok",
      "250 2.0.0 Ok: queued as Q1",
    ],
    messages: ["g"],
    aborts: ["rejected"],
  }, { policy: { chunkEnd: (size) => size === 2 ? full : null } });
});

Deno.test("Session BDAT: a chunk split across receive() calls", () => {
  const wire = bytes(START + "BDAT 10 LAST\r\n0123456789NOOP\r\n");
  for (const sizes of [[1], [45, 3, 2], [50, 1, 100]]) {
    const out = run(chunk(wire, sizes));
    deepStrictEqual(out.messages.map((m) => m.text), ["0123456789"]);
    strictEqual(out.replies.at(-1), "250 2.0.0 Ok");
  }
});

Deno.test("Session BDAT: bad syntax, no transaction, no recipient (bytes still consumed)", () => {
  tr("HELO c\r\nBDAT 4\r\nQUITMAIL FROM:<a@b>\r\nBDAT 3 LAST\r\nxyzBDAT x\r\nBDAT\r\n", {
    replies: [
      "250 mx.test",
      "503 5.5.1 Error: need MAIL command",
      "250 2.1.0 Ok",
      "503 5.5.1 Error: need RCPT command",
      "501 5.5.4 Syntax: BDAT size [LAST]",
      "501 5.5.4 Syntax: BDAT size [LAST]",
    ],
  });
});

Deno.test("Session BDAT: a malformed line that gives a size has its octets dropped, not run", () => {
  // The chunk's octets would run as commands (RSET, QUIT) if read as a command line.
  tr(START + "BDAT 10 LAST EXTRA\r\nRSET\r\nQUITBDAT 1 LAST\r\nxRSET\r\n", {
    replies: [
      ...STARTED,
      "501 5.5.4 Syntax: BDAT size [LAST]",
      "503 5.5.1 Error: transaction failed, send RSET",
      "250 2.0.0 Ok",
    ],
  });
  // Mid-message: the open body is withdrawn, as for any refused chunk.
  tr(START + "BDAT 1\r\naBDAT 2 FOO\r\nbcBDAT 1 LAST\r\nd", {
    replies: [
      ...STARTED,
      "250 2.0.0 Ok: 1 octets received",
      "501 5.5.4 Syntax: BDAT size [LAST]",
      "503 5.5.1 Error: transaction failed, send RSET",
    ],
    aborts: ["rejected"],
  });
  // Before MAIL: consumed too, and no transaction to fail.
  tr("HELO c\r\nBDAT 4 X\r\nQUITNOOP\r\n", {
    replies: ["250 mx.test", "501 5.5.4 Syntax: BDAT size [LAST]", "250 2.0.0 Ok"],
  });
});

Deno.test("Session BDAT: refused message-start fails the transaction until RSET", () => {
  const policy = { messageStart: () => REPLY_SPOOL_UNWRITABLE };
  tr(START + "BDAT 2\r\nabBDAT 2 LAST\r\ncdRSET\r\nMAIL FROM:<a@b>\r\n", {
    replies: [
      ...STARTED,
      "451 4.3.0 Error: queue file write error",
      "503 5.5.1 Error: transaction failed, send RSET",
      "250 2.0.0 Ok",
      "250 2.1.0 Ok",
    ],
  }, { policy });
  tr(START + "BDAT 2 LAST\r\nabMAIL FROM:<a@b>\r\n", {
    replies: [...STARTED, "451 4.3.0 Error: queue file write error", "250 2.1.0 Ok"],
  }, { policy });
});

Deno.test("Session BDAT: over maxSize is consumed, aborted, 552; RSET aborts an open body", () => {
  const config = testConfig({ maxSize: 4 });
  tr(START + "BDAT 3\r\nabcBDAT 3 LAST\r\ndefNOOP\r\n", {
    replies: [
      ...STARTED,
      "250 2.0.0 Ok: 3 octets received",
      "552 5.3.4 Error: message too big",
      "250 2.0.0 Ok",
    ],
    aborts: ["size"],
  }, { config });
  tr(START + "BDAT 1\r\naRSET\r\n", {
    replies: [...STARTED, "250 2.0.0 Ok: 1 octets received", "250 2.0.0 Ok"],
    aborts: ["reset"],
  });
  tr(START + "BDAT 1\r\naBDAT z\r\nBDAT 1 LAST\r\nb", {
    replies: [
      ...STARTED,
      "250 2.0.0 Ok: 1 octets received",
      "501 5.5.4 Syntax: BDAT size [LAST]",
      "503 5.5.1 Error: transaction failed, send RSET",
    ],
    aborts: ["rejected"],
  });
});

Deno.test("Session: message-data events are views of the received bytes", () => {
  const session = new Session(testConfig());
  const wire = bytes(START + "DATA\r\n");
  session.receive(wire);
  for (let i = 0; i < 20; i++) {
    const ev = session.next();
    if (ev.type === "need-data") break;
    if (ev.type === "helo") session.resumeHelo(null);
    if (ev.type === "mail") session.resumeMail(null);
    if (ev.type === "rcpt") session.resumeRcpt(null);
    if (ev.type === "message-start") session.resumeMessageStart(null);
  }
  strictEqual(session.inBody(), true);
  const body = bytes("hello\r\nworld\r\n");
  session.receive(body);
  const ev = session.next();
  strictEqual(ev.type, "message-data");
  if (ev.type === "message-data") strictEqual(ev.bytes.buffer, body.buffer);
});

Deno.test("Session: after message-end, parsing continues with buffered bytes", () => {
  const session = new Session(testConfig());
  session.receive(bytes(START + "DATA\r\nx\r\n.\r\nNOOP\r\n"));
  const seen: string[] = [];
  for (let i = 0; i < 30; i++) {
    const ev = session.next();
    seen.push(ev.type);
    if (ev.type === "need-data" || ev.type === "close") break;
    if (ev.type === "helo") session.resumeHelo(null);
    if (ev.type === "mail") session.resumeMail(null);
    if (ev.type === "rcpt") session.resumeRcpt(null);
    if (ev.type === "message-start") session.resumeMessageStart(null);
    if (ev.type === "message-end") {
      strictEqual(session.next().type, "paused");
      strictEqual(DECODER.decode(session.pending()), "NOOP\r\n");
      strictEqual(session.inBody(), false);
      session.receive(bytes("QUIT\r\n"));
      strictEqual(DECODER.decode(concat([session.pending()])), "NOOP\r\nQUIT\r\n");
      session.resumeMessageEnd({ code: 250, enhanced: "2.0.0", lines: ["Ok"] });
    }
  }
  deepStrictEqual(seen.slice(-5), ["message-end", "reply", "reply", "reply", "close"]);
});
