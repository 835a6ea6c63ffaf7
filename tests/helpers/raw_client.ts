/**
 * A raw SMTP client for end-to-end tests: bytes in, bytes out, nothing
 * interpreted on the way. Tests use it for what a well-behaved client never
 * sends (pipelined bursts, bare CR/LF smuggling, overlong lines, BDAT split
 * across writes) and read replies with a deadline, so a silent server fails
 * the test with what it did receive instead of hanging it.
 *
 * A background loop reads the socket into a buffer; `close()` ends that loop
 * so Deno's op and resource sanitizers stay on.
 *
 * @module
 */

/**
 * Bounded wait for one reply, far below the e2e budget. Generous because a
 * 250 waits for fsync, and on a CI disk busy writing back other data one
 * small fsync took 6-50 s here (`make test` flushes first; this is the margin).
 */
export const DEFAULT_READ_TIMEOUT_MS = 30_000;

/** One SMTP reply as read from the wire. */
export interface ReplyRead {
  code: number;
  /** Each line without its `NNN-`/`NNN ` prefix and without CRLF. */
  lines: string[];
  /** The reply exactly as received, CRLFs included. */
  raw: string;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder("latin1");

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length);
  out.set(a, 0);
  out.set(b, a.length);
  return out;
}

/** Shows received bytes in an error message: CR and LF spelled out. */
export function visible(text: string): string {
  return JSON.stringify(text);
}

/** A TCP connection to the server with buffered, deadline-bounded reads. */
export class RawClient implements AsyncDisposable {
  #conn: Deno.TcpConn;
  #buffer: Uint8Array = new Uint8Array(0);
  #eof = false;
  #readError: unknown = null;
  #wake: (() => void) | null = null;
  #loop: Promise<void>;
  #closed = false;
  /** Everything read so far (for failure messages). */
  #transcript = "";

  private constructor(conn: Deno.TcpConn) {
    this.#conn = conn;
    this.#loop = this.#readLoop();
  }

  /** Connects to `hostname:port` (default 127.0.0.1). */
  static async connect(port: number, hostname = "127.0.0.1"): Promise<RawClient> {
    const conn = await Deno.connect({ hostname, port, transport: "tcp" });
    return new RawClient(conn);
  }

  async #readLoop(): Promise<void> {
    const chunk = new Uint8Array(64 * 1024);
    try {
      while (true) {
        const n = await this.#conn.read(chunk);
        if (n === null) break;
        this.#buffer = concat(this.#buffer, chunk.subarray(0, n));
        this.#transcript += decoder.decode(chunk.subarray(0, n));
        this.#notify();
      }
    } catch (e: unknown) {
      // A reset after the server's 421 is a close too; after close() it is ours.
      if (!this.#closed) this.#readError = e;
    }
    // Close our side too, as real clients do on EOF: the server lingers for
    // the peer's FIN after a 421 or 221, and a drain waits for it.
    if (!this.#closed) {
      this.#closed = true;
      try {
        this.#conn.close();
      } catch {
        // Already released.
      }
    }
    this.#eof = true;
    this.#notify();
  }

  #notify(): void {
    const wake = this.#wake;
    this.#wake = null;
    wake?.();
  }

  /** Waits until `ready()` holds or the deadline passes; returns whether it held. */
  async #waitFor(ready: () => boolean, timeoutMs: number): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    while (!ready()) {
      if (this.#eof) return ready();
      const left = deadline - Date.now();
      if (left <= 0) return false;
      let timer: ReturnType<typeof setTimeout> | undefined;
      await new Promise<void>((resolve) => {
        this.#wake = resolve;
        timer = setTimeout(resolve, left);
      });
      clearTimeout(timer);
    }
    return true;
  }

  /** Everything the server sent so far, as latin1 text. */
  get transcript(): string {
    return this.#transcript;
  }

  /** Bytes received and not yet consumed by a read. */
  get unread(): string {
    return decoder.decode(this.#buffer);
  }

  /** Writes all of `data` (a string is sent as UTF-8). */
  async send(data: string | Uint8Array): Promise<void> {
    let bytes = typeof data === "string" ? encoder.encode(data) : data;
    while (bytes.length > 0) {
      const n = await this.#conn.write(bytes);
      bytes = bytes.subarray(n);
    }
  }

  /** Reads one line, without its line ending; a line ends at LF (CR before it dropped). */
  async readLine(timeoutMs = DEFAULT_READ_TIMEOUT_MS): Promise<string> {
    const ok = await this.#waitFor(() => this.#buffer.includes(0x0a), timeoutMs);
    if (!ok) {
      const why = this.#eof ? "connection closed" : `no line within ${timeoutMs} ms`;
      throw new Error(
        `Cannot read a line: ${why}; unread ${visible(this.unread)}, ` +
          `transcript ${visible(this.#transcript)}`,
      );
    }
    const end = this.#buffer.indexOf(0x0a);
    let line = decoder.decode(this.#buffer.subarray(0, end));
    this.#buffer = this.#buffer.subarray(end + 1);
    if (line.endsWith("\r")) line = line.slice(0, -1);
    return line;
  }

  /** Reads one complete (possibly multi-line) reply; throws with what arrived on timeout. */
  async readReply(timeoutMs = DEFAULT_READ_TIMEOUT_MS): Promise<ReplyRead> {
    const deadline = Date.now() + timeoutMs;
    const lines: string[] = [];
    let raw = "";
    let code = 0;
    while (true) {
      const line = await this.readLine(Math.max(1, deadline - Date.now()));
      raw += line + "\r\n";
      const m = /^(\d{3})([ -])(.*)$/s.exec(line) ?? /^(\d{3})()$/.exec(line);
      if (!m) throw new Error(`Cannot parse reply line ${visible(line)} after ${visible(raw)}`);
      const lineCode = Number(m[1]);
      if (lines.length > 0 && lineCode !== code) {
        throw new Error(`Reply code changed mid-reply: ${visible(raw)}`);
      }
      code = lineCode;
      lines.push(m[3] ?? "");
      if (m[2] !== "-") return { code, lines, raw };
    }
  }

  /** Sends `line` + CRLF and reads the reply. */
  async command(line: string, timeoutMs = DEFAULT_READ_TIMEOUT_MS): Promise<ReplyRead> {
    await this.send(line + "\r\n");
    return await this.readReply(timeoutMs);
  }

  /** Reads `n` replies (for pipelined commands), in order. */
  async readReplies(n: number, timeoutMs = DEFAULT_READ_TIMEOUT_MS): Promise<ReplyRead[]> {
    const out: ReplyRead[] = [];
    for (let i = 0; i < n; i++) out.push(await this.readReply(timeoutMs));
    return out;
  }

  /**
   * Waits for the server to close the connection. Throws if it stays open past
   * the deadline, or if bytes arrive that no read consumed.
   */
  async expectClosed(timeoutMs = DEFAULT_READ_TIMEOUT_MS): Promise<void> {
    const closed = await this.#waitFor(() => this.#eof, timeoutMs);
    if (!closed) {
      throw new Error(
        `Connection still open after ${timeoutMs} ms; transcript ${visible(this.#transcript)}`,
      );
    }
    if (this.#buffer.length > 0) {
      throw new Error(`Unexpected bytes before close: ${visible(this.unread)}`);
    }
  }

  /** True once the server closed (or reset) the connection. */
  get closed(): boolean {
    return this.#eof;
  }

  /** The read error that ended the connection, if it was not a plain EOF. */
  get readError(): unknown {
    return this.#readError;
  }

  /** Closes the sending side only (`shutdown(SHUT_WR)`): replies can still be read. */
  async closeWrite(): Promise<void> {
    await this.#conn.closeWrite();
  }

  /** Closes the socket and waits for the read loop to end. Idempotent. */
  async close(): Promise<void> {
    if (!this.#closed) {
      this.#closed = true;
      try {
        this.#conn.close();
      } catch {
        // Already closed by the peer's reset: nothing to release.
      }
    }
    await this.#loop;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}

/** Parses the id out of `250 2.0.0 Ok: queued as <id>`. */
export function queuedId(reply: ReplyRead): string {
  const m = /queued as (\S+)/.exec(reply.lines.join(" "));
  if (reply.code !== 250 || !m?.[1]) {
    throw new Error(`Expected "250 … queued as <id>", got ${visible(reply.raw)}`);
  }
  return m[1];
}

/**
 * The DATA payload for `message` (RFC 5321 §4.5.2): a dot doubled at the start
 * of every CRLF-delimited line, then `.` CRLF. `message` must be empty or end
 * in CRLF, the only messages DATA can carry exactly.
 */
export function stuff(message: string): string {
  if (message !== "" && !message.endsWith("\r\n")) {
    throw new RangeError(`Cannot send ${visible(message.slice(-20))} with DATA: must end in CRLF`);
  }
  return message.replace(/(^|\r\n)\./g, "$1..") + ".\r\n";
}

/**
 * One MAIL/RCPT…/DATA transaction, each command checked (250/250/354), the
 * payload sent as given (`wire` already stuffed and terminated); returns the
 * reply to the end of data.
 */
export async function transaction(
  client: RawClient,
  from: string,
  to: string[],
  wire: string | Uint8Array,
): Promise<ReplyRead> {
  const expectCode = async (line: string, code: number) => {
    const r = await client.command(line);
    if (r.code !== code) throw new Error(`${line} → expected ${code}, got ${visible(r.raw)}`);
  };
  await expectCode(`MAIL FROM:<${from}>`, 250);
  for (const rcpt of to) await expectCode(`RCPT TO:<${rcpt}>`, 250);
  await expectCode("DATA", 354);
  await client.send(wire);
  return await client.readReply();
}
