/**
 * Reads a spool (SPEC §3) for `list`, `show`, `wait` and `purge`. Only
 * `<id>.json` files count: their presence means the message is complete,
 * and `.tmp/` is never read.
 *
 * @module
 */

import { errorReason } from "../os_error.ts";
import { idTime, isMessageId } from "./id.ts";
import { type Meta, parseMeta } from "./meta.ts";
import { absolutePath, joinPath } from "./fsync.ts";

export { isMessageId };

/**
 * Wait rescans this often even when the watcher is silent: watch events
 * are missing on NFS and some Windows shares, and before the directory exists.
 */
const WAIT_POLL_MS = 250;

/** The `from` filter that selects messages from the null reverse-path. */
const NULL_SENDER = "<>";

/**
 * Which messages to select; every given field must hold. Matching is by
 * case-insensitive substring.
 */
export interface MessageFilter {
  /**
   * Matches `mailFrom` or the From header; `<>` matches the null sender
   * (`mailFrom` is `""`) and nothing else, as no substring could select it.
   */
  from?: string;
  /** Matches any of `rcptTo` or the To header. */
  to?: string;
  /** Matches the Subject header. */
  subject?: string;
}

/** Options of {@linkcode SpoolReader.wait}. */
export interface WaitOptions {
  filter?: MessageFilter;
  /** How many matching messages to wait for. */
  count: number;
  /** Give up after this many milliseconds. */
  timeoutMs: number;
  /** Give up when aborted. */
  signal?: AbortSignal;
}

/** Options of {@linkcode SpoolReader.list}. */
export interface ListOptions {
  /**
   * Called for each `<id>.json` that is skipped because it does not hold
   * valid metadata (`reason` says how), so a reader can say so.
   */
  onUnreadable?: (id: string, reason: string) => void;
}

/**
 * What reading one message's `<id>.json` found: its metadata, nothing (no
 * such message, or purged meanwhile), or a file that holds no valid metadata.
 */
export type MetaRead =
  | { status: "ok"; meta: Meta }
  | { status: "missing" }
  | { status: "unreadable"; reason: string };

/** Options of {@linkcode SpoolReader.purge}. */
export interface PurgeOptions {
  /** Only messages received at least this long before `now`. */
  olderThanMs?: number;
  /** Default: the current time. */
  now?: Date;
  /**
   * A message that cannot be removed (an immutable file, a read-only
   * directory) is reported here and the purge goes on; without it the
   * first such failure rejects.
   */
  onFailure?: (id: string, error: unknown) => void;
}

/**
 * Whether a message matches a filter.
 *
 * @param meta The message.
 * @param filter The conditions (all must hold).
 * @returns True when it matches.
 */
export function matchesFilter(meta: Meta, filter: MessageFilter = {}): boolean {
  const has = (value: unknown, needle: string): boolean =>
    typeof value === "string" && value.toLowerCase().includes(needle.toLowerCase());
  if (filter.from === NULL_SENDER) {
    if (meta.mailFrom !== "") return false;
  } else if (filter.from !== undefined && !has(meta.mailFrom, filter.from)) {
    if (!has(meta.headers.from, filter.from)) return false;
  }
  if (filter.to !== undefined && !has(meta.headers.to, filter.to)) {
    if (!meta.rcptTo.some((r) => has(r, filter.to!))) return false;
  }
  if (filter.subject !== undefined && !has(meta.headers.subject, filter.subject)) return false;
  return true;
}

/**
 * Reads the messages of one spool directory. Safe to use while servers
 * write to it and other readers purge it.
 *
 * @example Usage
 * ```ts ignore
 * import { SpoolReader } from "./reader.ts";
 * const spool = new SpoolReader("/tmp/mail");
 * const { matched, timedOut } = await spool.wait({ count: 1, timeoutMs: 30_000, filter: { to: "bob@" } });
 * for await (const meta of spool.list()) console.log(meta.id, meta.headers.subject);
 * ```
 */
export class SpoolReader {
  /** The spool directory, absolute. */
  readonly dir: string;

  /** @param dir The spool directory (it need not exist yet). */
  constructor(dir: string) {
    this.dir = absolutePath(dir);
  }

  /**
   * IDs of the complete messages, sorted ascending (that is, by receipt).
   *
   * @returns The IDs; empty when the directory does not exist.
   */
  async ids(): Promise<string[]> {
    const ids: string[] = [];
    try {
      for await (const entry of Deno.readDir(this.dir)) {
        // Not a directory, nor a FIFO or device: reading one would hang or fail.
        if (!entry.name.endsWith(".json") || !(entry.isFile || entry.isSymlink)) continue;
        const id = entry.name.slice(0, -".json".length);
        if (isMessageId(id)) ids.push(id);
      }
    } catch (e: unknown) {
      if (!(e instanceof Deno.errors.NotFound)) {
        // Deno's "Not a directory (os error 20): readdir '…'" does not say what it is for;
        // the error keeps its class (the CLI's exit 1).
        if (e instanceof Error) e.message = `cannot read spool ${this.dir}: ${errorReason(e)}`;
        throw e;
      }
    }
    return ids.sort();
  }

  /**
   * The metadata of every complete message, in ID order. Reads one `.json`
   * at a time, so memory stays small for a large spool; a file that
   * vanishes (a concurrent purge) is skipped, and so is one that does not
   * hold valid metadata (reported to `options.onUnreadable`).
   *
   * @param filter Only messages matching it.
   * @param options Where to report skipped files.
   * @returns The metadata, streamed.
   */
  async *list(filter?: MessageFilter, options: ListOptions = {}): AsyncIterable<Meta> {
    for (const id of await this.ids()) {
      const found = await this.#read(id);
      if (found.status === "unreadable") options.onUnreadable?.(id, found.reason);
      if (found.status === "ok" && matchesFilter(found.meta, filter)) yield found.meta;
    }
  }

  /**
   * The metadata of one message.
   *
   * @param id A message ID, or `latest` for the most recent one.
   * @returns The metadata, or null when unknown, unreadable or not a message ID (no path is built from it then).
   */
  async meta(id: string): Promise<Meta | null> {
    const found = await this.read(id);
    return found.status === "ok" ? found.meta : null;
  }

  /**
   * The metadata of one message, or why there is none: like
   * {@linkcode SpoolReader.meta}, but telling a missing message from one
   * whose `.json` holds no valid metadata.
   *
   * @param id A message ID, or `latest` for the most recent readable one.
   * @returns What was found; `missing` for anything that is not a message ID.
   */
  async read(id: string): Promise<MetaRead> {
    if (id === "latest") {
      const ids = await this.ids();
      for (let i = ids.length - 1; i >= 0; i--) {
        const found = await this.#read(ids[i]!);
        if (found.status === "ok") return found;
      }
      return { status: "missing" };
    }
    return isMessageId(id) ? await this.#read(id) : { status: "missing" };
  }

  /**
   * The absolute path of a message's `.eml`.
   *
   * @param id A message ID (see {@linkcode isMessageId}).
   * @returns The path.
   * @throws {RangeError} When `id` is no message ID: no path outside the spool is ever built.
   */
  emlPath(id: string): string {
    return this.#path(id, ".eml");
  }

  /**
   * The absolute path of a message's `.json`.
   *
   * @param id A message ID.
   * @returns The path.
   * @throws {RangeError} When `id` is no message ID.
   */
  metaPath(id: string): string {
    return this.#path(id, ".json");
  }

  #path(id: string, ext: string): string {
    if (!isMessageId(id)) throw new RangeError(`not a message ID: ${JSON.stringify(id)}`);
    return joinPath(this.dir, id + ext);
  }

  /**
   * Waits until at least `count` messages match. Watches the directory and
   * also rescans every 250 ms (watch events are missing on NFS and some
   * Windows shares); works when the directory does not exist yet.
   *
   * @param options Filter, count, timeout and abort signal.
   * @returns Every match still stored at the last look, in ID order, and whether it gave up first.
   */
  async wait(options: WaitOptions): Promise<{ matched: Meta[]; timedOut: boolean }> {
    const deadline = Date.now() + Math.max(0, options.timeoutMs);
    // Metadata of every stored message read so far (null: it does not match);
    // each scan keeps only what is still there, so a purged match stops counting.
    const known = new Map<string, Meta | null>();
    let matched: Meta[] = [];
    const scan = async (): Promise<void> => {
      const ids = await this.ids();
      const next: Meta[] = [];
      let kept = 0;
      for (const id of ids) {
        let meta = known.get(id);
        if (meta === undefined) {
          const found = await this.#read(id);
          if (found.status !== "ok") continue; // vanished (it cannot come back) or unreadable
          meta = matchesFilter(found.meta, options.filter) ? found.meta : null;
          known.set(id, meta);
        }
        kept++;
        if (meta !== null) next.push(meta);
      }
      if (known.size > kept) {
        const present = new Set(ids);
        for (const id of known.keys()) if (!present.has(id)) known.delete(id);
      }
      matched = next;
    };

    const waker = new Waker();
    const onAbort = (): void => waker.wake();
    options.signal?.addEventListener("abort", onAbort);
    let watcher: Deno.FsWatcher | null = null;
    let watching: Promise<void> = Promise.resolve();
    try {
      while (true) {
        await scan();
        if (matched.length >= options.count) return { matched, timedOut: false };
        const left = deadline - Date.now();
        if (left <= 0 || options.signal?.aborted) return { matched, timedOut: true };
        if (watcher === null) {
          watcher = this.#watch();
          if (watcher !== null) watching = pump(watcher, waker);
        }
        await waker.sleep(Math.min(WAIT_POLL_MS, left));
      }
    } finally {
      options.signal?.removeEventListener("abort", onAbort);
      waker.wake();
      watcher?.close();
      await watching;
    }
  }

  /**
   * Deletes complete messages, each `<id>.json` first (so no reader sees a
   * message without its `.eml`), then `<id>.eml`. Never touches other
   * files: not `.tmp/`, not orphans of a server still writing.
   *
   * @param options Age limit, measured by the receipt time in the ID.
   * @returns How many messages were removed.
   */
  async purge(options: PurgeOptions = {}): Promise<number> {
    const now = (options.now ?? new Date()).getTime();
    let removed = 0;
    for (const id of await this.ids()) {
      if (options.olderThanMs !== undefined && !(now - idTime(id) >= options.olderThanMs)) {
        continue;
      }
      const failed = (e: unknown) => {
        if (!options.onFailure) throw e;
        options.onFailure(id, e);
      };
      try {
        await Deno.remove(this.metaPath(id));
      } catch (e: unknown) {
        if (!(e instanceof Deno.errors.NotFound)) failed(e); // NotFound: a concurrent purge got it
        continue;
      }
      removed++;
      try {
        // Only a file: Deno.remove would also take an empty directory of that name.
        const eml = this.emlPath(id);
        if (!(await Deno.lstat(eml)).isDirectory) await Deno.remove(eml);
      } catch (e: unknown) {
        if (!(e instanceof Deno.errors.NotFound)) failed(e);
      }
    }
    return removed;
  }

  /** The metadata of `id`; `unreadable` when the file holds none, or another message's. */
  async #read(id: string): Promise<MetaRead> {
    let text: string;
    try {
      // A FIFO (or a link to one) would hold the read until something writes to it.
      const info = await Deno.stat(this.metaPath(id));
      if (info.isDirectory) return { status: "missing" };
      if (!info.isFile) return { status: "unreadable", reason: "not a regular file" };
      text = await Deno.readTextFile(this.metaPath(id));
    } catch (e: unknown) {
      if (e instanceof Deno.errors.NotFound || e instanceof Deno.errors.IsADirectory) {
        return { status: "missing" };
      }
      // One file the reader may not read (mode 000, an I/O error) spoils no listing.
      // The OS reason without the path Deno appends ("…(os error 13): readfile '…'").
      const message = e instanceof Error ? e.message : String(e);
      const reason = /^.*?\(os error \d+\)/.exec(message)?.[0] ?? message.split("\n", 1)[0];
      return { status: "unreadable", reason: `cannot read it: ${reason}` };
    }
    const meta = parseMeta(text);
    if (meta === null) return { status: "unreadable", reason: metaProblem(text) };
    if (meta.id !== id) return { status: "unreadable", reason: "its id is another message's" };
    return { status: "ok", meta };
  }

  #watch(): Deno.FsWatcher | null {
    try {
      return Deno.watchFs(this.dir, { recursive: false });
    } catch {
      // Not there yet, or not watchable: the poll covers it.
      return null;
    }
  }
}

/** Why `text` is not valid metadata (parseMeta refused it); short, quoting nothing of it. */
function metaProblem(text: string): string {
  if (text.trim() === "") return "empty file";
  try {
    JSON.parse(text);
  } catch {
    return "not valid JSON";
  }
  return "required fields missing or of the wrong type";
}

/** A sleep that ends early on wake(); a wake with no sleeper ends the next sleep at once. */
class Waker {
  #pending = false;
  #resolve: (() => void) | null = null;

  wake(): void {
    if (this.#resolve !== null) this.#resolve();
    else this.#pending = true;
  }

  sleep(ms: number): Promise<void> {
    if (this.#pending) {
      this.#pending = false;
      return Promise.resolve();
    }
    return new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        this.#resolve = null;
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.#resolve = done;
    });
  }
}

async function pump(watcher: Deno.FsWatcher, waker: Waker): Promise<void> {
  try {
    for await (const event of watcher) {
      if (event.paths.some((p) => p.endsWith(".json"))) waker.wake();
    }
  } catch {
    // The directory went away: the poll carries on alone.
  }
}
