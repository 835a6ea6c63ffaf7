/**
 * Byte helpers shared by the socket layer and the spool (a leaf: imports nothing).
 *
 * @module
 */

/** Joins chunks into one array; a single chunk is returned as is (no copy). */
export function concatBytes(chunks: Uint8Array[]): Uint8Array {
  if (chunks.length === 1) return chunks[0]!;
  let length = 0;
  for (const c of chunks) length += c.length;
  const out = new Uint8Array(length);
  let offset = 0;
  for (const c of chunks) {
    out.set(c, offset);
    offset += c.length;
  }
  return out;
}

/**
 * Writes all of `bytes` with synchronous writes (a file, stderr), looping
 * over short writes.
 *
 * @param out Anything with `writeSync`, e.g. a `Deno.FsFile` or `Deno.stderr`.
 * @param bytes What to write.
 */
export function writeAllSync(out: { writeSync(p: Uint8Array): number }, bytes: Uint8Array): void {
  for (let offset = 0; offset < bytes.length;) offset += out.writeSync(bytes.subarray(offset));
}

const ENCODER = new TextEncoder();
const scratch = new Uint8Array(16 * 1024);

/**
 * `text` as UTF-8 in a buffer shared by every caller: valid only until the
 * next call, so use it synchronously (a file or log write). Saves the
 * allocation `TextEncoder.encode` makes, about 1 µs per call in Deno. A
 * text that might not fit gets its own array: one huge `.json` (a thousand
 * recipients) must not keep a huge buffer alive.
 *
 * @param text The text to encode.
 * @returns A view of the shared buffer, or a new array.
 */
export function encodeShared(text: string): Uint8Array {
  // UTF-8 takes at most 3 bytes per UTF-16 code unit.
  if (text.length * 3 > scratch.length) return ENCODER.encode(text);
  const { written } = ENCODER.encodeInto(text, scratch);
  return scratch.subarray(0, written);
}
