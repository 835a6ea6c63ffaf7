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
