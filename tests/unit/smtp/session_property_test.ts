import { deepStrictEqual, ok, strictEqual } from "node:assert/strict";
import fc from "fast-check";
import { Session } from "../../../lib/smtp/session.ts";
import { queuedReply } from "../../../lib/smtp/reply.ts";
import type { Decision, SessionConfig } from "../../../lib/smtp/events.ts";
import { bytes, chunk, concat, run, testConfig } from "../../helpers/feed.ts";
import { chunkSizes, edgyBytes, smtpInput } from "../../helpers/arbitraries.ts";

const DECODER = new TextDecoder();
// RFC 5321 §4.2 reply-line: code, SP or "-", textstring (HT and printable ASCII only).
const REPLY_LINE_REGEXP = /^\d{3}[ -][\t\x20-\x7e]*$/;
const REJECT: Decision = { code: 554, enhanced: "5.7.1", lines: ["Rejected"] };

const configArb: fc.Arbitrary<SessionConfig> = fc.record({
  trustedProxy: fc.boolean(),
  requireTls: fc.boolean(),
  requireAuth: fc.boolean(),
  transcript: fc.boolean(),
  strict: fc.boolean(),
  maxSize: fc.constantFrom(0, 5, 1000),
}).map((o) =>
  testConfig({
    trustedProxy: o.trustedProxy,
    requireTls: o.requireTls,
    requireAuth: o.requireAuth,
    transcript: o.transcript,
    maxSize: o.maxSize,
    acceptRcpt: o.strict ? [/^bob@/] : [],
  })
);

function isSuffix(whole: Uint8Array, tail: Uint8Array): boolean {
  if (tail.length > whole.length) return false;
  const start = whole.length - tail.length;
  for (let i = 0; i < tail.length; i++) if (whole[start + i] !== tail[i]) return false;
  return true;
}

/**
 * Drives a session over `chunks`; at each pause it checks `pending()` against
 * what was received and sometimes receives the next chunk while paused.
 * Decisions alternate between accepting and rejecting after `rejectBits`.
 */
function drive(config: SessionConfig, chunks: Uint8Array[], rejectBits: number): number {
  const session = new Session(config);
  let received: Uint8Array = new Uint8Array(0);
  let replies = 0;
  let decisions = 0;
  const decide = (): Decision => ((rejectBits >> (decisions++ % 30)) & 1 ? REJECT : null);
  let i = 0;
  const feed = () => {
    const piece = chunks[i++]!.slice();
    received = concat([received, piece]);
    session.receive(piece);
  };
  while (i < chunks.length) {
    feed();
    for (let guard = 0;; guard++) {
      ok(guard < 100_000, "bounded event loop");
      const ev = session.next();
      if (ev.type === "need-data") break;
      strictEqual(ev.type === "paused", false, "paused after answering");
      if (ev.type === "reply") {
        replies++;
        const text = DECODER.decode(ev.bytes);
        ok(text.endsWith("\r\n"), "reply ends with CRLF");
        for (const line of text.slice(0, -2).split("\r\n")) {
          ok(REPLY_LINE_REGEXP.test(line), `reply line ${JSON.stringify(line)}`);
          // RFC 5321 §4.5.3.1.5: 512 octets with CRLF (ASCII, so characters are octets).
          ok(line.length + 2 <= 512, `reply line of ${line.length + 2} octets`);
        }
        continue;
      }
      if (ev.type === "close") {
        strictEqual(session.next().type, "need-data");
        return replies;
      }
      const pausing = [
        "helo",
        "mail",
        "rcpt",
        "auth",
        "message-start",
        "chunk-end",
        "message-end",
        "starttls",
      ];
      if (!pausing.includes(ev.type)) continue;
      strictEqual(session.next().type, "paused");
      const held = session.pending().slice();
      ok(isSuffix(received, held), "pending() is the unparsed tail of the input");
      if (i < chunks.length && (rejectBits & 2)) {
        const next = chunks[i]!;
        feed();
        deepStrictEqual(
          session.pending(),
          concat([held, next]),
          "bytes received while paused are held",
        );
        strictEqual(session.next().type, "paused");
      }
      switch (ev.type) {
        case "helo":
          session.resumeHelo(decide());
          break;
        case "mail":
          session.resumeMail(decide());
          break;
        case "rcpt":
          session.resumeRcpt(decide());
          break;
        case "auth":
          session.resumeAuth(decide());
          break;
        case "message-start":
          session.resumeMessageStart(decide());
          break;
        case "chunk-end":
          session.resumeChunkEnd(decide());
          break;
        case "message-end":
          session.resumeMessageEnd(decide() ?? queuedReply("X"));
          break;
        case "starttls":
          session.resumeTls();
          received = new Uint8Array(0);
          break;
      }
    }
  }
  return replies;
}

Deno.test("property: Session never throws, replies are well-formed, pending() holds later bytes", () => {
  fc.assert(
    fc.property(
      configArb,
      fc.oneof(smtpInput(), edgyBytes(400)),
      chunkSizes(),
      fc.integer({ min: 0, max: 2 ** 30 }),
      (config, input, sizes, bits) => {
        drive(config, chunk(input, sizes), bits);
      },
    ),
    { numRuns: 400 },
  );
});

Deno.test("property: replies and stored bytes do not depend on chunking", () => {
  // Without STARTTLS: what it discards legitimately depends on what had arrived.
  const config = testConfig({ starttls: false, trustedProxy: true });
  fc.assert(
    fc.property(smtpInput(), chunkSizes(), (input, sizes) => {
      const whole = run([input], { config });
      const pieces = run(chunk(input, sizes), { config });
      deepStrictEqual(pieces.replies, whole.replies);
      deepStrictEqual(pieces.messages.map((m) => m.body), whole.messages.map((m) => m.body));
      deepStrictEqual(pieces.aborts, whole.aborts);
    }),
    { numRuns: 300 },
  );
});

Deno.test("property: pipelined commands are answered in order", () => {
  const answers: Record<string, string> = {
    "NOOP": "250 2.0.0 Ok",
    "RSET": "250 2.0.0 Ok",
    "EXPN x": "502 5.5.1 Error: command not available",
    "WIZ": "500 5.5.2 Error: command not recognized",
    "VRFY x": "252 2.5.0 Cannot VRFY user, but will accept message and attempt delivery",
    "HELO c": "250 mx.test",
    "MAIL FROM:<a@b>": "503 5.5.1 Error: send HELO/EHLO first",
  };
  fc.assert(
    fc.property(
      fc.array(fc.constantFrom("NOOP", "RSET", "EXPN x", "WIZ", "VRFY x"), { maxLength: 15 }),
      chunkSizes(),
      (commands, sizes) => {
        const input = bytes(commands.map((c) => `${c}\r\n`).join(""));
        const out = run(chunk(input, sizes));
        deepStrictEqual(out.replies, commands.map((c) => answers[c]));
      },
    ),
    { numRuns: 200 },
  );
});

Deno.test("property: an overlong line yields one 500 5.5.2 and the next command parses", () => {
  fc.assert(
    fc.property(fc.integer({ min: 4097, max: 12_000 }), chunkSizes(), (length, sizes) => {
      const input = bytes(`${"L".repeat(length)}\r\nNOOP\r\n`);
      const out = run(chunk(input, sizes.map((s) => s * 50)));
      deepStrictEqual(out.replies, ["500 5.5.2 Error: line too long", "250 2.0.0 Ok"]);
    }),
    { numRuns: 60 },
  );
});
