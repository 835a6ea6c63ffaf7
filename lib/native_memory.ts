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

/** V8's `gc` extension (`--expose-gc`); options make it asynchronous. */
export type GcFunction = (options: { type: "major"; execution: "async" }) => unknown;

/** Counts native objects and asks for a major GC every `every` of them. */
export class GcPacer {
  #made = 0;
  readonly #every: number;
  readonly #gc: GcFunction | undefined;

  constructor(every: number, gc: GcFunction | undefined) {
    this.#every = every;
    this.#gc = gc;
  }

  /** Notes one new object; true when this one asked for a GC. */
  note(): boolean {
    if (this.#gc === undefined || ++this.#made < this.#every) return false;
    this.#made = 0;
    try {
      const pending = this.#gc({ type: "major", execution: "async" });
      // A rejected GC promise must not become an unhandled rejection.
      if (pending instanceof Promise) pending.catch(() => {});
    } catch {
      // A GC that cannot run leaves memory to V8's schedule: no harm done.
    }
    return true;
  }
}

const pacer = new GcPacer(OBJECTS_PER_GC, (globalThis as { gc?: GcFunction }).gc);

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
