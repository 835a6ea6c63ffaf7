/**
 * node:crypto objects whose memory V8 does not see. Deno keeps a Hash's or
 * Hmac's state in native (malloc) memory that is freed only when V8 collects
 * the object in a major GC, and V8 schedules major GCs by its own heap alone:
 * with 1 KiB messages it ran none for hundreds of thousands of messages, and
 * RSS grew ~17 MB per 100,000 messages without bound (bench `growth` case).
 *
 * So every {@linkcode OBJECTS_PER_GC} objects made here ask V8 for an
 * asynchronous major GC — when the runtime exposes `gc`, which the pinned
 * runtime flags do (`--v8-flags=--expose-gc`: Makefile `RUNTIME_FLAGS`,
 * deno.json tasks). Without it nothing is asked and V8's own schedule applies.
 *
 * node:net and node:tls sockets read into a fresh buffer every time, which V8
 * also counts late: a 1 GB message over TLS peaked at 270 MB of RSS. Every
 * {@linkcode NODE_READ_BYTES_PER_GC} bytes they deliver ask for a minor GC.
 *
 * @module
 */

import { createHash, createHmac, type Hash, type Hmac } from "node:crypto";

/**
 * One major GC per this many objects: ~0.5 MB of native state outstanding at
 * most, for ~5 ms of incremental marking per GC with the server's ~7 MB heap
 * (about 4% of the 1 KiB throughput, measured: 16.2k against 17.1k msg/s
 * without the GCs). 10,000 gained 3% but let RSS grow 13% over 100,000
 * messages (66 → 70 MiB at 3,000, 68 → 76 MiB at 10,000).
 */
export const OBJECTS_PER_GC = 3000;

/**
 * Bytes read by node:net/node:tls sockets per minor GC. 1 GB in one message
 * over implicit TLS, peak RSS: 270 MB without, 117/121/134/144 MB at 2/4/8/16
 * MB (plain node:net: 196 → 115 MB at 4), at the same MB/s within the noise:
 * the young generation is 2 MB (`--max-semi-space-size=2`), so a minor GC is
 * short.
 */
export const NODE_READ_BYTES_PER_GC = 4 * 1024 * 1024;

/** V8's `gc` extension (`--expose-gc`); options make it asynchronous. */
export type GcFunction = (options: { type: "major" | "minor"; execution: "async" }) => unknown;

/** Counts native memory made and asks for a GC every `every` units of it. */
export class GcPacer {
  #made = 0;
  readonly #every: number;
  readonly #gc: GcFunction | undefined;
  readonly #type: "major" | "minor";

  constructor(every: number, gc: GcFunction | undefined, type: "major" | "minor" = "major") {
    this.#every = every;
    this.#gc = gc;
    this.#type = type;
  }

  /** Notes `units` more (one object, n bytes); true when this note asked for a GC. */
  note(units = 1): boolean {
    if (this.#gc === undefined) return false;
    this.#made += units;
    if (this.#made < this.#every) return false;
    this.#made = 0;
    try {
      const pending = this.#gc({ type: this.#type, execution: "async" });
      // A rejected GC promise must not become an unhandled rejection.
      if (pending instanceof Promise) pending.catch(() => {});
    } catch {
      // A GC that cannot run leaves memory to V8's schedule: no harm done.
    }
    return true;
  }
}

const exposedGc = (globalThis as { gc?: GcFunction }).gc;
const pacer = new GcPacer(OBJECTS_PER_GC, exposedGc);
const nodeReads = new GcPacer(NODE_READ_BYTES_PER_GC, exposedGc, "minor");

/** Counts bytes a node:net or node:tls socket delivered, each chunk in a buffer of its own. */
export function noteNodeRead(bytes: number): void {
  nodeReads.note(bytes);
}

/** A streaming SHA-256 (node:crypto), counted by the GC pacer. */
export function sha256(): Hash {
  pacer.note();
  return createHash("sha256");
}

/** An HMAC (node:crypto), counted by the GC pacer. */
export function hmac(algorithm: string, key: string): Hmac {
  pacer.note();
  return createHmac(algorithm, key);
}
