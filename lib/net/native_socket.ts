/**
 * A `Deno.listen` connection behind the `WireSocket` surface of a `node:net`
 * socket, for plain listeners when no TLS is configured (STARTTLS needs
 * `node:tls`, which upgrades only `node:net` sockets).
 *
 * It reads into two reused buffers: the driver calls `consumed()` once the
 * session has parsed every byte, and only then may a buffer be read into
 * again. While a commit is pending the next read goes into the other buffer
 * (it must go on: a client leaving before its 250 is noticed that way); only
 * when both hold unparsed bytes is a fresh one allocated. Buffers start small
 * (idle sessions stay cheap) and grow while reads fill them. `node:net`
 * allocates 64 KiB per read instead: a 1 GiB message peaked at 182 MiB RSS.
 *
 * @module
 */

import { EventEmitter } from "node:events";
import { concatBytes } from "../bytes.ts";
import type { WireSocket } from "./wire_socket.ts";

/** First read buffer: most SMTP reads are one command line (and 1,000 idle sessions hold one each). */
const MIN_READ_BYTES = 4 * 1024;
/** Reads that fill their buffer grow it up to this: a big message costs fewer reads. */
const MAX_READ_BYTES = 256 * 1024;
/**
 * After this many reads in a row shorter than {@linkcode MIN_READ_BYTES}
 * (commands again, or a slow sender), the buffers shrink back: a session
 * that once received a big message does not keep 2 × 256 KiB for its life.
 */
const SHRINK_AFTER_SMALL_READS = 16;
/** Above this many unwritten bytes `write` returns false (node's default). */
const WRITE_HIGH_WATER = 16 * 1024;

type WriteCallback = (error?: Error | null) => void;

/** `WireSocket` over a `Deno.Conn`; emits `data`, `end`, `drain`, `error` and `close`. */
export class NativeSocket extends EventEmitter implements WireSocket {
  readonly remoteAddress: string;
  readonly remotePort: number;
  readonly localAddress: string;
  readonly localPort: number;
  #conn: Deno.Conn;
  /** At most two read buffers, reused once the consumer is done with them. */
  #buffers: Uint8Array[] = [];
  /** Bit i: `#buffers[i]` holds bytes the consumer may still reference. */
  #lent = 0;
  #readBytes = MIN_READ_BYTES;
  #smallReads = 0;
  #reading = false;
  #paused = false;
  #wake: (() => void) | null = null;
  #queue: Uint8Array[] = [];
  #callbacks: WriteCallback[] = [];
  #queued = 0;
  #writing = false;
  #needDrain = false;
  #ending = false;
  #afterEnd: (() => void)[] = [];
  #eof = false;
  #destroyed = false;
  #timeoutMs = 0;
  #onTimeout: (() => void) | null = null;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #lastActivity = 0;

  constructor(conn: Deno.Conn) {
    super();
    this.#conn = conn;
    const remote = conn.remoteAddr as Deno.NetAddr;
    const local = conn.localAddr as Deno.NetAddr;
    this.remoteAddress = remote.hostname;
    this.remotePort = remote.port;
    this.localAddress = local.hostname;
    this.localPort = local.port;
  }

  get destroyed(): boolean {
    return this.#destroyed;
  }

  get writableLength(): number {
    return this.#queued;
  }

  /** Like node's flowing mode: reading starts with the first `data` listener. */
  // deno-lint-ignore no-explicit-any
  override on(event: string, listener: (...args: any[]) => void): this {
    super.on(event, listener);
    if (event === "data" && !this.#reading) {
      this.#reading = true;
      void this.#readLoop();
    }
    return this;
  }

  consumed(): void {
    this.#lent = 0;
  }

  pause(): this {
    this.#paused = true;
    return this;
  }

  resume(): this {
    this.#paused = false;
    this.#wake?.();
    this.#wake = null;
    return this;
  }

  setNoDelay(noDelay = true): this {
    try {
      (this.#conn as Deno.TcpConn).setNoDelay(noDelay);
    } catch {
      // Already closed: nothing to tune.
    }
    return this;
  }

  setTimeout(ms: number, callback?: () => void): this {
    this.#timeoutMs = ms;
    if (callback) this.#onTimeout = callback;
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#touch();
    return this;
  }

  write(bytes: Uint8Array, callback?: WriteCallback): boolean {
    if (this.#destroyed || this.#ending) {
      if (callback) queueMicrotask(() => callback(new Error("Cannot write: the socket is closed")));
      return false;
    }
    this.#queue.push(bytes);
    if (callback) this.#callbacks.push(callback);
    this.#queued += bytes.length;
    if (!this.#writing) void this.#writeLoop();
    if (this.#queued < WRITE_HIGH_WATER) return true;
    this.#needDrain = true;
    return false;
  }

  end(bytesOrCallback?: Uint8Array | (() => void), callback?: () => void): this {
    const done = typeof bytesOrCallback === "function" ? bytesOrCallback : callback;
    if (bytesOrCallback instanceof Uint8Array) this.write(bytesOrCallback);
    if (done) this.#afterEnd.push(done);
    this.#ending = true;
    if (!this.#writing) this.#finishEnd();
    return this;
  }

  destroy(): this {
    if (this.#destroyed) return this;
    this.#destroyed = true;
    clearTimeout(this.#timer);
    try {
      this.#conn.close();
    } catch {
      // Already closed by the peer's reset.
    }
    this.#queue = [];
    this.#queued = 0;
    const callbacks = this.#callbacks;
    this.#callbacks = [];
    this.#wake?.();
    this.#wake = null;
    queueMicrotask(() => {
      for (const fn of callbacks) fn(new Error("Cannot write: the socket is closed"));
      this.emit("close");
    });
    return this;
  }

  async #readLoop(): Promise<void> {
    while (!this.#destroyed) {
      if (this.#paused) {
        await new Promise<void>((wake) => (this.#wake = wake));
        continue;
      }
      const slot = this.#freeSlot();
      const buffer = this.#buffers[slot]!;
      let n: number | null;
      try {
        n = await this.#conn.read(buffer);
      } catch (e: unknown) {
        if (!this.#destroyed) this.#fail(e);
        return;
      }
      if (this.#destroyed) return;
      if (n === null) {
        // node's allowHalfOpen: true: the consumer still answers what it
        // received, then ends (a client may half-close after pipelining).
        this.#eof = true;
        this.emit("end");
        return;
      }
      this.#touch();
      this.#lent |= 1 << slot;
      this.#sizeReads(n, buffer.length);
      try {
        this.emit("data", buffer.subarray(0, n));
      } catch (e: unknown) {
        // A listener's bug costs this connection, never the process.
        this.#fail(e);
        return;
      }
    }
  }

  /** Grows the read size while reads fill their buffer; shrinks it after a run of small reads. */
  #sizeReads(n: number, capacity: number): void {
    if (n >= MIN_READ_BYTES || n === capacity) {
      this.#smallReads = 0;
      if (n === capacity && this.#readBytes < MAX_READ_BYTES) this.#readBytes *= 4;
    } else if (this.#readBytes > MIN_READ_BYTES && ++this.#smallReads >= SHRINK_AFTER_SMALL_READS) {
      this.#smallReads = 0;
      this.#readBytes = MIN_READ_BYTES;
    }
  }

  /** A buffer the consumer does not reference, of the current read size. */
  #freeSlot(): number {
    // Both lent: the new buffer replaces slot 0 here, the old one stays with the consumer.
    const slot = (this.#lent & 1) === 0 ? 0 : (this.#lent & 2) === 0 ? 1 : 0;
    const buffer = this.#buffers[slot];
    if (buffer === undefined || buffer.length !== this.#readBytes || (this.#lent & (1 << slot))) {
      this.#buffers[slot] = new Uint8Array(this.#readBytes);
      this.#lent &= ~(1 << slot);
    }
    return slot;
  }

  async #writeLoop(): Promise<void> {
    this.#writing = true;
    while (this.#queue.length > 0 && !this.#destroyed) {
      const chunks = this.#queue;
      const callbacks = this.#callbacks;
      this.#queue = [];
      this.#callbacks = [];
      const bytes = concatBytes(chunks);
      try {
        for (let offset = 0; offset < bytes.length;) {
          offset += await this.#conn.write(bytes.subarray(offset));
        }
      } catch (e: unknown) {
        this.#writing = false;
        if (!this.#destroyed) this.#fail(e);
        for (const fn of callbacks) fn(e instanceof Error ? e : new Error(String(e)));
        return;
      }
      this.#queued -= bytes.length;
      this.#touch();
      for (const fn of callbacks) fn(null);
    }
    this.#writing = false;
    if (this.#destroyed) return;
    if (this.#needDrain) {
      this.#needDrain = false;
      this.emit("drain");
    }
    if (this.#ending) this.#finishEnd();
  }

  /** Everything queued is written: close the sending side, then run `end` callbacks. */
  #finishEnd(): void {
    if (this.#destroyed) return;
    try {
      (this.#conn as Deno.TcpConn).closeWrite();
    } catch {
      // The peer is gone already.
    }
    const after = this.#afterEnd;
    this.#afterEnd = [];
    for (const fn of after) fn();
    // Both directions are done: nothing more can happen on this socket.
    if (this.#eof) this.destroy();
  }

  #fail(e: unknown): void {
    if (this.listenerCount("error") > 0) this.emit("error", e);
    this.destroy();
  }

  /** Activity (a read or a write) restarts the idle timer, as node's socket timeout does. */
  #touch(): void {
    if (this.#timeoutMs <= 0 || this.#destroyed) return;
    this.#lastActivity = Date.now();
    if (this.#timer === undefined) this.#arm(this.#timeoutMs);
  }

  #arm(ms: number): void {
    const timer = setTimeout(() => {
      this.#timer = undefined;
      if (this.#destroyed || this.#timeoutMs <= 0) return;
      const idle = Date.now() - this.#lastActivity;
      if (idle < this.#timeoutMs) return this.#arm(this.#timeoutMs - idle);
      // Fires once per idle period: the next activity arms it again.
      this.#onTimeout?.();
    }, ms);
    this.#timer = timer;
    Deno.unrefTimer(timer);
  }
}
