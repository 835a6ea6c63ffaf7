/**
 * Client-side dot-stuffing for `smtpd send`.
 *
 * @module
 */

const encoder = new TextEncoder();

/**
 * Dot-stuffing for DATA (RFC 5321 §4.5.2) as a streaming transform. Every
 * line end goes out as CRLF: a bare LF (a file written on Unix) or a bare CR
 * becomes CRLF, because a client MUST NOT send either alone (RFC 5321
 * §2.3.8), and a relay that took `\n.\n` for the end of data would run what
 * follows as commands (SMTP smuggling). A line that starts with `.` gets
 * one more.
 */
export class DotStuffer {
  #lineStart = true;
  /** The last byte was CR: it becomes CRLF whatever follows. */
  #pendingCr = false;
  /** Message octets sent so far: RFC 1870's size (stuffing dots and the final `.` CRLF excluded). */
  #size = 0;
  #eightBit = false;

  /** The message's size for `SIZE=` (RFC 1870 §4), complete after {@linkcode end}. */
  get size(): number {
    return this.#size;
  }

  /** Whether a byte above 127 was seen (the message needs `BODY=8BITMIME`). */
  get eightBit(): boolean {
    return this.#eightBit;
  }

  /** Transforms one chunk. */
  push(chunk: Uint8Array): Uint8Array {
    // Worst case: a CR left from the last chunk (2 bytes), then a doubled dot per byte.
    const out = new Uint8Array(chunk.length * 2 + 2);
    let o = 0;
    for (const b of chunk) {
      if (this.#pendingCr) {
        this.#pendingCr = false;
        out[o++] = 0x0d;
        out[o++] = 0x0a;
        this.#lineStart = true;
        if (b === 0x0a) continue; // CRLF itself
      }
      if (b === 0x0d) {
        this.#pendingCr = true;
        continue;
      }
      if (b === 0x0a) {
        out[o++] = 0x0d;
        out[o++] = 0x0a;
        this.#lineStart = true;
        continue;
      }
      if (b === 0x2e && this.#lineStart) {
        out[o++] = 0x2e;
        this.#size--; // a stuffing dot is not part of the message
      }
      if (b > 0x7f) this.#eightBit = true;
      out[o++] = b;
      this.#lineStart = false;
    }
    this.#size += o;
    return out.subarray(0, o);
  }

  /** The end of data: a CR left over, CRLF unless the message ends with one, then `.` CRLF. */
  end(): Uint8Array {
    const ended = this.#lineStart && !this.#pendingCr;
    this.#pendingCr = false;
    if (!ended) this.#size += 2; // the CRLF that ends the last line is the message's
    return encoder.encode(ended ? ".\r\n" : "\r\n.\r\n");
  }
}
