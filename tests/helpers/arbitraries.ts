/**
 * fast-check arbitraries for the SMTP core: raw bytes biased towards the
 * bytes that matter (CR, LF, dot), chunkings, and SMTP-shaped input that
 * reaches deep states (bodies, BDAT chunks, SASL exchanges, STARTTLS).
 *
 * @module
 */

import fc, { type Arbitrary } from "fast-check";
import { concat } from "./feed.ts";

const ENCODER = new TextEncoder();

/** Bytes where CR, LF, "." and a few letters are frequent, plus any byte now and then. */
export function edgyBytes(maxLength = 200): Arbitrary<Uint8Array> {
  const byte = fc.oneof(
    { weight: 6, arbitrary: fc.constantFrom(0x0d, 0x0a, 0x2e, 0x78, 0x20) },
    { weight: 1, arbitrary: fc.integer({ min: 0, max: 255 }) },
  );
  return fc.array(byte, { maxLength, size: "max" }).map((a) => Uint8Array.from(a));
}

/** Chunk sizes for splitting input: mostly tiny, sometimes large. */
export function chunkSizes(): Arbitrary<number[]> {
  return fc.array(
    fc.oneof(fc.integer({ min: 1, max: 4 }), fc.integer({ min: 1, max: 600 })),
    { minLength: 1, maxLength: 12 },
  );
}

const COMMAND_LINES = [
  "EHLO client.test",
  "HELO client.test",
  "EHLO",
  "MAIL FROM:<alice@example.com>",
  "MAIL FROM:<> BODY=8BITMIME SIZE=100",
  "MAIL FROM:<a@b.test> BODY=BINARYMIME",
  "MAIL FROM:<ü@b.test> SMTPUTF8",
  "MAIL FROM:alice@example.com",
  "MAIL FROM:<a@b.test> FOO=BAR",
  "RCPT TO:<bob@example.com>",
  "RCPT TO:<bob@example.com> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;bob@example.com",
  "RCPT TO:<@r.test:carol@example.org>",
  "RCPT TO:<Postmaster>",
  "DATA",
  "BDAT 5",
  "BDAT 0 LAST",
  "BDAT 3 LAST",
  "BDAT x",
  "RSET",
  "NOOP",
  "VRFY bob@example.com",
  "EXPN list",
  "HELP",
  "STARTTLS",
  "AUTH PLAIN",
  "AUTH PLAIN AGJvYgBzZWNyZXQ=",
  "AUTH LOGIN",
  "AUTH CRAM-MD5",
  "Ym9i",
  "*",
  "XCLIENT NAME=spike.test ADDR=192.0.2.1 HELO=spike.test",
  "XFORWARD ADDR=192.0.2.2 IDENT=abc",
  "QUIT",
  ".",
  "..",
  "hello world",
  "",
];

/** One piece of SMTP-shaped input: a command line (CRLF or bare LF), body text or junk. */
function piece(): Arbitrary<Uint8Array> {
  const line = fc.tuple(fc.constantFrom(...COMMAND_LINES), fc.constantFrom("\r\n", "\r\n", "\n"))
    .map(([l, end]) => ENCODER.encode(l + end));
  return fc.oneof(
    { weight: 8, arbitrary: line },
    { weight: 2, arbitrary: edgyBytes(40) },
    { weight: 1, arbitrary: fc.constant(ENCODER.encode("\r\n.\r\n")) },
  );
}

/** A whole client stream made of SMTP-shaped pieces. */
export function smtpInput(maxPieces = 40): Arbitrary<Uint8Array> {
  return fc.array(piece(), { maxLength: maxPieces, size: "medium" }).map(concat);
}
