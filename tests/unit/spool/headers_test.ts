import assert from "node:assert/strict";
import fc from "fast-check";
import { decodeRfc2047, parseHeaderFields } from "../../../lib/spool/headers.ts";

const enc = (s: string): Uint8Array => new TextEncoder().encode(s);

Deno.test("decodeRfc2047 table", () => {
  const cases: [string, string, string][] = [
    ["plain text", "hello world", "hello world"],
    ["Q with underscores", "=?utf-8?Q?hello_big_world?=", "hello big world"],
    ["Q lower-case encoding letter", "=?utf-8?q?caf=C3=A9?=", "café"],
    ["B", "=?UTF-8?B?w6l0w6k=?=", "été"],
    ["B without padding", "=?UTF-8?B?w6l0w6k?=", "été"],
    ["ISO-8859-1 Q (RFC 2047 §8)", "=?ISO-8859-1?Q?Andr=E9?= Pirard", "André Pirard"],
    ["ISO-8859-1 B", "=?iso-8859-1?b?QW5kcuk=?=", "André"],
    ["UTF-8 emoji", "=?utf-8?B?8J+YgA==?=", "😀"],
    ["split multi-byte across words", "=?utf-8?Q?caf=C3?= =?utf-8?Q?=A9?=", "café"],
    ["split multi-byte in B words", "=?utf-8?B?8J+Y?=\r\n =?utf-8?B?gA==?=", "😀"],
    ["adjacent words: space dropped (§8)", "=?ISO-8859-1?Q?a?= =?ISO-8859-1?Q?b?=", "ab"],
    ["adjacent words: folding dropped", "=?ISO-8859-1?Q?a?=\r\n   =?ISO-8859-1?Q?b?=", "ab"],
    ["word then text keeps the space", "=?ISO-8859-1?Q?a?= b", "a b"],
    ["text then word keeps the space", "a =?ISO-8859-1?Q?b?=", "a b"],
    ["encoded space via Q", "=?ISO-8859-1?Q?a_?= =?ISO-8859-1?Q?_b?=", "a  b"],
    ["different charsets adjacent", "=?utf-8?Q?=C3=A9?= =?iso-8859-1?Q?=E9?=", "éé"],
    ["RFC 2231 language suffix", "=?US-ASCII*EN?Q?Keith_Moore?=", "Keith Moore"],
    ["after a special", "Re:=?utf-8?Q?x?=", "Re:x"],
    ["inside a word: text (§6.1)", "abc=?UTF-8?Q?x?=def", "abc=?UTF-8?Q?x?=def"],
    ["glued to a word before", "a=?utf-8?q?b?= =?utf-8?q?c?=", "a=?utf-8?q?b?= c"],
    ["glued to a word after", "=?utf-8?q?b?=c", "=?utf-8?q?b?=c"],
    ["two words glued together", "=?utf-8?q?a?==?utf-8?q?b?=", "ab"],
    ["in a phrase's specials", '(=?utf-8?q?c?=) "=?utf-8?q?d?=" <x@y>', '(c) "d" <x@y>'],
    ["UTF-16 without BOM is big-endian (RFC 2781 §4.3)", "=?UTF-16?B?AGEAYg==?=", "ab"],
    ["UTF-16 with a little-endian BOM", "=?UTF-16?B?//5hAGIA?=", "ab"],
    ["UTF-16LE", "=?UTF-16LE?B?YQBiAA==?=", "ab"],
    ["unknown charset left as is", "=?x-nope?Q?a?=", "=?x-nope?Q?a?="],
    ["bad Q escape left as is", "=?utf-8?Q?a=ZZ?=", "=?utf-8?Q?a=ZZ?="],
    ["bad base64 left as is", "=?utf-8?B?w6l*?=", "=?utf-8?B?w6l*?="],
    ["base64 bad length left as is", "=?utf-8?B?abcde?=", "=?utf-8?B?abcde?="],
    ["unknown encoding left as is", "=?utf-8?X?abc?=", "=?utf-8?X?abc?="],
    ["unterminated left as is", "=?utf-8?Q?abc", "=?utf-8?Q?abc"],
    [
      "malformed between good words keeps spacing",
      "=?utf-8?Q?a?= =?x-nope?Q?b?= =?utf-8?Q?c?=",
      "a =?x-nope?Q?b?= c",
    ],
    ["empty encoded text", "=?utf-8?Q??=", ""],
  ];
  for (const [name, input, expected] of cases) {
    assert.equal(decodeRfc2047(input), expected, name);
  }
});

Deno.test("parseHeaderFields reads the five fields, decoded and trimmed", () => {
  const headers = parseHeaderFields(enc(
    "Received: from x\r\n" +
      "From: =?utf-8?Q?J=C3=B6rg?= <jorg@example.com>\r\n" +
      "To: bob@example.com,\r\n\tcarol@example.org\r\n" +
      "Subject:   =?ISO-8859-1?Q?Caf=E9?=\r\n   au lait  \r\n" +
      "Date: Mon, 23 Nov 2026 06:53:00 +0000\r\n" +
      "Message-ID: <abc@example.com>\r\n" +
      "\r\n" +
      "Subject: not a header, body\r\n",
  ));
  assert.deepEqual(headers, {
    from: "Jörg <jorg@example.com>",
    to: "bob@example.com,\tcarol@example.org",
    subject: "Café   au lait",
    date: "Mon, 23 Nov 2026 06:53:00 +0000",
    messageId: "<abc@example.com>",
  });
});

Deno.test("parseHeaderFields: first occurrence wins, names are case-insensitive", () => {
  const headers = parseHeaderFields(
    enc("SUBJECT: one\r\nsubject: two\r\nmessage-id: <x@y>\r\n\r\n"),
  );
  assert.deepEqual(headers, { subject: "one", messageId: "<x@y>" });
});

Deno.test("parseHeaderFields: missing headers have no key", () => {
  assert.deepEqual(parseHeaderFields(enc("X-Other: 1\r\n\r\nbody")), {});
  assert.deepEqual(parseHeaderFields(new Uint8Array(0)), {});
  assert.deepEqual(parseHeaderFields(enc("\r\nSubject: body\r\n")), {});
});

Deno.test("parseHeaderFields tolerates bare LF and a missing final newline", () => {
  assert.deepEqual(parseHeaderFields(enc("Subject: a\n b\nTo: x\n\nFrom: body\n")), {
    subject: "a b",
    to: "x",
  });
  assert.deepEqual(parseHeaderFields(enc("Subject: only")), { subject: "only" });
});

Deno.test("parseHeaderFields: empty value, WSP before colon, Date and Message-ID not decoded", () => {
  assert.deepEqual(
    parseHeaderFields(enc("Subject:\r\nFrom : a@b\r\nMessage-ID: <=?utf-8?Q?x?=@y>\r\n\r\n")),
    { subject: "", from: "a@b", messageId: "<=?utf-8?Q?x?=@y>" },
  );
});

Deno.test("parseHeaderFields ignores an mbox From_ line and continuation lines without a field", () => {
  assert.deepEqual(
    parseHeaderFields(
      enc(" stray\r\nFrom alice@example.com Mon Nov 23 06:53:00 2026\r\nTo: b\r\n\r\n"),
    ),
    { to: "b" },
  );
});

Deno.test("parseHeaderFields reads raw UTF-8 (RFC 6532) and falls back to Windows-1252", () => {
  assert.deepEqual(parseHeaderFields(enc("Subject: Grüße\r\n\r\n")), { subject: "Grüße" });
  const latin1 = new Uint8Array([...enc("Subject: caf"), 0xe9, 0x0d, 0x0a, 0x0d, 0x0a]);
  assert.deepEqual(parseHeaderFields(latin1), { subject: "café" });
});

Deno.test("parseHeaderFields never throws on arbitrary bytes", () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 2048 }), (bytes) => {
      const headers = parseHeaderFields(bytes);
      for (const value of Object.values(headers)) assert.equal(typeof value, "string");
    }),
    { numRuns: 500 },
  );
});

Deno.test("parseHeaderFields never throws on header-shaped text", () => {
  const piece = fc.constantFrom(
    "Subject:",
    "From: ",
    "To:",
    "=?",
    "?=",
    "?Q?",
    "?B?",
    "utf-8",
    "=C3",
    "_",
    " ",
    "\t",
    "\r\n",
    "\n",
    "\r",
    ":",
    "a",
    "é",
  );
  fc.assert(
    fc.property(fc.array(piece, { maxLength: 60 }), (pieces) => {
      const text = pieces.join("");
      parseHeaderFields(enc(text));
      assert.equal(typeof decodeRfc2047(text), "string");
    }),
    { numRuns: 1000 },
  );
});

Deno.test("parseHeaderFields: a field still open at the end of a cut prefix is left out", () => {
  const prefix = enc("To: bob@example.com\r\nSubject: boundary su");
  assert.deepEqual(parseHeaderFields(prefix, true), { to: "bob@example.com" });
  // The whole message: its last field is whole.
  assert.deepEqual(parseHeaderFields(prefix), { to: "bob@example.com", subject: "boundary su" });
  // A header section that ended inside the prefix is whole either way.
  assert.deepEqual(parseHeaderFields(enc("Subject: s\r\n\r\nbody"), true), { subject: "s" });
});

Deno.test("parseHeaderFields trims spaces and tabs only, never decoded whitespace", () => {
  assert.deepEqual(
    parseHeaderFields(enc("Subject: \t=?UTF-8?Q?=C2=A0x?= \r\nTo: =?UTF-8?Q?=E3=80=80?=\r\n\r\n")),
    { subject: "\u00a0x", to: "\u3000" },
  );
  assert.deepEqual(parseHeaderFields(enc("Subject: \u00a0raw \r\n\r\n")), { subject: "\u00a0raw" });
});
