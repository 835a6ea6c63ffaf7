/**
 * BDAT chunks (RFC 3030): the `BDAT n [LAST]` argument grammar and a decoder
 * that hands out whatever part of the n octets is buffered, as h11's
 * `ChunkedReader` does, so a chunk may arrive in any number of pieces.
 *
 * @module
 */

import { EXACT_DIGITS } from "./limits.ts";

/** Arguments of one BDAT command. */
export interface BdatArgs {
  /** Octets that follow the command line. */
  size: number;
  /** RFC 3030 end-marker: this chunk ends the message. */
  last: boolean;
}

// RFC 3030 §4: bdat-cmd = "BDAT" SP chunk-size [ SP end-marker ] CR LF
//   chunk-size = 1*DIGIT ; end-marker = "LAST"
const BDAT_ARGS_REGEXP = /^(\d+)(?: +(LAST))?$/i;

/**
 * Parses `n [LAST]` (LAST case-insensitive).
 *
 * @returns the chunk size and whether it is the last chunk, or null when malformed
 *
 * @example Usage
 * ```ts
 * import { parseBdatArgs } from "./bdat_decoder.ts";
 * parseBdatArgs("0 LAST"); // { size: 0, last: true }
 * parseBdatArgs("x"); // null
 * ```
 */
export function parseBdatArgs(args: string): BdatArgs | null {
  const match = BDAT_ARGS_REGEXP.exec(args);
  return match ? { size: chunkSize(match[1]!), last: match[2] !== undefined } : null;
}

/** A chunk-size followed by a space (or a tab) and anything: `5 FOO`, `10 LAST LAST`. */
const LEADING_SIZE_REGEXP = /^(\d+)[ \t]/;

/**
 * The chunk size of a malformed BDAT line that still begins with one
 * (`BDAT 5 FOO`): the client sends those octets all the same, and read as
 * commands they would run as commands (RFC 1830 §3, BDAT's first definition:
 * the receiver "must accept and discard" chunks after a failed one).
 *
 * @returns the size, or null when the line gives none (`x`, `+1`, empty)
 *
 * @example Usage
 * ```ts
 * import { leadingChunkSize } from "./bdat_decoder.ts";
 * leadingChunkSize("5 FOO"); // 5
 * leadingChunkSize("x"); // null
 * ```
 */
export function leadingChunkSize(args: string): number | null {
  const match = LEADING_SIZE_REGEXP.exec(args);
  return match ? chunkSize(match[1]!) : null;
}

function chunkSize(text: string): number {
  const digits = text.replace(/^0+(?=\d)/, "");
  return digits.length > EXACT_DIGITS ? Number.MAX_SAFE_INTEGER : Number(digits);
}

/**
 * Counts down the octets of one chunk.
 *
 * @example Usage
 * ```ts
 * import { BdatDecoder } from "./bdat_decoder.ts";
 * const decoder = new BdatDecoder();
 * decoder.start(3);
 * decoder.take(new Uint8Array([1, 2])); // [1, 2]
 * decoder.take(new Uint8Array([3, 4])); // [3]; decoder.done is true
 * ```
 */
export class BdatDecoder {
  #remaining = 0;

  /** Begins a chunk of `size` octets. */
  start(size: number): void {
    this.#remaining = size;
  }

  /** True when every octet of the chunk has been taken. */
  get done(): boolean {
    return this.#remaining === 0;
  }

  /** Octets of the chunk not yet received. */
  get remaining(): number {
    return this.#remaining;
  }

  /** The leading part of `bytes` that belongs to the chunk (a subarray, no copy). */
  take(bytes: Uint8Array): Uint8Array {
    const n = Math.min(bytes.length, this.#remaining);
    this.#remaining -= n;
    return n === bytes.length ? bytes : bytes.subarray(0, n);
  }
}
