/**
 * The DATA body decoder (RFC 5321 §4.1.1.4, §4.5.2): finds the end of data
 * and removes dot-stuffing, with the little state it needs kept across
 * chunks. It hands out subarrays of its input, never copies.
 *
 * @module
 */

import { nextLineDot } from "./_line_dot.ts";

const CR = 0x0d;
const LF = 0x0a;
const DOT = 0x2e;

/** Nothing pending between chunks. */
const NONE = 0;
/** A line-start dot ended the last chunk: it is dropped; the next bytes tell whether data ends. */
const DOT_PENDING = 1;
/** A line-start dot and a CR ended the last chunk: the CR is held back until the next byte. */
const DOT_CR_PENDING = 2;
/** CRLF "." CRLF was seen. */
const END = 3;

/** The two bytes before the body: the start of DATA counts as a line start. */
const CRLF_TAIL = (CR << 8) | LF;

/** A CR held back at the end of one chunk and released in the next. */
const HELD_CR: Uint8Array = new Uint8Array([CR]);

/**
 * Streams a DATA body: `decode(chunk, sink)` passes the unstuffed content to
 * `sink` (subarrays of `chunk`) and returns how many bytes of `chunk` belong
 * to the body including its terminator; `done` turns true at the terminator.
 *
 * Only dots matter: a dot right after CRLF (or first in the body) is dropped,
 * and ends the body when CRLF follows it. Every other byte is content, so
 * bare LF and bare CR never start a line and `LF . LF`, `LF . CRLF` and
 * `CR . CR` are content (SMTP smuggling, CVE-2023-51764). The scan jumps from
 * one dot after an LF to the next ({@linkcode nextLineDot}, four bytes at a
 * time), not from line to line, and never stops at a dot inside a line.
 *
 * @example Usage
 * ```ts
 * import { DotDecoder } from "./dot_decoder.ts";
 * const decoder = new DotDecoder();
 * const parts: Uint8Array[] = [];
 * decoder.decode(new TextEncoder().encode("..hi\r\n.\r\nQUIT\r\n"), (b) => parts.push(b));
 * // parts hold ".hi\r\n"; decoder.done is true; 9 bytes were used
 * ```
 */
export class DotDecoder {
  #pending = NONE;
  /** The last two bytes consumed (previous chunks), `(b2 << 8) | b1`. */
  #tail = CRLF_TAIL;

  /** True once CRLF "." CRLF has been consumed. */
  get done(): boolean {
    return this.#pending === END;
  }

  /** Starts a new body (the start of DATA counts as a beginning of line). */
  reset(): void {
    this.#pending = NONE;
    this.#tail = CRLF_TAIL;
  }

  /**
   * Consumes body bytes from `chunk` until the terminator or the chunk's end.
   *
   * @returns the number of bytes consumed (all of them unless `done`)
   */
  decode(chunk: Uint8Array, sink: (bytes: Uint8Array) => void): number {
    const n = chunk.length;
    if (this.#pending === END || n === 0) return 0;
    if (this.#pending === DOT_PENDING) {
      this.#pending = NONE;
      if (chunk[0] === CR) {
        if (n === 1) return this.#stop(DOT_CR_PENDING, chunk, 1);
        if (chunk[1] === LF) return this.#stop(END, chunk, 2);
      }
    } else if (this.#pending === DOT_CR_PENDING) {
      if (chunk[0] === LF) return this.#stop(END, chunk, 1);
      this.#pending = NONE;
      sink(HELD_CR); // not the end after all: the CR is content
    }
    let runStart = 0;
    for (let d = nextLineDot(chunk, 0); d >= 0; d = nextLineDot(chunk, d + 1)) {
      if (!this.#atLineStart(chunk, d)) continue;
      if (d > runStart) sink(chunk.subarray(runStart, d));
      runStart = d + 1; // RFC 5321 §4.5.2: the line loses its first dot whatever follows
      if (d + 1 === n) return this.#stop(DOT_PENDING, chunk, n);
      if (chunk[d + 1] === CR) {
        if (d + 2 === n) return this.#stop(DOT_CR_PENDING, chunk, n);
        if (chunk[d + 2] === LF) return this.#stop(END, chunk, d + 3);
      }
    }
    if (n > runStart) sink(chunk.subarray(runStart, n));
    return this.#stop(NONE, chunk, n);
  }

  /** Whether `chunk[d]` follows CRLF, looking back into earlier chunks. */
  #atLineStart(chunk: Uint8Array, d: number): boolean {
    if (d >= 2) return chunk[d - 2] === CR && chunk[d - 1] === LF;
    if (d === 1) return (this.#tail & 0xff) === CR && chunk[0] === LF;
    return this.#tail === CRLF_TAIL;
  }

  /** Records the state and the last two bytes of `chunk[0, used)`; returns `used`. */
  #stop(pending: number, chunk: Uint8Array, used: number): number {
    this.#pending = pending;
    this.#tail = used >= 2
      ? (chunk[used - 2]! << 8) | chunk[used - 1]!
      : ((this.#tail & 0xff) << 8) | chunk[0]!;
    return used;
  }
}

/**
 * The DATA transmission of `body` (RFC 5321 §4.5.2): a dot is added to every
 * line that starts with one, a missing final CRLF is added (a body can only
 * end at a line end, §4.1.1.4), then "." CRLF ends it. For clients and tests.
 *
 * @example Usage
 * ```ts
 * import { dotStuff } from "./dot_decoder.ts";
 * dotStuff(new TextEncoder().encode(".a\r\nb")); // "..a\r\nb\r\n.\r\n" as bytes
 * ```
 */
export function dotStuff(body: Uint8Array): Uint8Array {
  let dots = body[0] === DOT ? 1 : 0;
  for (let i = body.indexOf(LF); i >= 0; i = body.indexOf(LF, i + 1)) {
    if (i > 0 && body[i - 1] === CR && body[i + 1] === DOT) dots++;
  }
  const endsInCrlf = body.length === 0 ||
    (body.length >= 2 && body[body.length - 2] === CR && body[body.length - 1] === LF);
  const out = new Uint8Array(body.length + dots + (endsInCrlf ? 0 : 2) + 3);
  let o = 0;
  let lineStart = true;
  for (let i = 0; i < body.length; i++) {
    const b = body[i]!;
    if (lineStart && b === DOT) out[o++] = DOT;
    out[o++] = b;
    lineStart = b === LF && i > 0 && body[i - 1] === CR;
  }
  if (!endsInCrlf) {
    out[o++] = CR;
    out[o++] = LF;
  }
  out[o++] = DOT;
  out[o++] = CR;
  out[o++] = LF;
  return out;
}
