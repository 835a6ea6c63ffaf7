/**
 * The DATA body decoder (RFC 5321 §4.1.1.4, §4.5.2): finds the end of data
 * and removes dot-stuffing, as a transition table over bytes whose state is
 * kept across chunks. It hands out subarrays of its input, never copies.
 *
 * @module
 */

const CR = 0x0d;
const LF = 0x0a;
const DOT = 0x2e;

/** Decoder states. `BOL` is a beginning of line: the start of DATA or right after CRLF. */
const BOL = 0;
/** Inside a line. */
const TEXT = 1;
/** After a CR inside the body (the CR is content). */
const AFTER_CR = 2;
/** After a dot at the beginning of a line (the dot is dropped). */
const DOT_BOL = 3;
/** After CRLF "." CR: the CR is held back until the next byte tells whether data ends. */
const DOT_CR = 4;
/** CRLF "." CRLF was seen. */
const END = 5;
const STATES = 6;

/**
 * `NEXT[state * 256 + byte]` is the next state. Only CRLF "." CRLF ends the
 * body, with the first CRLF part of the message (or the start of DATA in its
 * place); bare LF and bare CR never start a line, so `LF . LF`, `LF . CRLF`
 * and `CR . CR` are content (SMTP smuggling, CVE-2023-51764).
 */
const NEXT: Uint8Array = buildTable([
  // [from, byte or "any", to]
  [BOL, "any", TEXT],
  [BOL, CR, AFTER_CR],
  [BOL, DOT, DOT_BOL],
  [TEXT, "any", TEXT],
  [TEXT, CR, AFTER_CR],
  [AFTER_CR, "any", TEXT],
  [AFTER_CR, CR, AFTER_CR],
  [AFTER_CR, LF, BOL],
  // RFC 5321 §4.5.2: the line loses its first dot whatever follows (`.\rX` keeps `\rX`).
  [DOT_BOL, "any", TEXT],
  [DOT_BOL, CR, DOT_CR],
  // Not the end after all: the held CR is content; the byte is read as after a CR.
  [DOT_CR, "any", TEXT],
  [DOT_CR, CR, AFTER_CR],
  [DOT_CR, LF, END],
  [END, "any", END],
]);

function buildTable(rules: [number, number | "any", number][]): Uint8Array {
  const table = new Uint8Array(STATES * 256);
  for (const [from, byte, to] of rules) {
    if (byte === "any") table.fill(to, from * 256, from * 256 + 256);
    else table[from * 256 + byte] = to;
  }
  return table;
}

/** A CR held back at the end of one chunk and released in the next. */
const HELD_CR: Uint8Array = new Uint8Array([CR]);

/**
 * Streams a DATA body: `decode(chunk, sink)` passes the unstuffed content to
 * `sink` (subarrays of `chunk`) and returns how many bytes of `chunk` belong
 * to the body including its terminator; `done` turns true at the terminator.
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
  #state = BOL;

  /** True once CRLF "." CRLF has been consumed. */
  get done(): boolean {
    return this.#state === END;
  }

  /** Starts a new body (the start of DATA counts as a beginning of line). */
  reset(): void {
    this.#state = BOL;
  }

  /**
   * Consumes body bytes from `chunk` until the terminator or the chunk's end.
   *
   * @returns the number of bytes consumed (all of them unless `done`)
   */
  decode(chunk: Uint8Array, sink: (bytes: Uint8Array) => void): number {
    let state = this.#state;
    if (state === END) return 0;
    const n = chunk.length;
    let runStart = 0;
    let i = 0;
    while (i < n) {
      if (state === TEXT) {
        // Fast path: inside a line only CR changes the state.
        const cr = chunk.indexOf(CR, i);
        if (cr < 0) {
          i = n;
          break;
        }
        i = cr + 1;
        state = AFTER_CR;
        continue;
      }
      const next = NEXT[state * 256 + chunk[i]!]!;
      if (state === BOL && next === DOT_BOL) {
        // Dot-unstuffing: emit up to the dot, skip it.
        if (i > runStart) sink(chunk.subarray(runStart, i));
        runStart = i + 1;
      } else if (next === DOT_CR) {
        runStart = i + 1;
      } else if (state === DOT_CR) {
        if (next === END) {
          this.#state = END;
          return i + 1;
        }
        if (i > 0) runStart = i - 1;
        else sink(HELD_CR);
      }
      state = next;
      i++;
    }
    if (n > runStart) sink(chunk.subarray(runStart, n));
    this.#state = state;
    return n;
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
