/**
 * The part of a `node:net` socket the connection driver and the server use,
 * so that a plain listener can hand over a `Deno.listen` connection
 * (`native_socket.ts`) instead: node's socket allocates a fresh 64 KiB
 * buffer for every read, which a 1 GiB message turns into ~180 MiB of RSS.
 *
 * @module
 */

/** A connected stream socket: `node:net`'s `Socket` or a `NativeSocket`. */
export interface WireSocket {
  readonly remoteAddress?: string | undefined;
  readonly remotePort?: number | undefined;
  readonly localAddress?: string | undefined;
  readonly localPort?: number | undefined;
  readonly destroyed: boolean;
  /** node:net: the peer's FIN was read (`end` emitted), perhaps before anyone listened. */
  readonly readableEnded?: boolean;
  /** Bytes accepted by `write` and not yet handed to the kernel. */
  readonly writableLength: number;
  // deno-lint-ignore no-explicit-any
  on(event: string, listener: (...args: any[]) => void): this;
  // deno-lint-ignore no-explicit-any
  once(event: string, listener: (...args: any[]) => void): this;
  // deno-lint-ignore no-explicit-any
  off(event: string, listener: (...args: any[]) => void): this;
  // deno-lint-ignore no-explicit-any
  removeListener(event: string, listener: (...args: any[]) => void): this;
  /** Queues bytes; `false` means wait for `drain` before writing more. */
  write(bytes: Uint8Array, callback?: (error?: Error | null) => void): boolean;
  /** Writes what is queued (and `bytes`), then closes the sending side. */
  end(callback?: () => void): this;
  end(bytes: Uint8Array, callback?: () => void): this;
  pause(): this;
  resume(): this;
  setNoDelay(noDelay?: boolean): this;
  /** Calls `callback` once the socket has been idle (no read, no write) for `ms`; 0 disables. */
  setTimeout(ms: number, callback?: () => void): this;
  destroy(): this;
  /**
   * Every byte emitted as `data` so far has been parsed and is no longer
   * referenced: the socket may read into the same buffer again.
   */
  consumed?(): void;
}
