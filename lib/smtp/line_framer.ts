/**
 * Command-line framing: finds the next line ending in a byte buffer, with a
 * hard cap on line length and a remembered scan offset, so a line arriving
 * byte by byte costs O(n) (h11 `_receivebuffer.py`), and an overlong line
 * costs bounded memory (std `unstable_capped_delimiter_stream.ts`).
 *
 * @module
 */

import { MAX_AUTH_LINE_OCTETS, MAX_COMMAND_LINE_OCTETS } from "./limits.ts";

const CR = 0x0d;
const LF = 0x0a;
const SP = 0x20;
/** `AUTH` upper case; ORing 0x20 makes a letter lower case. */
const AUTH = [0x61, 0x75, 0x74, 0x68];

/** What `LineFramer.frame` found; `consumed` bytes from `start` are used up. */
export type Frame =
  /** A complete line: `buf.subarray(lineStart, lineEnd)` without CRLF/LF. */
  | { type: "line"; lineStart: number; lineEnd: number; consumed: number }
  /**
   * A line over the limit was detected: reply once (`500 5.5.6` when `auth`,
   * a line of an AUTH exchange, else `500 5.5.2`); its rest is skipped.
   */
  | { type: "too-long"; consumed: number; auth: boolean }
  /** The end of a skipped overlong line: nothing to answer. */
  | { type: "skipped"; consumed: number }
  /** No complete line yet; `consumed` bytes (of an overlong line) may be dropped. */
  | { type: "need-data"; consumed: number };

/**
 * Splits command lines. A line ends at LF; one CR before it is stripped, so
 * a bare LF also ends a command line (lenient, like Postfix). A line longer
 * than `MAX_COMMAND_LINE_OCTETS`, its ending included (RFC 5321 §4.5.3.1.4
 * counts the CRLF), is reported once as `too-long` and then discarded up to
 * its end without being buffered. Lines of an AUTH exchange (the `AUTH`
 * command, or any line while `sasl` is set) may hold `MAX_AUTH_LINE_OCTETS`
 * before their ending (RFC 4954 §4 asks servers to take at least that many).
 *
 * @example Usage
 * ```ts
 * import { LineFramer } from "./line_framer.ts";
 * const framer = new LineFramer();
 * const buf = new TextEncoder().encode("NOOP\r\n");
 * framer.frame(buf, 0, buf.length); // { type: "line", lineStart: 0, lineEnd: 4, consumed: 6 }
 * ```
 */
export class LineFramer {
  /** Bytes after the line start already searched for LF (h11's `_next_line_search`). */
  #scanned = 0;
  /** Inside an overlong line: drop bytes up to the next LF. */
  #skipping = false;
  #limit: number;
  #authLimit: number;
  /** Inside an AUTH exchange: every line is a SASL response (RFC 4954 §4). */
  sasl = false;

  /**
   * Creates a framer.
   *
   * @param limit longest accepted line, its ending included
   * @param authLimit longest accepted line of an AUTH exchange, without its ending
   */
  constructor(limit: number = MAX_COMMAND_LINE_OCTETS, authLimit: number = MAX_AUTH_LINE_OCTETS) {
    this.#limit = limit;
    // An AUTH line may always be as long as any other (its own count leaves out the ending).
    this.#authLimit = Math.max(limit, authLimit);
  }

  /** Forgets a partly scanned line (the bytes it was scanning were dropped). */
  reset(): void {
    this.#scanned = 0;
    this.#skipping = false;
  }

  /**
   * Looks for the next line in `buf[start, end)`. The caller keeps unconsumed
   * bytes and passes them again (at any offset) with more appended.
   */
  frame(buf: Uint8Array, start: number, end: number): Frame {
    if (this.#skipping) {
      const lf = buf.subarray(start, end).indexOf(LF);
      if (lf < 0) return { type: "need-data", consumed: end - start };
      this.#skipping = false;
      return { type: "skipped", consumed: lf + 1 };
    }
    const from = start + this.#scanned;
    const lf = from < end ? buf.subarray(from, end).indexOf(LF) : -1;
    if (lf >= 0) {
      this.#scanned = 0;
      const at = from + lf;
      const lineEnd = at > start && buf[at - 1] === CR ? at - 1 : at;
      if (at + 1 - start > this.#limit) {
        const auth = this.#isAuth(buf, start);
        if (!auth || lineEnd - start > this.#authLimit) {
          return { type: "too-long", consumed: at + 1 - start, auth };
        }
      }
      return { type: "line", lineStart: start, lineEnd, consumed: at + 1 - start };
    }
    // Without LF, `limit` octets can no longer become a valid line (the LF
    // would make it longer); an AUTH line may still end after `authLimit` and a CR.
    if (end - start >= this.#limit) {
      const auth = this.#isAuth(buf, start);
      if (!auth || end - start > this.#authLimit + 1) {
        this.#scanned = 0;
        this.#skipping = true;
        return { type: "too-long", consumed: end - start, auth };
      }
    }
    this.#scanned = end - start;
    return { type: "need-data", consumed: 0 };
  }

  /** True for a line of an AUTH exchange; only asked once a line reaches `limit`. */
  #isAuth(buf: Uint8Array, start: number): boolean {
    if (this.sasl) return true;
    for (let i = 0; i < AUTH.length; i++) {
      if ((buf[start + i]! | 0x20) !== AUTH[i]) return false;
    }
    return buf[start + AUTH.length] === SP;
  }
}
