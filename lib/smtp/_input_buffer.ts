/**
 * Received bytes not yet parsed, for `Session`: kept by reference while they
 * arrive in one piece, joined into an own growing store only when unparsed
 * bytes must wait for more.
 *
 * @module
 */

const EMPTY = new Uint8Array(0);
/** Smallest own buffer when unparsed bytes must be joined with new ones. */
const MIN_STORE = 4096;

/** The unparsed bytes are `bytes[pos, end)`; the parser advances `pos`. */
export class InputBuffer {
  bytes: Uint8Array = EMPTY;
  pos = 0;
  end = 0;
  /** `bytes` was allocated here, so its bytes past `end` may be written. */
  #own = false;

  /** Appends received bytes, by reference when nothing is pending. */
  receive(bytes: Uint8Array): void {
    const live = this.end - this.pos;
    if (live === 0) {
      this.bytes = bytes;
      this.pos = 0;
      this.end = bytes.length;
      this.#own = false;
    } else if (this.#own && this.bytes.length - this.end >= bytes.length) {
      // Past `end` nothing was ever handed out, so appending there is safe.
      this.bytes.set(bytes, this.end);
      this.end += bytes.length;
    } else {
      // Grow geometrically: a client that keeps sending while paused costs O(n).
      const store = new Uint8Array(Math.max(live + bytes.length, live * 2, MIN_STORE));
      store.set(this.bytes.subarray(this.pos, this.end));
      store.set(bytes, live);
      this.bytes = store;
      this.pos = 0;
      this.end = live + bytes.length;
      this.#own = true;
    }
  }

  /**
   * Copies unparsed bytes still borrowed from the caller into an own store.
   * After `need-data` the driver may reuse the buffer it read them into
   * (`NativeSocket`); what is left then is a partial line, bounded by its limit.
   */
  keep(): void {
    if (this.#own || this.pos === this.end) return;
    const live = this.end - this.pos;
    const store = new Uint8Array(Math.max(live, MIN_STORE));
    store.set(this.bytes.subarray(this.pos, this.end));
    this.bytes = store;
    this.pos = 0;
    this.end = live;
    this.#own = true;
  }

  /** True when every received byte was parsed. */
  empty(): boolean {
    return this.pos === this.end;
  }

  /** The unparsed bytes (a view). */
  pending(): Uint8Array {
    return this.bytes.subarray(this.pos, this.end);
  }

  /** Forgets unparsed bytes (after STARTTLS or close) and releases the buffer. */
  drop(): void {
    this.bytes = EMPTY;
    this.pos = 0;
    this.end = 0;
    this.#own = false;
  }
}
