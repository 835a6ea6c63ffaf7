/**
 * sha256 of large messages on a worker thread. Hashing costs 0.55 s per GiB
 * on one core; the main thread also parses and writes, so a 1 GiB message
 * hashed inline streams at ~870 MB/s. The worker reads each file back from
 * the page cache as the main thread writes it, and the two cores share the
 * work. Small messages are hashed inline: a worker round trip costs more
 * than hashing a few KiB.
 *
 * The worker is optional. If it cannot start (a binary compiled without
 * `--include lib/spool/hash_worker.ts`) or fails, every message in flight
 * falls back to {@linkcode hashFile} on the main thread: slower, same bytes.
 *
 * @module
 */

import { sha256 } from "../native_memory.ts";
import { fileURLToPath } from "node:url";

/** What the main thread asks of the worker, in order, per job. */
export type HashRequest =
  | { op: "start"; job: number; path: string; length: number }
  | { op: "advance"; job: number; length: number }
  | { op: "finish"; job: number; length: number }
  | { op: "drop"; job: number };

/** The worker's answer to `finish`, or to any request that failed. */
export type HashReply = { job: number; hex: string } | { job: number; error: string };

/** Options of {@linkcode HashWorker}. */
export interface HashWorkerOptions {
  /** Told once, with a one-line reason, when the worker cannot run. */
  onFailure?: (reason: string) => void;
  /** The worker module; tests point it at one that fails. */
  moduleUrl?: URL;
}

const WORKER_MODULE = new URL("./hash_worker.ts", import.meta.url);

interface Waiter {
  resolve(hex: string): void;
  reject(error: Error): void;
}

/** One message's file, hashed by the worker. From {@linkcode HashWorker.start}. */
export interface FileHash {
  /** Says that the file now holds `length` bytes. */
  advance(length: number): void;
  /**
   * Says that the file is complete at `length` bytes.
   *
   * @returns The sha256 in hex; rejects if the worker failed.
   */
  finish(length: number): Promise<string>;
  /** Forgets the job (the message was aborted). */
  drop(): void;
}

/**
 * One lazily started hash worker shared by a spool's messages.
 *
 * @example Usage
 * ```ts ignore
 * import { HashWorker } from "./file_hasher.ts";
 * const worker = new HashWorker();
 * const job = worker.start("/tmp/big.eml", 4 << 20); // null: hash inline
 * const hex = await job?.finish(8 << 20);
 * worker.close();
 * ```
 */
export class HashWorker {
  /** A Worker of our own, or a port to another thread that serves hashing. */
  #worker: Worker | MessagePort | null = null;
  #broken = false;
  #nextJob = 1;
  readonly #waiting = new Map<number, Waiter>();
  readonly #onFailure: (reason: string) => void;
  readonly #moduleUrl: URL;

  /** @param options Failure report and worker module. */
  constructor(options: HashWorkerOptions = {}) {
    this.#onFailure = options.onFailure ?? (() => {});
    this.#moduleUrl = options.moduleUrl ?? WORKER_MODULE;
  }

  /**
   * Starts hashing `path`, whose first `length` bytes are written.
   *
   * @returns The job, or null when no worker can run (hash inline).
   */
  start(path: string, length: number): FileHash | null {
    const worker = this.#ensure();
    if (worker === null) return null;
    const job = this.#nextJob++;
    worker.postMessage({ op: "start", job, path, length } satisfies HashRequest);
    let finished = false;
    return {
      advance: (to) => {
        if (!finished) this.#post({ op: "advance", job, length: to });
      },
      finish: (to) => {
        finished = true;
        if (this.#worker === null) return Promise.reject(new Error("hash worker stopped"));
        const reply = new Promise<string>((resolve, reject) => {
          this.#waiting.set(job, { resolve, reject });
        });
        this.#post({ op: "finish", job, length: to });
        return reply;
      },
      drop: () => {
        if (finished) return;
        finished = true;
        this.#post({ op: "drop", job });
      },
    };
  }

  /**
   * Hashes on the thread behind `port` (which runs `serveHashRequests`)
   * instead of starting a worker, unless one already runs. The owner calls
   * {@linkcode close} if that thread goes away.
   */
  attach(port: MessagePort): void {
    if (this.#worker !== null || this.#broken) return;
    port.onmessage = (event: MessageEvent<HashReply>) => this.#settle(event.data);
    port.onmessageerror = () => this.#fail("unreadable reply");
    this.#worker = port;
  }

  /** Stops the worker; jobs waiting for it fall back to inline hashing. */
  close(): void {
    this.#stop(new Error("hash worker stopped"));
    this.#broken = true;
  }

  #ensure(): Worker | MessagePort | null {
    if (this.#worker !== null || this.#broken) return this.#worker;
    try {
      // A missing module would fail inside the worker, which prints the error
      // as uncaught, stack and all: find out here, in one line.
      if (this.#moduleUrl.protocol === "file:") Deno.statSync(fileURLToPath(this.#moduleUrl));
      const worker = new Worker(this.#moduleUrl, { type: "module" });
      worker.onmessage = (event: MessageEvent<HashReply>) => this.#settle(event.data);
      worker.onerror = (event: ErrorEvent) => {
        event.preventDefault(); // a failed worker must not take the server down
        this.#fail(event.message);
      };
      worker.onmessageerror = () => this.#fail("unreadable reply");
      this.#worker = worker;
    } catch (e: unknown) {
      this.#fail(e instanceof Error ? e.message : String(e));
    }
    return this.#worker;
  }

  #post(request: HashRequest): void {
    this.#worker?.postMessage(request);
  }

  #settle(reply: HashReply): void {
    const waiter = this.#waiting.get(reply.job);
    if (waiter === undefined) return; // an earlier failure; its finish will hear again
    this.#waiting.delete(reply.job);
    if ("hex" in reply) waiter.resolve(reply.hex);
    else waiter.reject(new Error(reply.error));
  }

  #fail(message: string): void {
    if (this.#broken) return;
    this.#broken = true;
    this.#onFailure(oneLine(message));
    this.#stop(new Error(message));
  }

  #stop(error: Error): void {
    if (this.#worker instanceof Worker) this.#worker.terminate();
    else this.#worker?.close();
    this.#worker = null;
    for (const waiter of this.#waiting.values()) waiter.reject(error);
    this.#waiting.clear();
  }
}

/**
 * sha256 of a whole file, on the calling thread: the fallback when the
 * worker failed.
 *
 * @param path The file.
 * @returns The hex digest.
 */
export function hashFile(path: string): string {
  const hash = sha256();
  const buffer = new Uint8Array(1 << 20);
  const file = Deno.openSync(path, { read: true });
  try {
    for (let n = file.readSync(buffer); n !== null && n > 0; n = file.readSync(buffer)) {
      hash.update(buffer.subarray(0, n));
    }
  } finally {
    file.close();
  }
  return hash.digest("hex");
}

function oneLine(text: string): string {
  return text.split("\n", 1)[0] ?? "";
}
