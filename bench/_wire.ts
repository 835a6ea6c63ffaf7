/**
 * A minimal SMTP client side for the load drivers that `smtp-source` cannot
 * play: the 1 GiB message, the idle sessions and STARTTLS load. It speaks
 * only what those need and checks every reply code.
 *
 * @module
 */

/** A complete reply: the code of its last line and all its lines. */
export interface WireReply {
  code: number;
  lines: string[];
}

/** Longest reply the drivers accept before calling the peer broken (bounded memory). */
const MAX_REPLY_BYTES = 64 * 1024;

const ENCODER = new TextEncoder();
const DECODER = new TextDecoder();

/** Writes every byte of `bytes`, looping over short writes. */
export async function writeAll(conn: Deno.Conn, bytes: Uint8Array): Promise<void> {
  let offset = 0;
  while (offset < bytes.length) offset += await conn.write(bytes.subarray(offset));
}

/** One SMTP client connection: buffered reply reading, command/expect helpers. */
export class WireClient {
  #conn: Deno.Conn;
  #buffer = new Uint8Array(0);

  constructor(conn: Deno.Conn) {
    this.#conn = conn;
  }

  /** The underlying connection (replaced by `upgrade`). */
  get conn(): Deno.Conn {
    return this.#conn;
  }

  /** Reads one complete (possibly multi-line) reply. */
  async reply(): Promise<WireReply> {
    const lines: string[] = [];
    for (;;) {
      const line = await this.#line();
      lines.push(line);
      // RFC 5321 §4.2.1: "250-" continues, "250 " (or a bare code) ends the reply.
      if (line.length < 4 || line[3] === " ") {
        return { code: Number(line.slice(0, 3)), lines };
      }
    }
  }

  /** Reads a reply and throws unless its code is `expected`. */
  async expect(expected: number, what: string): Promise<WireReply> {
    const reply = await this.reply();
    if (reply.code !== expected) {
      throw new Error(`${what}: expected ${expected}, got "${reply.lines.join(" | ")}"`);
    }
    return reply;
  }

  /** Sends one command line and expects `expected`. */
  async command(line: string, expected: number): Promise<WireReply> {
    await writeAll(this.#conn, ENCODER.encode(`${line}\r\n`));
    return await this.expect(expected, line.split(" ")[0] ?? line);
  }

  /** Sends raw bytes (message content). */
  async send(bytes: Uint8Array): Promise<void> {
    await writeAll(this.#conn, bytes);
  }

  /**
   * RFC 3207: after `220` to STARTTLS the client starts the handshake on the
   * same socket; nothing read before it may be kept.
   */
  async upgrade(hostname: string, caCerts: string[]): Promise<void> {
    if (this.#buffer.length > 0) throw new Error("STARTTLS: server sent bytes before handshake");
    const options: Deno.StartTlsOptions = caCerts.length > 0 ? { hostname, caCerts } : { hostname };
    const tls = await Deno.startTls(this.#conn as Deno.TcpConn, options);
    await tls.handshake();
    this.#conn = tls;
  }

  /** Closes the connection, ignoring a peer that closed first. */
  close(): void {
    try {
      this.#conn.close();
    } catch {
      // Already closed by the peer (after QUIT): nothing to release.
    }
  }

  async #line(): Promise<string> {
    for (;;) {
      const end = this.#buffer.indexOf(0x0a);
      if (end >= 0) {
        const line = DECODER.decode(this.#buffer.subarray(0, end)).replace(/\r$/, "");
        this.#buffer = this.#buffer.slice(end + 1);
        return line;
      }
      if (this.#buffer.length > MAX_REPLY_BYTES) throw new Error("Reply line too long");
      const chunk = new Uint8Array(16 * 1024);
      const n = await this.#conn.read(chunk);
      if (n === null) throw new Error("Connection closed by the server");
      const joined = new Uint8Array(this.#buffer.length + n);
      joined.set(this.#buffer);
      joined.set(chunk.subarray(0, n), this.#buffer.length);
      this.#buffer = joined;
    }
  }
}

/** Connects to 127.0.0.1:`port` and reads the 220 greeting. */
export async function greeted(port: number): Promise<WireClient> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  const client = new WireClient(conn);
  try {
    await client.expect(220, "greeting");
  } catch (e: unknown) {
    client.close();
    throw e;
  }
  return client;
}

/** A message of `size` payload bytes in 64-octet lines that never start with ".". */
export function smallMessage(size: number, index: number): Uint8Array {
  const header = `From: <bench@example.com>\r\nTo: <sink@example.com>\r\n` +
    `Subject: bench ${index}\r\nMessage-ID: <${index}.${Date.now()}@bench.example>\r\n\r\n`;
  const line = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ\r\n";
  const body = line.repeat(Math.ceil(size / line.length)).slice(0, size);
  return ENCODER.encode(`${header}${body}\r\n.\r\n`);
}
