import { deepStrictEqual, strictEqual } from "node:assert/strict";
import {
  ehloReply,
  formatReply,
  queuedReply,
  REPLY_DISK_FULL,
  REPLY_SHUTDOWN,
  REPLY_START_DATA,
  REPLY_TIMEOUT,
  REPLY_TOO_MANY_CONNECTIONS,
} from "../../../lib/smtp/reply.ts";
import { testConfig } from "../../helpers/feed.ts";

const DECODER = new TextDecoder();
const text = (r: Parameters<typeof formatReply>[0]) => DECODER.decode(formatReply(r));

Deno.test("formatReply writes the enhanced code on every line of a multi-line reply", () => {
  strictEqual(
    text({ code: 250, enhanced: "2.0.0", lines: ["one", "two", "three"] }),
    "250-2.0.0 one\r\n250-2.0.0 two\r\n250 2.0.0 three\r\n",
  );
  strictEqual(text({ code: 334, enhanced: "", lines: [""] }), "334 \r\n");
  strictEqual(text(REPLY_START_DATA), "354 End data with <CR><LF>.<CR><LF>\r\n");
});

Deno.test("formatReply cannot be made to forge reply lines", () => {
  strictEqual(
    text({ code: 550, enhanced: "5.1.1", lines: ["a\r\n250 b\rc"] }),
    "550 5.1.1 a  250 b c\r\n",
  );
});

Deno.test("formatReply sends ASCII textstring only: NUL, controls and non-ASCII become ?", () => {
  strictEqual(
    text({ code: 250, enhanced: "", lines: ["a\x00b\tc\x7fd\u00e9e\u{1F600}f\uDCFFg"] }),
    "250 a?b\tc?d?e?f?g\r\n",
  );
});

Deno.test("formatReply cuts every line to 512 octets, code and CRLF included", () => {
  const long = "h".repeat(4000);
  const bytes = formatReply({ code: 250, enhanced: "2.0.0", lines: [long, "ok", long] });
  const lines = DECODER.decode(bytes).split("\r\n").slice(0, -1);
  deepStrictEqual(lines.map((l) => l.length + 2), [512, 14, 512]);
  strictEqual(lines[0], `250-2.0.0 ${"h".repeat(500)}`);
  strictEqual(lines[2]!.startsWith("250 2.0.0 hhh"), true);
  strictEqual(text(ehloReply(testConfig(), long, { tls: false })).indexOf("\r\n"), 510);
});

Deno.test("formatReply caches the bytes of frozen replies only", () => {
  strictEqual(formatReply(REPLY_DISK_FULL), formatReply(REPLY_DISK_FULL));
  const r = queuedReply("X");
  strictEqual(text(r), "250 2.0.0 Ok: queued as X\r\n");
  r.lines[0] = "changed";
  strictEqual(text(r), "250 2.0.0 changed\r\n");
});

Deno.test("driver replies carry the host name", () => {
  strictEqual(text(REPLY_TIMEOUT("mx")), "421 4.4.2 mx Error: timeout exceeded\r\n");
  strictEqual(text(REPLY_TOO_MANY_CONNECTIONS("mx")).slice(0, 14), "421 4.7.0 mx E");
  strictEqual(text(REPLY_SHUTDOWN("mx")).slice(0, 13), "421 4.3.2 mx ");
});

Deno.test("ehloReply lists extensions in SPEC order, AUTH only when allowed", () => {
  const cfg = testConfig({ trustedProxy: true, requireTls: true });
  strictEqual(
    text(ehloReply(cfg, "c", { tls: false })),
    "250-mx.test Hello c\r\n250-PIPELINING\r\n250-SIZE 1000\r\n250-8BITMIME\r\n250-SMTPUTF8\r\n" +
      "250-ENHANCEDSTATUSCODES\r\n250-CHUNKING\r\n250-BINARYMIME\r\n250-DSN\r\n250-STARTTLS\r\n" +
      "250-XCLIENT NAME ADDR PORT PROTO HELO LOGIN\r\n250 XFORWARD NAME ADDR PORT PROTO HELO IDENT SOURCE\r\n",
  );
  const tls = text(ehloReply(cfg, "c", { tls: true }));
  strictEqual(tls.includes("STARTTLS"), false);
  strictEqual(tls.includes("250-AUTH PLAIN LOGIN CRAM-MD5\r\n"), true);
  const none = text(
    ehloReply(testConfig({ authMechanisms: [], starttls: false }), "c", { tls: false }),
  );
  strictEqual(none.endsWith("250 DSN\r\n"), true);
  // No limit: SIZE 0 (RFC 1870 §4: no fixed maximum).
  const unlimited = text(ehloReply(testConfig({ maxSize: Infinity }), "c", { tls: false }));
  strictEqual(unlimited.includes("\r\n250-SIZE 0\r\n"), true);
});
