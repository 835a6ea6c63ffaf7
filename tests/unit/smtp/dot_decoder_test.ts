import { deepStrictEqual, strictEqual } from "node:assert/strict";
import fc from "fast-check";
import { DotDecoder, dotStuff } from "../../../lib/smtp/dot_decoder.ts";
import { bytes, chunk, concat } from "../../helpers/feed.ts";
import { chunkSizes, edgyBytes } from "../../helpers/arbitraries.ts";

const DECODER = new TextDecoder();

/** Decodes `input` fed in pieces; returns the body, bytes consumed and whether it ended. */
function decode(input: Uint8Array, sizes: number[] = []): {
  body: Uint8Array;
  consumed: number;
  done: boolean;
} {
  const decoder = new DotDecoder();
  const parts: Uint8Array[] = [];
  let consumed = 0;
  for (const piece of chunk(input, sizes)) {
    consumed += decoder.decode(piece, (b) => parts.push(b.slice()));
    if (decoder.done) break;
  }
  return { body: concat(parts), consumed, done: decoder.done };
}

/**
 * The oracle: split at each first CRLF from the start (RFC 5321 §4.1.1.4 lines);
 * the line "." CRLF ends the body, a leading dot is removed (§4.5.2).
 */
function reference(input: Uint8Array): { body: Uint8Array; consumed: number } | null {
  const out: Uint8Array[] = [];
  let i = 0;
  for (;;) {
    let j = i;
    while (j + 1 < input.length && !(input[j] === 13 && input[j + 1] === 10)) j++;
    if (j + 1 >= input.length) return null;
    const line = input.subarray(i, j + 2);
    if (line.length === 3 && line[0] === 0x2e) return { body: concat(out), consumed: j + 2 };
    out.push(line[0] === 0x2e ? line.subarray(1) : line);
    i = j + 2;
  }
}

const CASES: [name: string, input: string, body: string | null, rest?: string][] = [
  ["ends at CRLF.CRLF, the first CRLF is content", "x\r\n.\r\nNEXT", "x\r\n", "NEXT"],
  ["an empty message right after 354", ".\r\n", ""],
  ["a stuffed dot loses one dot", "..x\r\n...\r\n.\r\n", ".x\r\n..\r\n"],
  [".\\rX keeps its CR (the line loses only its dot)", "a\r\n.\rX\r\n.\r\n", "a\r\n\rX\r\n"],
  ["x\\r\\r\\n.\\r\\n ends the message", "x\r\r\n.\r\n", "x\r\r\n"],
  ["bare LF . LF is content (CVE-2023-51764)", "a\n.\nb\r\n.\r\n", "a\n.\nb\r\n"],
  ["bare LF . CRLF is content", "a\n.\r\nb\r\n.\r\n", "a\n.\r\nb\r\n"],
  ["CR . CR is content", "a\r.\rb\r\n.\r\n", "a\r.\rb\r\n"],
  ["CRLF . LF is content (the dot is unstuffed)", "a\r\n.\nb\r\n.\r\n", "a\r\n\nb\r\n"],
  ["CR . CRLF is content", "a\r.\r\nb\r\n.\r\n", "a\r.\r\nb\r\n"],
  [".\\r\\r\\n is not the end", ".\r\r\n.\r\n", "\r\r\n"],
  ["a line of only a dot at the very start ends at once", ".\r\nx\r\n.\r\n", "", "x\r\n.\r\n"],
  ["no terminator: not done", "abc\r\n.\r", null],
];

for (const [name, input, body, rest] of CASES) {
  Deno.test(`DotDecoder: ${name}`, () => {
    const data = bytes(input);
    for (const sizes of [[], [1], [2], [3, 1]]) {
      const got = decode(data, sizes);
      strictEqual(got.done, body !== null, `done, sizes ${sizes}`);
      if (body === null) {
        strictEqual(got.consumed, data.length);
        continue;
      }
      strictEqual(DECODER.decode(got.body), body, `body, sizes ${sizes}`);
      strictEqual(DECODER.decode(data.subarray(got.consumed)), rest ?? "", `rest, sizes ${sizes}`);
    }
  });
}

Deno.test("DotDecoder hands out subarrays of its input, not copies", () => {
  const data = bytes("hello\r\nworld\r\n.\r\n");
  const parts: Uint8Array[] = [];
  new DotDecoder().decode(data, (b) => parts.push(b));
  strictEqual(parts.length, 1);
  strictEqual(parts[0]!.buffer, data.buffer);
});

Deno.test("DotDecoder releases a CR held across chunks", () => {
  const got = decode(bytes("a\r\n.\rb\r\n.\r\n"), [4, 1, 1]);
  strictEqual(DECODER.decode(got.body), "a\r\n\rb\r\n");
});

Deno.test("dotStuff stuffs leading dots and terminates", () => {
  strictEqual(DECODER.decode(dotStuff(bytes(".a\r\nb\r\n.\r\n"))), "..a\r\nb\r\n..\r\n.\r\n");
  strictEqual(DECODER.decode(dotStuff(bytes("x"))), "x\r\n.\r\n");
  strictEqual(DECODER.decode(dotStuff(bytes(""))), ".\r\n");
  strictEqual(DECODER.decode(dotStuff(bytes("a\n.b"))), "a\n.b\r\n.\r\n");
});

Deno.test("property: decode(dotStuff(m)) is m (CRLF-terminated) under any chunking", () => {
  fc.assert(
    fc.property(edgyBytes(300), chunkSizes(), edgyBytes(20), (m, sizes, trailing) => {
      const stuffed = dotStuff(m);
      const got = decode(concat([stuffed, trailing]), sizes);
      const endsInCrlf = m.length === 0 || (m.at(-2) === 13 && m.at(-1) === 10);
      const expected = endsInCrlf ? m : concat([m, bytes("\r\n")]);
      strictEqual(got.done, true);
      strictEqual(got.consumed, stuffed.length);
      deepStrictEqual(got.body, expected);
    }),
    { numRuns: 400 },
  );
});

Deno.test("property: DotDecoder equals the naive whole-buffer reference", () => {
  fc.assert(
    fc.property(edgyBytes(300), chunkSizes(), (input, sizes) => {
      const expected = reference(input);
      const got = decode(input, sizes);
      if (expected === null) {
        strictEqual(got.done, false);
        strictEqual(got.consumed, input.length);
      } else {
        strictEqual(got.done, true);
        strictEqual(got.consumed, expected.consumed);
        deepStrictEqual(got.body, expected.body);
      }
    }),
    { numRuns: 600 },
  );
});
