/**
 * The `--insecure` transport of `smtpd send`: node:net/node:tls sockets behind
 * the same small `Wire` interface as Deno's connections.
 *
 * @module
 */

import * as net from "node:net";
import * as tls from "node:tls";

/** The byte stream the client speaks SMTP over. */
export interface Wire {
  read(p: Uint8Array): Promise<number | null>;
  write(p: Uint8Array): Promise<number>;
  close(): void;
}

/**
 * Deno's own TLS has no per-connection switch to skip verification (only the
 * process-wide `--unsafely-ignore-certificate-errors`), so `insecure` goes
 * through node:tls, whose `rejectUnauthorized: false` Deno honours.
 */
export class NodeWire implements Wire {
  #socket: net.Socket;
  #chunks: Uint8Array[] = [];
  #ended = false;
  #error: Error | null = null;
  #wake: (() => void) | null = null;

  constructor(socket: net.Socket) {
    this.#socket = socket;
    socket.on("data", (b: Uint8Array) => {
      this.#chunks.push(b);
      socket.pause();
      this.#notify();
    });
    socket.on("end", () => {
      this.#ended = true;
      this.#notify();
    });
    socket.on("error", (e: Error) => {
      this.#error = e;
      this.#notify();
    });
    socket.on("close", () => {
      this.#ended = true;
      this.#notify();
    });
  }

  get socket(): net.Socket {
    return this.#socket;
  }

  #notify(): void {
    const wake = this.#wake;
    this.#wake = null;
    wake?.();
  }

  async read(p: Uint8Array): Promise<number | null> {
    while (this.#chunks.length === 0) {
      if (this.#error) throw this.#error;
      if (this.#ended) return null;
      this.#socket.resume();
      await new Promise<void>((resolve) => this.#wake = resolve);
    }
    const chunk = this.#chunks[0]!;
    const n = Math.min(p.length, chunk.length);
    p.set(chunk.subarray(0, n));
    if (n === chunk.length) this.#chunks.shift();
    else this.#chunks[0] = chunk.subarray(n);
    return n;
  }

  write(p: Uint8Array): Promise<number> {
    return new Promise((resolve, reject) => {
      if (this.#error) return reject(this.#error);
      this.#socket.write(p, (e) => e ? reject(e) : resolve(p.length));
    });
  }

  close(): void {
    this.#socket.destroy();
  }
}

export function nodeConnect(
  options: { host: string; port: number; tls?: boolean },
  signal: AbortSignal,
): Promise<NodeWire> {
  return new Promise((resolve, reject) => {
    const servername = net.isIP(options.host) ? {} : { servername: options.host };
    const { host, port } = options;
    const socket = options.tls
      ? tls.connect({ host, port, rejectUnauthorized: false, ...servername })
      : net.connect({ host, port });
    const onAbort = () => {
      socket.destroy();
      reject(signal.reason);
    };
    signal.addEventListener("abort", onAbort, { once: true });
    socket.once("error", reject);
    socket.once(options.tls ? "secureConnect" : "connect", () => {
      socket.off("error", reject);
      signal.removeEventListener("abort", onAbort);
      resolve(new NodeWire(socket));
    });
  });
}

export function nodeStartTls(wire: NodeWire, host: string): Promise<NodeWire> {
  return new Promise((resolve, reject) => {
    const servername = net.isIP(host) ? {} : { servername: host };
    wire.socket.removeAllListeners("data");
    const socket = tls.connect({ socket: wire.socket, rejectUnauthorized: false, ...servername });
    socket.once("error", reject);
    socket.once("secureConnect", () => {
      socket.off("error", reject);
      resolve(new NodeWire(socket));
    });
  });
}
