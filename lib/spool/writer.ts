/**
 * Writes messages into the spool (SPEC §3): a body larger than the write
 * buffer streams into a file in `.tmp/`, then commit allocates the ID and
 * makes `<id>.eml` and, last, `<id>.json` appear, fsynced with their
 * directory unless fsync is off. A body that fits the buffer is written as
 * `<id>.eml` at commit.
 *
 * The ID is allocated when the message has been received, not when its
 * DATA began: IDs then sort in the order the messages were received (and
 * as their `receivedAt`, which is the ID's time), also when a slow message
 * overlaps a quick one.
 *
 * @module
 */

import type { Hash } from "node:crypto";
import { sha256 } from "../native_memory.ts";
import { IdGenerator, idTime } from "./id.ts";
import { buildMeta, type Meta, type MetaInput } from "./meta.ts";
import { parseHeaderFields } from "./headers.ts";
import { LOCK_FILE, recoverSpool, type RecoveryReport, TMP_DIR } from "./recover.ts";
import { absolutePath, DirSyncer, joinPath, removeQuietly, renameOver } from "./fsync.ts";
import { BufferPool } from "./buffer_pool.ts";
import { encodeShared, writeAllSync } from "../bytes.ts";
import { type FileHash, hashFile, HashWorker } from "./file_hasher.ts";

/** Windows has no directory fsync and cannot rename a file it holds open everywhere (SPEC §7). */
const IS_WINDOWS = Deno.build.os === "windows";
/**
 * Bytes gathered before a write to the file: few syscalls for DATA's many
 * small chunks. Pooled (buffer_pool.ts): a message starts in a 4 KiB buffer
 * and moves to one of these only when it outgrows that.
 */
const WRITE_BUFFER_BYTES = 64 * 1024;
/** A new file: never an existing one (a clash of IDs must fail, not overwrite). */
const CREATE: Deno.OpenOptions = { write: true, createNew: true };
/** Bytes kept for {@linkcode parseHeaderFields}; bounds memory whatever the header size. */
const HEADER_PREFIX_BYTES = 64 * 1024;
/** How long {@linkcode SpoolWriter.close} waits for commits in flight. */
const CLOSE_WAIT_MS = 10_000;
/**
 * A message larger than this is hashed by the worker (file_hasher.ts), smaller ones inline.
 * Like {@linkcode EARLY_SYNC_BYTES} it must exceed {@linkcode WRITE_BUFFER_BYTES}: both act
 * on the body's file in `.tmp/`, which exists only for a body that outgrew the buffer.
 */
const WORKER_HASH_BYTES = 1024 * 1024;
/** How far the file grows between two notes to the hash worker. */
const WORKER_ADVANCE_BYTES = 1024 * 1024;
/**
 * With fsync on, a large message's data is synced every this many bytes
 * while it arrives, so the disk writes it back during the transfer rather
 * than all at the end (1 GiB: the final fsync took 0.65 s on its own).
 */
const EARLY_SYNC_BYTES = 8 * 1024 * 1024;

/**
 * A failure of the spool, which the server answers with a temporary error
 * (SPEC §4): `"unwritable"` → `451 4.3.0`, `"full"` → `452 4.3.1`.
 */
export class SpoolError extends Error {
  /** Which temporary reply the failure maps to. */
  readonly kind: "unwritable" | "full";

  /**
   * @param kind `"full"` for ENOSPC/EDQUOT, `"unwritable"` for anything else.
   * @param message One line naming the path and the OS reason.
   * @param options The underlying error as `cause`.
   */
  constructor(kind: "unwritable" | "full", message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "SpoolError";
    this.kind = kind;
  }
}

/**
 * Wraps any error of a spool operation as a {@linkcode SpoolError}: ENOSPC,
 * EDQUOT (a quota is a full disk to this user) and EFBIG (a file-size limit,
 * `ulimit -f`) are `"full"`, everything else (EACCES, EROFS, ENOENT, EIO, …)
 * `"unwritable"`.
 *
 * @param e What was thrown.
 * @param action What was attempted, e.g. `Cannot write to spool "/srv/mail"`.
 * @returns The error to throw.
 */
export function toSpoolError(e: unknown, action: string): SpoolError {
  if (e instanceof SpoolError) return e;
  const code = (e as { code?: unknown } | null)?.code;
  const message = e instanceof Error ? e.message : String(e);
  // Deno names ENOSPC only: a quota (Linux 122 "Disk quota exceeded", macOS
  // "Disc quota exceeded") or a size limit (EFBIG, Windows 223) is told by its text.
  const full = code === "ENOSPC" || code === "EDQUOT" || code === "EFBIG" ||
    /no space left|file too large|quota exceeded|file size exceeds/i.test(message);
  const reason = message.split("\n", 1)[0];
  return new SpoolError(full ? "full" : "unwritable", `${action}: ${reason}`, { cause: e });
}

/** Options of {@linkcode SpoolWriter.open}. */
export interface SpoolWriterOptions {
  /** The spool directory; created (with parents) if missing. */
  dir: string;
  /** Whether commit fsyncs data and directory entries (false for `--no-fsync`). */
  fsync: boolean;
  /**
   * Told once, with a one-line reason, when the hash worker cannot run and
   * large messages are hashed on the main thread (slower, same result).
   */
  onHashWorkerFailure?: (reason: string) => void;
  /**
   * The ID generator's state, shared by the threads of one server so that
   * their IDs form one sequence (see {@linkcode IdGenerator}).
   */
  idState?: SharedArrayBuffer;
  /**
   * False for a second thread of a running server: it must not clean up
   * start-up leftovers, which are the first thread's messages in flight.
   */
  recover?: boolean;
  /**
   * How often, at most, a message's begin or commit checks that the lock
   * held is still the one at the lock's path (a stat); default 250 ms.
   */
  lockCheckMs?: number;
}

/** Default {@linkcode SpoolWriterOptions.lockCheckMs}: a stat per message cost 8% of small-message throughput. */
const LOCK_CHECK_MS = 250;

/** One message being received; from {@linkcode SpoolWriter.begin}. */
export interface MessageSink {
  /** Bytes written so far. */
  readonly size: number;
  /**
   * Appends bytes (buffered), hashing them on the way; `bytes` may be
   * reused as soon as the call returns. Synchronous on purpose: Deno's
   * async file ops pay a thread-pool round trip (measured ~250 µs for an
   * open, ~15 µs sync) that halved throughput, while a 64 KiB write into
   * the page cache blocks the loop for microseconds. Only fsync, which waits
   * for the disk, is async.
   *
   * @throws {SpoolError} When the file cannot be written.
   */
  write(bytes: Uint8Array): void;
  /**
   * Makes the message durable and visible: allocate its ID, flush (or
   * write `<id>.eml` whole), write `.tmp/<id>.json`, rename a streamed body to `<id>.eml`,
   * fsync both files' data (and the directory, for a renamed body) in one
   * round, rename to `<id>.json`, fsync the directory. On failure removes
   * what it wrote.
   *
   * @param input What the server recorded about the transaction.
   * @param gate Asked once `<id>.eml` is complete in its place, before the
   *   `.json` takes its name: false withdraws the message, which no reader
   *   ever saw (the library's `onMessage` may still refuse it).
   * @returns The metadata as stored (its `id` is the message's ID), or null when `gate` refused it.
   * @throws {SpoolError} When the files cannot be written.
   */
  commit(input: MetaInput): Promise<Meta>;
  commit(input: MetaInput, gate: CommitGate | undefined): Promise<Meta | null>;
  /** Removes the temporary file. Never throws; may be called more than once. */
  abort(): void;
}

/** Decides, once a message's `.eml` is complete, whether its `.json` may take its name. */
export type CommitGate = (meta: Meta) => Promise<boolean>;

/**
 * Creates {@linkcode MessageSink}s in one spool directory.
 *
 * @example Usage
 * ```ts ignore
 * import { SpoolWriter } from "./writer.ts";
 * const spool = await SpoolWriter.open({ dir: "/tmp/mail", fsync: true });
 * const sink = await spool.begin();
 * await sink.write(new TextEncoder().encode("Subject: hi\r\n\r\nHello\r\n"));
 * const meta = await sink.commit(input); // input: MetaInput from the session
 * await spool.close();
 * ```
 */
export class SpoolWriter {
  /** The spool directory, absolute. */
  readonly dir: string;
  /** What start-up recovery removed, for the log. */
  readonly recovery: RecoveryReport;
  readonly #tmp: string;
  readonly #fsync: boolean;
  readonly #ids: IdGenerator;
  readonly #dirSync: DirSyncer;
  readonly #hashWorker: HashWorker;
  readonly #buffers = new BufferPool(WRITE_BUFFER_BYTES);
  /**
   * Names of streamed bodies in `.tmp/` before they have an ID: random per
   * writer (other servers and threads share `.tmp/`), then a count.
   */
  readonly #tmpPrefix = crypto.randomUUID().slice(0, 8);
  #tmpCount = 0;
  readonly #commits = { inFlight: 0 };
  #closed = false;

  #lock: Deno.FsFile;
  /** The held lock file's inode and device; null where the OS gives none (Windows). */
  #lockId: FileId | null;
  readonly #lockPath: string;
  readonly #lockCheckMs: number;
  #lockCheckedAt = -Infinity;
  /** A {@linkcode repair} under way: concurrent failures share it. */
  #repairing: Promise<boolean> | null = null;
  /** Given to every sink: one closure, not one per message. */
  readonly #holdLockBound = () => this.#holdLock();

  private constructor(
    options: SpoolWriterOptions & { dir: string },
    recovery: RecoveryReport,
    lock: Deno.FsFile,
  ) {
    this.#lock = lock;
    this.#lockId = fileId(lock);
    this.dir = options.dir;
    this.#tmp = joinPath(options.dir, TMP_DIR);
    this.#lockPath = joinPath(this.#tmp, LOCK_FILE);
    this.#lockCheckMs = options.lockCheckMs ?? LOCK_CHECK_MS;
    this.#fsync = options.fsync;
    this.#dirSync = new DirSyncer(options.dir);
    this.#ids = new IdGenerator(options.idState);
    this.#hashWorker = new HashWorker(
      options.onHashWorkerFailure ? { onFailure: options.onHashWorkerFailure } : {},
    );
    this.recovery = recovery;
  }

  /**
   * Creates the spool and its `.tmp/` if missing, runs start-up recovery
   * and checks that a file can be created there.
   *
   * @param options Directory and fsync mode.
   * @returns The writer.
   * @throws {SpoolError} Naming the directory and the OS reason.
   */
  static async open(options: SpoolWriterOptions): Promise<SpoolWriter> {
    const dir = absolutePath(options.dir);
    const action = `Cannot use spool directory "${dir}"`;
    let recovery: RecoveryReport;
    let lock: Deno.FsFile | undefined;
    try {
      await Deno.mkdir(joinPath(dir, TMP_DIR), { recursive: true });
      // Several servers may share a spool (SPEC §3). Each holds the lock
      // shared while it runs; recovery needs it exclusive, so a server that
      // starts beside a live one never deletes that one's messages in flight.
      lock = await Deno.open(joinPath(joinPath(dir, TMP_DIR), LOCK_FILE), {
        read: true,
        write: true,
        create: true,
      });
      if (options.recover !== false && await lock.tryLock(true)) {
        recovery = await recoverSpool(dir);
        await lock.unlock();
      } else {
        recovery = { tmpRemoved: 0, orphansRemoved: 0, skipped: true };
      }
      await lock.lock(false);
      // mkdir succeeds on an existing read-only directory: prove a file can be
      // made in .tmp/ (streamed bodies) and in the spool itself (<id>.eml,
      // <id>.json); either may be writable without the other. SPEC §3's
      // "never touched" is about files of others: this dot-named probe is ours
      // and gone at once.
      for (const where of [joinPath(dir, TMP_DIR), dir]) {
        const probe = joinPath(where, `.probe-${crypto.randomUUID()}`);
        await Deno.writeFile(probe, new Uint8Array(0), { createNew: true });
        await Deno.remove(probe);
      }
    } catch (e: unknown) {
      lock?.close();
      throw toSpoolError(e, action);
    }
    return new SpoolWriter({ ...options, dir }, recovery, lock);
  }

  /**
   * Starts a message. Its file in `.tmp/` is created when the first bytes
   * leave the write buffer (a message above 64 KiB); a message
   * that fits the buffer is written as `<id>.eml` at commit, so a spool
   * fault shows there (and, with `--no-fsync`, a small message costs one
   * file call instead of open, write and close, and no rename).
   *
   * @returns The sink to stream the message into.
   * @throws {SpoolError} `"unwritable"` once the writer is closed.
   */
  begin(): MessageSink {
    if (this.#closed) {
      throw new SpoolError("unwritable", `Cannot write to spool "${this.dir}": writer is closed`);
    }
    // Another server may have made the spool anew (after an `rm -rf`) while
    // this one kept serving: take its lock before this body goes to .tmp/.
    if (this.#lockMoved()) void this.repair().catch(() => {});
    const streamTo = joinPath(this.#tmp, `${this.#tmpPrefix}-${++this.#tmpCount}.eml`);
    return new Sink(streamTo, {
      dir: this.dir,
      tmp: this.#tmp,
      ids: this.#ids,
      fsync: this.#fsync,
      dirSync: this.#dirSync,
      hashWorker: this.#hashWorker,
      buffers: this.#buffers,
      commits: this.#commits,
      holdLock: this.#holdLockBound,
    });
  }

  /**
   * Withdraws a stored message (a library `onMessage` refused it, or its
   * client left before the 250): `.json` first, so readers never see half of
   * it, and durably, so a crash cannot bring back a message that got no 250.
   *
   * @param id The message ID.
   */
  async remove(id: string): Promise<void> {
    removeQuietly(joinPath(this.dir, `${id}.json`));
    removeQuietly(joinPath(this.dir, `${id}.eml`));
    if (this.#fsync && !IS_WINDOWS) await this.#dirSync.sync();
  }

  /**
   * Hashes large messages on the thread behind `port` (a second serving
   * thread) instead of a worker of its own: one isolate less in memory.
   */
  hashOn(port: MessagePort): void {
    this.#hashWorker.attach(port);
  }

  /** The thread given to {@linkcode hashOn} is gone: hash inline from now on. */
  hashThreadGone(): void {
    this.#hashWorker.close();
  }

  /**
   * Recreates the spool and its `.tmp/` when they were removed while the
   * server runs (a mailbox cleared with `rm -rf`), and takes the shared lock
   * again in the new `.tmp/` (also when another writer recreated them
   * first), so another server's start-up recovery still sees this one. The
   * message that found them gone got its 451 and the client retries it.
   * Any other failure (a spool made read-only, a full disk) is left as it is.
   *
   * @returns True when the directories or the lock were made anew.
   */
  repair(): Promise<boolean> {
    this.#repairing ??= this.#recreate().finally(() => this.#repairing = null);
    return this.#repairing;
  }

  async #recreate(): Promise<boolean> {
    if (this.#closed || this.#lockInPlace()) return false;
    let lock: Deno.FsFile | undefined;
    try {
      await Deno.mkdir(this.#tmp, { recursive: true });
      lock = await Deno.open(this.#lockPath, {
        read: true,
        write: true,
        create: true,
      });
      await lock.lock(false);
    } catch {
      lock?.close();
      return false; // still broken: the next failure tries again
    }
    if (this.#closed) {
      lock.close();
      return false;
    }
    const old = this.#lock; // its file went with the old .tmp/
    this.#lock = lock;
    this.#lockId = fileId(lock);
    closeQuietly(old);
    return true;
  }

  /**
   * Whether the lock file this writer holds is still the one at its path.
   * Not merely whether `.tmp/` exists: another thread or server sharing the
   * spool may have recreated it, and this writer's lock then sits on a
   * removed file that another server's start-up recovery cannot see.
   */
  #lockInPlace(): boolean {
    const there = this.#lockAtPath();
    if (there === undefined) return true; // cannot tell: leave it
    if (there === null) return false;
    // Windows gives no inode numbers: there a lock file in place counts as ours.
    return this.#lockId === null || sameFile(there, this.#lockId);
  }

  /**
   * Whether a lock file other than the held one is at the lock's path: the
   * spool was removed and another writer (a thread, a server) made it anew.
   * A lock file gone altogether is not "moved": the commit that then fails
   * gets its 451 and {@linkcode repair} (the log says so).
   */
  #lockMoved(): boolean {
    if (this.#lockId === null) return false; // no inode numbers to compare (Windows)
    const now = Date.now();
    if (now - this.#lockCheckedAt < this.#lockCheckMs) return false;
    this.#lockCheckedAt = now;
    const there = this.#lockAtPath();
    if (there === null || there === undefined) return false;
    return !sameFile(there, this.#lockId);
  }

  /** The lock path's identity; null when nothing is there; undefined when it cannot be told. */
  #lockAtPath(): FileId | null | undefined {
    try {
      const info = Deno.statSync(this.#lockPath);
      return { ino: info.ino, dev: info.dev };
    } catch (e: unknown) {
      return e instanceof Deno.errors.NotFound ? null : undefined;
    }
  }

  /**
   * Before a commit makes files in the spool: the lock at the lock's path is
   * the one held. Without it, a server started beside this one after the
   * spool was made anew ran its start-up recovery while this one committed,
   * and removed the `.eml` of a message about to get its 250.
   */
  #holdLock(): Promise<boolean> | null {
    // A repair under way (begun by `begin()`) is waited for too.
    return this.#lockMoved() ? this.repair() : this.#repairing;
  }

  /**
   * Stops accepting new messages and waits (up to 10 s, for an fsync that
   * hangs) for commits and directory fsyncs in flight: the lock is released
   * last, or another server's start-up recovery could remove the `.eml` of a
   * commit still under way and leave its `.json` alone.
   */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    const deadline = Date.now() + CLOSE_WAIT_MS;
    while (this.#commits.inFlight > 0 && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    await this.#dirSync.idle();
    this.#hashWorker.close();
    this.#lock.close();
  }
}

interface SinkContext {
  dir: string;
  tmp: string;
  fsync: boolean;
  dirSync: DirSyncer;
  ids: IdGenerator;
  hashWorker: HashWorker;
  buffers: BufferPool;
  /** Commits between their start and their end, across all sinks of the writer. */
  commits: { inFlight: number };
  /** Null when the writer holds the lock at the lock's path, else the repair taking it. */
  holdLock: () => Promise<boolean> | null;
}

/** A file's identity; `ino` null where the OS gives none (Windows). */
interface FileId {
  ino: number | null;
  dev: number;
}

function fileId(file: Deno.FsFile): FileId | null {
  try {
    const info = file.statSync();
    return info.ino === null ? null : { ino: info.ino, dev: info.dev };
  } catch {
    return null;
  }
}

function sameFile(a: FileId, b: FileId): boolean {
  return a.ino === b.ino && a.dev === b.dev;
}

class Sink implements MessageSink {
  /** Where the body streams once it outgrows the buffer: `.tmp/<writer>-<n>.eml`. */
  readonly #tmpEml: string;
  #size = 0;
  /** Bytes in the file (the rest of `#size` waits in `#buffer`). */
  #written = 0;
  /** `#tmpEml` once bytes left the buffer; `<id>.eml` when an fsync commit made it. */
  #file: Deno.FsFile | null = null;
  readonly #ctx: SinkContext;
  /** Inline sha256 until the message outgrows {@linkcode WORKER_HASH_BYTES}. */
  #hash: Hash | null = sha256();
  /** The worker's job once it took over; it hashes the file from its start. */
  #remote: FileHash | null = null;
  #remoteNoted = 0;
  /** The early data sync in flight: resolves to its error, or null. Never rejects. */
  #earlySync: Promise<unknown> | null = null;
  #earlySynced = 0;
  /** From the pool while the message is open; the first `#buffered` bytes wait for the file. */
  #buffer: Uint8Array | null = null;
  #buffered = 0;
  /**
   * The message's first bytes once some went to the file; until then the
   * buffer itself holds them (the buffer is never larger than this prefix).
   */
  #prefix: Uint8Array | null = null;
  #prefixLength = 0;
  #state: "open" | "committing" | "done" = "open";

  constructor(tmpEml: string, ctx: SinkContext) {
    this.#tmpEml = tmpEml;
    this.#ctx = ctx;
  }

  get size(): number {
    return this.#size;
  }

  write(bytes: Uint8Array): void {
    if (this.#state !== "open") {
      throw new SpoolError("unwritable", `Cannot write a message that is ${this.#state}`);
    }
    if (bytes.length === 0) return;
    this.#hash?.update(bytes);
    this.#size += bytes.length;
    try {
      if (!this.#makeRoom(bytes.length)) {
        this.#flush();
        if (bytes.length >= WRITE_BUFFER_BYTES) {
          this.#spill(bytes); // big enough alone: no copy
          return;
        }
        this.#makeRoom(bytes.length);
      }
      this.#buffer!.set(bytes, this.#buffered);
      this.#buffered += bytes.length;
    } catch (e: unknown) {
      throw toSpoolError(e, `Cannot write to spool "${this.#ctx.dir}"`);
    }
  }

  /**
   * A callback is no I/O in flight: while it runs, close() does not wait for
   * this commit (a hung `onMessage` held a shutdown 10 s more; its session has
   * ended by then, so the gate refuses and nothing takes its name).
   */
  async #ask(gate: CommitGate, meta: Meta): Promise<boolean> {
    this.#ctx.commits.inFlight--;
    try {
      return await gate(meta);
    } finally {
      this.#ctx.commits.inFlight++;
    }
  }

  commit(input: MetaInput): Promise<Meta>;
  commit(input: MetaInput, gate: CommitGate | undefined): Promise<Meta | null>;
  async commit(input: MetaInput, gate?: CommitGate): Promise<Meta | null> {
    if (this.#state !== "open") {
      throw new SpoolError("unwritable", `Cannot commit a message that is ${this.#state}`);
    }
    this.#state = "committing";
    this.#ctx.commits.inFlight++;
    const relock = this.#ctx.holdLock();
    if (relock) await relock.catch(() => false); // never rejects; inFlight must come down
    const { dir, tmp, fsync, dirSync } = this.#ctx;
    const id = this.#ctx.ids.next();
    const tmpEml = this.#tmpEml;
    const tmpJson = joinPath(tmp, `${id}.json`);
    const eml = joinPath(dir, `${id}.eml`);
    const json = joinPath(dir, `${id}.json`);
    // A body that streamed to .tmp/ takes its final name below; one that never
    // left the buffer is written there at once (saves a rename: an .eml
    // without its .json is invisible to readers, and start-up removes it).
    const streamed = this.#file !== null;
    const bodyPath = streamed ? tmpEml : eml;
    /** `<id>.eml` was created by this commit (a body that never left the buffer). */
    let emlMade = false;
    /** `<id>.json` has its name: from here a failure must withdraw it durably. */
    let named = false;
    // With fsync on, the .json's temporary file is created alongside the .eml:
    // with other commits in flight both creates go to the thread pool, and side
    // by side they cost one round trip before the 250 instead of two (+3%).
    const jsonOpen = fsync ? createSettled(() => this.#create(tmpJson)) : null;
    try {
      // Parsed before the flush: a message that never left the buffer is read from it.
      const buffered = this.#buffer?.subarray(0, this.#buffered) ?? new Uint8Array(0);
      const headers = this.#prefix === null ? parseHeaderFields(buffered) : null;
      if (fsync || streamed) {
        // fsync needs the handle, even for an empty message.
        this.#file ??= await this.#create(eml);
        emlMade = !streamed;
        this.#flush(headers === null);
      } else {
        Deno.writeFileSync(eml, buffered, { createNew: true }); // open, write, close: one call
        emlMade = true;
        this.#buffered = 0;
      }
      this.#releaseBuffer();
      // A failed early sync may have lost pages that a later fsync no longer reports.
      const earlyError = await this.#earlySync;
      if (earlyError) throw earlyError;
      const meta = buildMeta(input, {
        id,
        receivedAt: new Date(idTime(id)).toISOString(),
        size: this.#size,
        sha256: await this.#digest(bodyPath),
        headers: headers ??
          parseHeaderFields(
            this.#prefix!.subarray(0, this.#prefixLength),
            this.#size > this.#prefixLength,
          ),
      });
      const text = JSON.stringify(meta, null, 2) + "\n";
      if (fsync) {
        const jsonFile = await jsonOpen!;
        if (!(jsonFile instanceof Deno.FsFile)) throw jsonFile.error;
        await this.#syncWithJson(this.#file!, jsonFile, text, streamed ? tmpEml : null, eml);
      } else {
        Deno.writeFileSync(tmpJson, encodeShared(text), { createNew: true }); // one call
      }
      this.#closeFile();
      if (streamed && (!fsync || IS_WINDOWS)) renameOver(tmpEml, eml);
      if (gate && !(await this.#ask(gate, meta))) {
        this.#state = "done";
        // Nothing has its name yet: the .eml alone is an orphan no reader lists.
        for (const path of [tmpJson, eml]) removeQuietly(path);
        return null;
      }
      await this.#rename(tmpJson, json);
      named = true;
      if (fsync) await dirSync.sync(); // both entries: the .eml's and the .json's
      this.#state = "done";
      return meta;
    } catch (e: unknown) {
      this.#state = "done";
      this.#releaseBuffer();
      this.#remote?.drop();
      this.#closeFile();
      // Settled before anything is removed: the create may still be under way.
      const jsonFile = await jsonOpen;
      const jsonMade = jsonFile instanceof Deno.FsFile;
      if (jsonMade) closeQuietly(jsonFile); // still open when the .eml's create failed
      // AlreadyExists: another message has this ID (a clash of 80 random bits,
      // or files put there by hand); its files are not this commit's to remove.
      // Otherwise the .json goes first: without it the .eml is an invisible orphan.
      const mine = e instanceof Deno.errors.AlreadyExists
        ? [...(streamed ? [tmpEml] : emlMade ? [eml] : []), ...(jsonMade ? [tmpJson] : [])]
        : [json, tmpJson, eml, tmpEml];
      for (const path of mine) removeQuietly(path);
      // The .json may be on disk already: a crash must not bring back a message that got no 250.
      if (named && fsync && !IS_WINDOWS) await dirSync.sync().catch(() => {});
      throw toSpoolError(e, `Cannot write to spool "${dir}"`);
    } finally {
      this.#ctx.commits.inFlight--;
    }
  }

  /**
   * Writes the .json and makes both files' data durable, and the .eml's
   * directory entry before the .json can have one. On POSIX a body that
   * streamed to `tmpEml` takes its final name first (an .eml without .json
   * is an orphan nobody reads and start-up removes), then its data, the
   * .json's data and (for that renamed body) the directory are synced in
   * parallel. Only then may the .json appear.
   * An .eml created in the spool needs no directory fsync here (it cost
   * 9–18% of messages/s, README): a journaling file system commits its
   * create before the .json's rename, and ext4 without a journal syncs the
   * directory of a file created since its last fsync within the file's
   * fdatasync. The one fsync after the rename makes both entries durable.
   * allSettled: the caller's cleanup must not race a pending fsync.
   */
  async #syncWithJson(
    file: Deno.FsFile,
    jsonFile: Deno.FsFile,
    text: string,
    tmpEml: string | null,
    eml: string,
  ): Promise<void> {
    try {
      writeAllSync(jsonFile, encodeShared(text));
      if (IS_WINDOWS) {
        // No directory fsync; NTFS journals the renames in order.
        await file.syncData();
        await jsonFile.syncData();
        return;
      }
      if (tmpEml !== null) await this.#rename(tmpEml, eml);
      const results = await Promise.allSettled([
        file.syncData(),
        jsonFile.syncData(),
        // A renamed body keeps its own directory fsync: what the .eml above relies on is
        // promised for new files (ext4 happens to follow a new name too; others need not).
        tmpEml === null ? undefined : this.#ctx.dirSync.sync(),
      ]);
      for (const result of results) {
        if (result.status === "rejected") throw result.reason;
      }
    } finally {
      jsonFile.close();
    }
  }

  abort(): void {
    if (this.#state !== "open") return;
    this.#state = "done";
    this.#releaseBuffer();
    this.#remote?.drop();
    if (this.#file === null) return; // nothing reached the disk
    this.#closeFile();
    removeQuietly(this.#tmpEml);
  }

  /**
   * Makes the buffer able to take `bytes` more: a larger pooled buffer
   * when the small one is outgrown. False when even a large one cannot.
   */
  #makeRoom(bytes: number): boolean {
    const needed = this.#buffered + bytes;
    if (this.#buffer !== null && needed <= this.#buffer.length) return true;
    if (needed > WRITE_BUFFER_BYTES) return false;
    const next = this.#ctx.buffers.take(needed);
    if (this.#buffer !== null) {
      next.set(this.#buffer.subarray(0, this.#buffered));
      this.#ctx.buffers.give(this.#buffer);
    }
    this.#buffer = next;
    return true;
  }

  #releaseBuffer(): void {
    if (this.#buffer === null) return;
    this.#ctx.buffers.give(this.#buffer);
    this.#buffer = null;
    this.#buffered = 0;
  }

  /** @param keepPrefix False once the headers are parsed: no copy of the first bytes is needed. */
  #flush(keepPrefix = true): void {
    if (this.#buffered === 0) return;
    const bytes = this.#buffer!.subarray(0, this.#buffered);
    this.#buffered = 0;
    this.#spill(bytes, keepPrefix);
  }

  /** Bytes leave memory for the file: the header prefix keeps a copy of the first ones. */
  #spill(bytes: Uint8Array, keepPrefix = true): void {
    if (keepPrefix && this.#prefixLength < HEADER_PREFIX_BYTES) {
      this.#prefix ??= new Uint8Array(HEADER_PREFIX_BYTES);
      const take = Math.min(bytes.length, HEADER_PREFIX_BYTES - this.#prefixLength);
      this.#prefix.set(bytes.subarray(0, take), this.#prefixLength);
      this.#prefixLength += take;
    }
    this.#writeFile(bytes);
  }

  /**
   * True when file calls of this commit should go to the thread pool: with
   * fsync on (POSIX) and other commits in flight, a create or rename can
   * wait for the fsync I/O under way on the directory, and a synchronous
   * call would stop every session (10 sessions, ext4: +9% messages/s, and
   * again +15% on an ext4 without a journal). Alone, the synchronous call
   * is quicker than the pool's round trip (1 session: −6%).
   */
  #contended(): boolean {
    return this.#ctx.fsync && !IS_WINDOWS && this.#ctx.commits.inFlight > 1;
  }

  #create(path: string): Deno.FsFile | Promise<Deno.FsFile> {
    return this.#contended() ? Deno.open(path, CREATE) : Deno.openSync(path, CREATE);
  }

  #rename(from: string, to: string): Promise<void> | void {
    if (this.#contended()) return Deno.rename(from, to); // POSIX rename replaces
    renameOver(from, to);
  }

  #openFile(): Deno.FsFile {
    this.#file ??= Deno.openSync(this.#tmpEml, CREATE);
    return this.#file;
  }

  #writeFile(bytes: Uint8Array): void {
    writeAllSync(this.#openFile(), bytes);
    this.#written += bytes.length;
    if (this.#ctx.fsync && this.#written - this.#earlySynced >= EARLY_SYNC_BYTES) this.#syncEarly();
    if (this.#remote !== null) {
      if (this.#written - this.#remoteNoted < WORKER_ADVANCE_BYTES) return;
      this.#remote.advance(this.#written);
      this.#remoteNoted = this.#written;
    } else if (this.#written >= WORKER_HASH_BYTES) {
      this.#remote = this.#ctx.hashWorker.start(this.#tmpEml, this.#written);
      if (this.#remote === null) return; // no worker: keep hashing inline
      this.#remoteNoted = this.#written;
      this.#hash = null;
    }
  }

  /** One early sync at a time; the next starts once it ended and enough is new. */
  #syncEarly(): void {
    if (this.#earlySync !== null) return;
    this.#earlySynced = this.#written;
    const sync: Promise<unknown> = this.#file!.syncData().then(
      () => {
        if (this.#earlySync === sync) this.#earlySync = null;
        return null;
      },
      (e: unknown) => e, // kept (never cleared): commit fails with it
    );
    this.#earlySync = sync;
  }

  /** The sha256 of the whole (flushed) file: inline, by the worker, or re-read if it failed. */
  async #digest(path: string): Promise<string> {
    if (this.#hash !== null) return this.#hash.digest("hex");
    try {
      return await this.#remote!.finish(this.#written);
    } catch {
      return hashFile(path);
    }
  }

  #closeFile(): void {
    if (this.#file !== null) closeQuietly(this.#file);
    this.#file = null;
  }
}

/** Runs a create and settles with the file or its error, to be awaited later. */
async function createSettled(
  create: () => Deno.FsFile | Promise<Deno.FsFile>,
): Promise<Deno.FsFile | { error: unknown }> {
  try {
    return await create();
  } catch (error: unknown) {
    return { error };
  }
}

/** Closes a file that may be closed already (a commit that failed part-way, an old lock). */
function closeQuietly(file: Deno.FsFile): void {
  try {
    file.close();
  } catch {
    // Already closed: nothing left to release.
  }
}
