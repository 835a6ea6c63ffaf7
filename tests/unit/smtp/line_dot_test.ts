import { strictEqual } from "node:assert/strict";
import fc from "fast-check";
import { nextLineDot } from "../../../lib/smtp/_line_dot.ts";

/** The definition, one byte at a time. */
function reference(bytes: Uint8Array, from: number): number {
  for (let d = from; d < bytes.length; d++) {
    if (bytes[d] === 0x2e && (d === 0 || bytes[d - 1] === 0x0a)) return d;
  }
  return -1;
}

/** Every answer from `from` onwards, as the decoder walks them. */
function walk(find: (b: Uint8Array, from: number) => number, bytes: Uint8Array, from: number) {
  const found: number[] = [];
  for (let d = find(bytes, from); d >= 0; d = find(bytes, d + 1)) found.push(d);
  return found;
}

/** Bytes where dots, LFs and CRs are common, in a larger buffer at any offset. */
const placed = fc.record({
  content: fc.array(fc.constantFrom(0x2e, 0x0a, 0x0d, 0x61, 0x2e0a, 0x00, 0x80, 0xae, 0x8a, 0xff), {
    maxLength: 400,
    size: "max", // the word loop needs 64 bytes or more
  }),
  before: fc.integer({ min: 0, max: 9 }),
  after: fc.integer({ min: 0, max: 9 }),
  from: fc.oneof(fc.nat({ max: 8 }), fc.nat({ max: 420 })),
  shared: fc.boolean(),
}).map(({ content, before, after, from, shared }) => {
  // 0x2e0a stands for LF then dot, so that line-start dots are frequent.
  const flat = content.flatMap((c) => (c === 0x2e0a ? [0x0a, 0x2e] : [c]));
  const size = before + flat.length + after;
  const buffer = shared ? new SharedArrayBuffer(size) : new ArrayBuffer(size);
  const whole = new Uint8Array(buffer);
  whole.fill(0x0a, 0, before); // an LF just before the view must not count
  whole.fill(0x2e, before + flat.length); // nor dots just after it
  const bytes = whole.subarray(before, before + flat.length);
  bytes.set(flat);
  return { bytes, from: Math.min(from, bytes.length) };
});

Deno.test("property: nextLineDot finds what the byte-by-byte definition finds", () => {
  fc.assert(
    fc.property(placed, ({ bytes, from }) => {
      strictEqual(
        JSON.stringify(walk(nextLineDot, bytes, from)),
        JSON.stringify(walk(reference, bytes, from)),
      );
    }),
    { numRuns: 2000 },
  );
});

Deno.test("nextLineDot: a resizable buffer that grew since its last scan is scanned whole", () => {
  const buffer = new ArrayBuffer(128, { maxByteLength: 4096 });
  const first = new Uint8Array(buffer, 0, 128).fill(0x61);
  strictEqual(nextLineDot(first, 0), -1);
  buffer.resize(4096);
  const grown = new Uint8Array(buffer).fill(0x61);
  grown.set([0x0d, 0x0a, 0x2e], 3000);
  strictEqual(nextLineDot(grown, 0), 3002);
});

Deno.test("nextLineDot: views of two buffers in turn, and a dot in every position of a word", () => {
  const line = (s: string) => new TextEncoder().encode(s.repeat(40));
  const a = line("abc\r\n.de\r\n");
  const b = line("a.b.c\n..x\r\n");
  for (let i = 0; i < 3; i++) {
    strictEqual(JSON.stringify(walk(nextLineDot, a, 0)), JSON.stringify(walk(reference, a, 0)));
    strictEqual(JSON.stringify(walk(nextLineDot, b, 0)), JSON.stringify(walk(reference, b, 0)));
  }
  for (let at = 0; at < 80; at++) {
    const bytes = new Uint8Array(100).fill(0x61);
    bytes[at] = 0x2e;
    if (at > 0) bytes[at - 1] = 0x0a;
    strictEqual(nextLineDot(bytes, 0), at);
    strictEqual(nextLineDot(bytes, at + 1), -1);
  }
});
