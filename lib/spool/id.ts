/**
 * Message IDs: ULID-like, 26 characters of Crockford base32: 10 for the
 * millisecond time, 2 for the microsecond within it, 14 for 70 random bits.
 * They sort lexicographically in order of receipt, use only `[A-Za-z0-9._-]`
 * (SPEC §3) and never contain anything the client sent.
 *
 * The microseconds order the messages of several servers sharing one spool:
 * their IDs come from one clock, and a message received after another one's
 * 250 is at least a round trip later. With milliseconds alone, the random
 * part ordered two such messages in the same millisecond by chance. IDs of
 * earlier versions (80 random bits after the milliseconds) have the same
 * form, so a spool keeps working across the upgrade.
 *
 * @module
 */

/** Crockford base32: no I, L, O, U, so an ID is never misread when typed. */
const ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";
/** 48 bits of milliseconds in 10 base32 digits: valid until the year 10889. */
const TIME_DIGITS = 10;
/** 70 random bits: two servers sharing a spool collide with probability ~2^-70 per microsecond. */
const RANDOM_DIGITS = 14;
/**
 * The time is kept as whole microseconds in a double, exact up to 2^53
 * (the year 2255); later times stand still there and the random part
 * carries the order, as when the clock goes back.
 */
const MAX_MICROS = Number.MAX_SAFE_INTEGER;

/** Temporal reads the system clock in nanoseconds; Date only in milliseconds. */
const Temporal = (globalThis as { Temporal?: { Now: { instant(): { epochNanoseconds: bigint } } } })
  .Temporal;

/**
 * The wall clock in microseconds since the epoch. The wall clock, not a
 * monotonic one: IDs must order across restarts and across processes.
 *
 * @returns Whole microseconds.
 */
export function clockMicros(): number {
  if (Temporal === undefined) return Date.now() * 1000;
  return Number(Temporal.Now.instant().epochNanoseconds / 1000n);
}

/** SPEC §3: `[A-Za-z0-9._-]`, at most 64 characters. */
const VALID_ID_REGEXP = /^[A-Za-z0-9._-]{1,64}$/;
/** The form this spool writes; the first digit is at most 7 because the time has 48 bits. */
const MESSAGE_ID_REGEXP = /^[0-7][0-9A-HJKMNP-TV-Z]{25}$/;

/**
 * Whether `id` is acceptable as an ID under SPEC §3 (`[A-Za-z0-9._-]{1,64}`).
 * Such a string never contains a path separator, so it is safe in a file name.
 *
 * @param id The candidate.
 * @returns True when it only uses the allowed characters and is 1 to 64 long.
 */
export function isValidId(id: string): boolean {
  return VALID_ID_REGEXP.test(id);
}

/**
 * Whether `id` has the exact form {@linkcode IdGenerator} produces. The reader,
 * recovery and purge only consider such names, so unrelated files that happen
 * to be called `notes.eml` or `config.json` in the spool are never touched.
 *
 * @param id The candidate (a file name without its extension).
 * @returns True for a 26-character Crockford base32 ULID.
 */
export function isMessageId(id: string): boolean {
  return MESSAGE_ID_REGEXP.test(id);
}

/**
 * The receipt time encoded in a message ID, to the millisecond.
 *
 * @param id An ID for which {@linkcode isMessageId} is true.
 * @returns Milliseconds since the epoch, or NaN for another string.
 */
export function idTime(id: string): number {
  if (!isMessageId(id)) return NaN;
  let time = 0;
  for (let i = 0; i < TIME_DIGITS; i++) {
    time = time * 32 + ALPHABET.indexOf(id.charAt(i));
  }
  return time;
}

/** Bytes of an {@linkcode IdGenerator}'s state: lock, last time, random digits. */
export const ID_STATE_BYTES = 32; // 4 lock, 4 padding, 8 time, 14 random, 2 padding

/**
 * Generates monotonic IDs. Every ID is greater than the previous one even
 * when the clock stands still or goes back: the time is clamped to the last
 * time used and the random part incremented (the flaw of a ULID generator
 * that trusts the clock). Randomness comes from `crypto.getRandomValues`, so
 * separate processes do not collide.
 *
 * Threads of one server pass the same `SharedArrayBuffer` (of
 * {@linkcode ID_STATE_BYTES}): they then share one sequence, under a spin
 * lock held for the few instructions of a `next()`.
 *
 * @example Usage
 * ```ts
 * import { IdGenerator, isMessageId } from "./id.ts";
 * const ids = new IdGenerator();
 * const a = ids.next();
 * const b = ids.next();
 * console.assert(isMessageId(a) && a < b);
 * ```
 */
export class IdGenerator {
  /** [0]: the lock (0 free, 1 held). */
  #lock: Int32Array;
  /** [0]: the last time used (µs) plus one; 0 (a fresh buffer) before the first ID. */
  #lastTimePlusOne: Float64Array;
  /** Random part as base32 digit values, most significant first. */
  #random: Uint8Array;

  constructor(state: SharedArrayBuffer | ArrayBuffer = new ArrayBuffer(ID_STATE_BYTES)) {
    if (state.byteLength < ID_STATE_BYTES) throw new RangeError("ID state buffer too small");
    this.#lock = new Int32Array(state, 0, 1);
    this.#lastTimePlusOne = new Float64Array(state, 8, 1);
    this.#random = new Uint8Array(state, 16, RANDOM_DIGITS);
  }

  /**
   * The next ID.
   *
   * @param now The current time in µs (default {@linkcode clockMicros}); tests pass their own.
   * @returns A 26-character ID greater than every earlier one from this generator
   *   (and from every generator sharing its state).
   */
  next(now: number = clockMicros()): string {
    const lock = this.#lock;
    while (Atomics.compareExchange(lock, 0, 0, 1) !== 0) {
      // Held by another thread for a few hundred nanoseconds at most.
    }
    try {
      let time = Math.min(Math.max(Math.floor(now), 0), MAX_MICROS);
      const last = this.#lastTimePlusOne[0]! - 1;
      if (time > last) {
        this.#fillRandom();
      } else {
        time = last;
        if (!this.#increment()) {
          // 2^70 IDs in one microsecond cannot happen; borrowing the next
          // microsecond keeps the order correct anyway.
          time = Math.min(time + 1, MAX_MICROS);
          this.#fillRandom();
        }
      }
      this.#lastTimePlusOne[0] = time + 1;
      return encodeTime(time) + encodeDigits(this.#random);
    } finally {
      Atomics.store(lock, 0, 0);
    }
  }

  #fillRandom(): void {
    crypto.getRandomValues(this.#random);
    for (let i = 0; i < RANDOM_DIGITS; i++) {
      this.#random[i] = this.#random[i]! & 31;
    }
    // Leave headroom so the increment after a fresh draw never overflows.
    this.#random[0] = this.#random[0]! & 15;
  }

  /** Adds one to the random part; false on overflow. */
  #increment(): boolean {
    for (let i = RANDOM_DIGITS - 1; i >= 0; i--) {
      const digit = this.#random[i]!;
      if (digit < 31) {
        this.#random[i] = digit + 1;
        return true;
      }
      this.#random[i] = 0;
    }
    return false;
  }
}

/** Milliseconds in 10 digits, then the microsecond within it in 2. */
function encodeTime(micros: number): string {
  let out = "";
  let rest = Math.floor(micros / 1000);
  for (let i = 0; i < TIME_DIGITS; i++) {
    out = ALPHABET.charAt(rest % 32) + out;
    rest = Math.floor(rest / 32);
  }
  const within = micros % 1000;
  return out + ALPHABET.charAt(within >> 5) + ALPHABET.charAt(within & 31);
}

function encodeDigits(digits: Uint8Array): string {
  let out = "";
  for (const digit of digits) out += ALPHABET.charAt(digit);
  return out;
}
