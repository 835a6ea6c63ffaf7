/**
 * Client-side dot-stuffing for `smtpd send`.
 *
 * @module
 */

const encoder = new TextEncoder();

/**
 * Dot-stuffing for DATA (RFC 5321 §4.5.2) as a streaming transform. Line
 * ends are taken from the first one seen: a message with bare-LF lines (a
 * file written on Unix) has every bare LF turned into CRLF; a CRLF message
 * is sent byte for byte, its stray bare LFs included. Only lines that start
 * after CRLF get the extra dot, matching the server's unstuffing.
 */
export class DotStuffer {
  #lineStart = true;
  #lastCr = false;
  #lastLf = false;
  #mode: "unknown" | "lf" | "crlf" = "unknown";
  #empty = true;

  /** Transforms one chunk. */
  push(chunk: Uint8Array): Uint8Array {
    const out = new Uint8Array(chunk.length * 2 + 2);
    let o = 0;
    for (const b of chunk) {
      if (b === 0x0a) {
        if (this.#mode === "unknown") this.#mode = this.#lastCr ? "crlf" : "lf";
        if (!this.#lastCr && this.#mode === "lf") out[o++] = 0x0d;
        out[o++] = 0x0a;
        this.#lineStart = this.#lastCr || this.#mode === "lf";
        this.#lastCr = false;
        this.#lastLf = true;
        continue;
      }
      if (b === 0x2e && this.#lineStart) out[o++] = 0x2e;
      out[o++] = b;
      this.#lineStart = false;
      this.#lastCr = b === 0x0d;
      this.#lastLf = false;
    }
    if (chunk.length > 0) this.#empty = false;
    return out.subarray(0, o);
  }

  /** The end of data: CRLF unless the message already ends with one, then `.` CRLF. */
  end(): Uint8Array {
    if (this.#empty) return encoder.encode(".\r\n");
    if (this.#lineStart && this.#lastLf) return encoder.encode(".\r\n");
    return encoder.encode("\r\n.\r\n");
  }
}
