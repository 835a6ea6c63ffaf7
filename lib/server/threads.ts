/**
 * A second serving thread. One thread of Deno runs out of CPU near 17,000
 * small messages/s, most of it in system calls (four reply writes and seven
 * file calls per message); a second core lifts that. The second thread (the
 * helper) is a Web Worker running the same server on the same ports
 * (`SO_REUSEPORT`: the kernel spreads new connections over both) and the
 * same spool. What SPEC counts per server is shared through a
 * SharedArrayBuffer: open connections (`--max-connections`), connection
 * numbers in the log, and the ID sequence. Features with more shared state
 * (`--exit-after`, `--fault`, `--on-message`, TLS, library callbacks) keep
 * one thread. Each thread hashes the other's large messages (what the
 * hash worker does for one thread), so two threads cost one isolate more,
 * not two.
 *
 * @module
 */

import type { Logger } from "../log.ts";
import { hostPort, reusePortAvailable } from "../net/listener.ts";
import { serveHashRequests } from "../spool/hash_service.ts";
import { ID_STATE_BYTES } from "../spool/id.ts";
import type { SpoolWriter } from "../spool/writer.ts";
import type { ServeOptions } from "./options.ts";
import type { Setup } from "./setup.ts";

/** `deno compile` must be given `--include lib/server/helper_worker.ts`. */
const HELPER_MODULE = new URL("./helper_worker.ts", import.meta.url);
/** A helper that has not bound its listeners by then is given up. */
const HELPER_START_MS = 10_000;
/** After the drain deadline, how long a helper gets to report that it stopped. */
const HELPER_STOP_SLACK_MS = 5_000;

/** Buffers the threads of one server share; cloned (not copied) into the helper. */
export interface SharedState {
  /**
   * Uint32 slots: [0] the primary's open connections, [1] the helper's, [2]
   * the last connection number. One slot per thread, so that a helper that
   * died can be zeroed without touching the primary's count.
   */
  counters: SharedArrayBuffer;
  /** The ID generator's state (`IdGenerator`). */
  ids: SharedArrayBuffer;
}

export function newSharedState(): SharedState {
  return { counters: new SharedArrayBuffer(12), ids: new SharedArrayBuffer(ID_STATE_BYTES) };
}

/** Open connections and connection numbers, counted across threads. */
export class ConnectionCounters {
  #slots: Uint32Array;
  #own: 0 | 1;

  /** @param thread 0 for the primary, 1 for the helper. */
  constructor(shared: SharedState, thread: 0 | 1) {
    this.#slots = new Uint32Array(shared.counters);
    this.#own = thread;
  }

  /** Counts a new connection; returns the number open on both threads, this one included. */
  admit(): number {
    Atomics.add(this.#slots, this.#own, 1);
    return Atomics.load(this.#slots, 0) + Atomics.load(this.#slots, 1);
  }

  release(): void {
    Atomics.sub(this.#slots, this.#own, 1);
  }

  /** The next connection number (1-based), unique across threads; wraps after 2^32. */
  nextNumber(): number {
    return (Atomics.add(this.#slots, 2, 1) + 1) >>> 0;
  }

  /** A helper that died: its connections are gone and no longer count. */
  static forgetHelper(shared: SharedState): void {
    Atomics.store(new Uint32Array(shared.counters), 1, 0);
  }
}

/**
 * The serving threads `options` ask for: `threads` if set, else 2 with
 * fsync off on a machine of two or more CPUs, else 1. With fsync on, the
 * disk's commit latency bounds throughput, not the CPU, and two threads
 * split the group commit in two: 1 KiB × 10 sessions on ext4 measured
 * 4,800 messages/s with one thread and 4,100 with two.
 */
export function threadsWanted(options: ServeOptions): number {
  if (options.threads !== undefined) return options.threads;
  return options.noFsync === true && navigator.hardwareConcurrency >= 2 ? 2 : 1;
}

/** Whether `options` may run a helper thread; null if so, else why not (for the log). */
export function helperObstacle(options: ServeOptions, s: Setup): string | null {
  if (threadsWanted(options) < 2) {
    return options.threads === undefined ? "one thread by default" : "one thread asked for";
  }
  if (s.tls !== null) return "TLS";
  if (options.exitAfter !== undefined) return "--exit-after";
  if (!s.faults.empty) return "--fault";
  if (options.onMessageCommand !== undefined) return "--on-message";
  const callbacks = [
    options.onConnect,
    options.onAuth,
    options.onMailFrom,
    options.onRcptTo,
    options.onMessage,
  ];
  if (callbacks.some((c) => c !== undefined)) return "callbacks";
  if (!reusePortAvailable()) return "no SO_REUSEPORT (Linux and --unstable-net only)";
  return null;
}

/** Messages from the primary to the helper. */
export type ToHelper =
  | {
    type: "start";
    options: ServeOptions;
    shared: SharedState;
    /** The helper serves the primary's hashing on it. */
    hashForPrimary: MessagePort;
    /** The helper's spool hashes through it (the primary serves it). */
    hashForHelper: MessagePort;
  }
  | { type: "close" }
  | { type: "abort" };

/** Messages from the helper to the primary. */
export type FromHelper =
  | { type: "ready" }
  | { type: "failed"; reason: string }
  | { type: "stopped"; stored: number };

/** The options the helper runs with: the primary's, on the ports it bound. */
function helperOptions(options: ServeOptions, ports: { address: string; port: number }[]) {
  const copy: ServeOptions = { ...options, handleSignals: false };
  delete copy.readyFile;
  // Known callbacks keep one thread (helperObstacle); a function under an
  // unknown name (`onMesage`) is never called, and could not be cloned.
  for (const [key, value] of Object.entries(copy)) {
    if (typeof value === "function") delete (copy as Record<string, unknown>)[key];
  }
  copy.listen = ports.map((p) => hostPort(p.address, p.port));
  return copy;
}

/** The primary's handle on its helper thread. */
export class HelperThread {
  #worker: Worker;
  #logger: Logger;
  #spool: SpoolWriter;
  #shared: SharedState;
  /** The primary's hashing client and hashing service, once started. */
  #ports: MessagePort[] = [];
  /** Whether the primary's spool hashes on this thread. */
  #hashing = false;
  #stopped: Promise<number>;
  #resolveStopped!: (stored: number) => void;

  private constructor(worker: Worker, logger: Logger, spool: SpoolWriter, shared: SharedState) {
    this.#worker = worker;
    this.#shared = shared;
    this.#logger = logger;
    this.#spool = spool;
    this.#stopped = new Promise((done) => (this.#resolveStopped = done));
  }

  /**
   * Starts a helper serving `ports`; resolves once it accepts connections,
   * or to null (logged as a warning) when it cannot: the server then runs
   * on one thread, as before.
   */
  static async start(
    options: ServeOptions,
    shared: SharedState,
    ports: { address: string; port: number }[],
    logger: Logger,
    spool: SpoolWriter,
  ): Promise<HelperThread | null> {
    let worker: Worker;
    try {
      worker = new Worker(HELPER_MODULE, { type: "module" });
    } catch (e: unknown) {
      logger.warn("second thread unavailable: serving on one", { error: reasonOf(e) });
      return null;
    }
    const helper = new HelperThread(worker, logger, spool, shared);
    const outcome = await helper.#started(options, shared, ports);
    if (outcome === null) return helper;
    helper.stop();
    logger.warn("second thread unavailable: serving on one", { error: outcome });
    return null;
  }

  #started(
    options: ServeOptions,
    shared: SharedState,
    ports: { address: string; port: number }[],
  ): Promise<string | null> {
    return new Promise((settle) => {
      const timer = setTimeout(() => settle("it did not start in time"), HELPER_START_MS);
      let running = false;
      this.#worker.onmessage = (event: MessageEvent<FromHelper>) => {
        const message = event.data;
        if (message.type === "ready") {
          running = true;
          this.#spool.hashOn(this.#ports[0]!);
          this.#hashing = true;
          clearTimeout(timer);
          settle(null);
        } else if (message.type === "failed") {
          clearTimeout(timer);
          settle(message.reason);
        } else {
          this.#resolveStopped(message.stored);
        }
      };
      this.#worker.onerror = (event: ErrorEvent) => {
        // Handled here: an uncaught error in a worker must not end the process.
        // Once it serves, the worker logs its own (uncaught.ts); what arrives
        // here comes from its start or after it stopped.
        event.preventDefault();
        clearTimeout(timer);
        if (!running) {
          settle(event.message);
          return;
        }
        this.#logger.error("second thread failed: its connections are lost", {
          error: event.message,
        });
        if (this.#hashing) this.#spool.hashThreadGone();
        ConnectionCounters.forgetHelper(this.#shared);
        this.#resolveStopped(0);
      };
      const forPrimary = new MessageChannel();
      const forHelper = new MessageChannel();
      this.#ports = [forPrimary.port1, forHelper.port1];
      const start: ToHelper = {
        type: "start",
        options: helperOptions(options, ports),
        shared,
        hashForPrimary: forPrimary.port2,
        hashForHelper: forHelper.port2,
      };
      this.#worker.postMessage(start, [forPrimary.port2, forHelper.port2]);
      serveHashRequests(forHelper.port1);
    });
  }

  /**
   * Drains the helper's server (same deadline as the primary); resolves to
   * what it stored. The thread lives on, hashing for the primary, until
   * {@linkcode stop}.
   */
  async close(deadlineMs: number): Promise<number> {
    this.#post({ type: "close" });
    let timer: ReturnType<typeof setTimeout> | undefined;
    const late = new Promise<number>((done) => {
      timer = setTimeout(() => done(0), deadlineMs + HELPER_STOP_SLACK_MS);
    });
    const stored = await Promise.race([this.#stopped, late]);
    clearTimeout(timer);
    return stored;
  }

  /** Ends the thread; the primary hashes inline from now on. */
  stop(): void {
    // Only then: a helper that never started leaves the spool its own hash worker.
    if (this.#hashing) this.#spool.hashThreadGone();
    this.#worker.terminate();
    ConnectionCounters.forgetHelper(this.#shared);
    for (const port of this.#ports) port.close();
  }

  /** Second signal: the helper drops its connections too. */
  abort(): void {
    this.#post({ type: "abort" });
  }

  #post(message: ToHelper): void {
    try {
      this.#worker.postMessage(message);
    } catch {
      // Already terminated.
    }
  }
}

/** The one-line reason of a failure, for a log field or a message to the other thread. */
export function reasonOf(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}
