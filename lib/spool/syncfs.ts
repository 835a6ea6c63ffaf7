/**
 * Group commit by syncfs(2), Linux only: one call writes back every dirty
 * file and directory of the spool's file system and flushes the disk's
 * cache, so a round of N concurrent commits costs one system call and one
 * cache flush instead of 2N fdatasyncs and a directory fsync, each its own
 * flush and its own trip through Deno's thread pool.
 *
 * Used only where it is known to be as strong as fsync: Linux 5.17 or later
 * (5.8 made syncfs report write-back errors of data, 5.17 the errors of the
 * file system's own commit: a failed journal commit or log force), a file
 * system whose syncfs writes back and then flushes (ext4 with a journal,
 * xfs, btrfs; tmpfs has nothing to write), and a runtime that may load libc
 * through FFI (the pinned `--allow-all`; a library caller without
 * `--allow-ffi` gets per-file fsync). Not ext4 without a journal: there
 * syncfs flushes the disk's cache before it writes the last inode and bitmap
 * blocks (fs/sync.c sync_filesystem, ext4_sync_fs), and a failed write of
 * an inode table block is not reliably reported to it, where fsync writes
 * the file's inode itself and then flushes. Elsewhere
 * {@linkcode FsSyncer.open} says null and the spool fsyncs each file.
 *
 * A write-back error is reported once per open descriptor, to whichever
 * syncfs runs next: not necessarily the round of the commit whose pages
 * failed. So {@linkcode FsSyncer.failures} counts failed rounds, and a commit
 * that saw the count change while it ran fails too (see writer.ts).
 *
 * @module
 */

import { GroupCommit } from "./fsync.ts";

const SYMBOLS = {
  syncfs: { parameters: ["i32"], result: "i32", nonblocking: true },
  fstatfs: { parameters: ["i32", "buffer"], result: "i32" },
  open: { parameters: ["buffer", "i32"], result: "i32" },
  close: { parameters: ["i32"], result: "i32" },
} as const;

type Libc = Deno.DynamicLibrary<typeof SYMBOLS>;

/** open(2) flags: read-only, not inherited by hooks (same value on x86_64 and arm64). */
const O_RDONLY_CLOEXEC = 0o2000000;
/** Room for `struct statfs` (120 bytes on 64-bit Linux); `f_type` is its first field. */
const STATFS_BYTES = 128;

/** ext2, ext3 and ext4 share this `f_type`; syncfs is used on them only with a journal. */
const EXT4_MAGIC = 0xef53;

/** `f_type` magic numbers (linux/magic.h) of the file systems syncfs is used on. */
export const SYNCFS_FILE_SYSTEMS: ReadonlyMap<number, string> = new Map([
  [EXT4_MAGIC, "ext4"],
  [0x58465342, "xfs"],
  [0x9123683e, "btrfs"],
  [0x01021994, "tmpfs"],
]);

/**
 * Whether a kernel release (`uname -r`) reports every write error to
 * syncfs: Linux 5.17 and later.
 *
 * @param release E.g. `"6.1.0-18-amd64"`.
 * @returns False for an older or unparsable release.
 */
export function syncfsReportsErrors(release: string): boolean {
  const match = /^(\d+)\.(\d+)/.exec(release);
  if (match === null) return false;
  const [major, minor] = [Number(match[1]), Number(match[2])];
  return major > 5 || (major === 5 && minor >= 17);
}

/**
 * Major and minor number of a Linux device number (`st_dev`, glibc's
 * encoding: 12 + 20 bits of major, 20 + 12 bits of minor).
 *
 * @param dev A device number, as in {@linkcode Deno.FileInfo.dev}.
 * @returns `[major, minor]`.
 */
export function deviceNumbers(dev: number): [number, number] {
  const d = BigInt(dev);
  const major = ((d >> 8n) & 0xfffn) | ((d >> 32n) & ~0xfffn);
  const minor = (d & 0xffn) | ((d >> 12n) & ~0xffn);
  return [Number(major), Number(minor)];
}

/**
 * Whether the ext4 holding `dir` has a journal: jbd2 lists a journal as
 * `/proc/fs/jbd2/<device>-8`. False when that cannot be told (an external
 * journal is listed under its own device: per-file fsync then, to be safe).
 */
function ext4HasJournal(dir: string): boolean {
  try {
    const [major, minor] = deviceNumbers(Deno.statSync(dir).dev);
    const device = Deno.realPathSync(`/sys/dev/block/${major}:${minor}`).split("/").pop();
    return Deno.statSync(`/proc/fs/jbd2/${device}-8`).isDirectory;
  } catch {
    return false;
  }
}

let loaded: Libc | null | undefined;

/** libc, once per thread; null where it cannot or may not be used. */
function libc(): Libc | null {
  if (loaded !== undefined) return loaded;
  loaded = null;
  try {
    if (
      Deno.build.os !== "linux" ||
      Deno.permissions.querySync({ name: "ffi" }).state !== "granted" ||
      Deno.permissions.querySync({ name: "sys", kind: "osRelease" }).state !== "granted" ||
      !syncfsReportsErrors(Deno.osRelease())
    ) {
      return null;
    }
    loaded = Deno.dlopen("libc.so.6", SYMBOLS);
  } catch {
    // No glibc (another libc, a sandbox): per-file fsync does the job.
  }
  return loaded;
}

/** syncfs(2) of one file system, group-committed ({@linkcode GroupCommit}). */
export class FsSyncer extends GroupCommit {
  /** The file system's name, as in {@linkcode SYNCFS_FILE_SYSTEMS}. */
  readonly fileSystem: string;
  readonly #libc: Libc;
  readonly #fd: number;
  #failures = 0;
  #fdOpen = true;

  private constructor(lib: Libc, fd: number, fileSystem: string) {
    super();
    this.#libc = lib;
    this.#fd = fd;
    this.fileSystem = fileSystem;
  }

  /**
   * A syncer for the file system holding `dir`.
   *
   * @param dir An existing directory.
   * @returns Null where syncfs is not used (see the module's notes).
   */
  static open(dir: string): FsSyncer | null {
    const lib = libc();
    if (lib === null) return null;
    const fd = lib.symbols.open(new TextEncoder().encode(dir + "\0"), O_RDONLY_CLOEXEC);
    if (fd < 0) return null;
    const statfs = new Uint8Array(STATFS_BYTES);
    const magic = lib.symbols.fstatfs(fd, statfs) === 0
      ? new DataView(statfs.buffer).getUint32(0, true)
      : undefined;
    const fileSystem = magic === undefined ? undefined : SYNCFS_FILE_SYSTEMS.get(magic);
    if (fileSystem === undefined || (magic === EXT4_MAGIC && !ext4HasJournal(dir))) {
      lib.symbols.close(fd);
      return null;
    }
    return new FsSyncer(lib, fd, fileSystem);
  }

  /** Rounds that failed so far: a commit that saw this change must fail. */
  get failures(): number {
    return this.#failures;
  }

  /**
   * Closes the descriptor once no round is running or queued; rounds asked
   * for later fail. Checked and closed in one step: a round that started in
   * between would pass a closed (or reused) descriptor to syncfs.
   */
  async close(): Promise<void> {
    while (this.busy) await this.idle();
    if (!this.#fdOpen) return;
    this.#fdOpen = false;
    this.#libc.symbols.close(this.#fd);
  }

  protected async run(): Promise<void> {
    if (!this.#fdOpen) throw new Error("syncfs: the spool is closed");
    if (await this.#libc.symbols.syncfs(this.#fd) === 0) return;
    // errno belongs to the thread-pool thread that made the call: not readable here.
    this.#failures++;
    throw new Error(`syncfs failed: the ${this.fileSystem} file system reported a write error`);
  }
}
