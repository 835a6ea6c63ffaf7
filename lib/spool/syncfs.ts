/**
 * Group commit by syncfs(2), Linux only: one call writes back every dirty
 * file and directory of the spool's file system and flushes the disk's
 * cache, so a round of N concurrent commits costs one system call and one
 * cache flush instead of 2N fdatasyncs and a directory fsync, each its own
 * flush and its own trip through Deno's thread pool.
 *
 * Used only where it is known to be as strong as fsync: Linux 5.8 or later
 * (before that, syncfs did not report write-back errors), a file system
 * whose syncfs writes back and flushes (ext4, xfs, btrfs; tmpfs has nothing
 * to write), and a runtime that may load libc through FFI (the pinned
 * `--allow-all`; a library caller without `--allow-ffi` gets per-file fsync).
 * Elsewhere {@linkcode FsSyncer.open} says null and the spool fsyncs each file.
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

/** `f_type` magic numbers (linux/magic.h) of the file systems syncfs is used on. */
export const SYNCFS_FILE_SYSTEMS: ReadonlyMap<number, string> = new Map([
  [0xef53, "ext4"], // ext2, ext3 and ext4 share it
  [0x58465342, "xfs"],
  [0x9123683e, "btrfs"],
  [0x01021994, "tmpfs"],
]);

/**
 * Whether a kernel release (`uname -r`) reports write-back errors to
 * syncfs: Linux 5.8 and later.
 *
 * @param release E.g. `"6.1.0-18-amd64"`.
 * @returns False for an older or unparsable release.
 */
export function syncfsReportsErrors(release: string): boolean {
  const match = /^(\d+)\.(\d+)/.exec(release);
  if (match === null) return false;
  const [major, minor] = [Number(match[1]), Number(match[2])];
  return major > 5 || (major === 5 && minor >= 8);
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
  #closing: Promise<void> | null = null;
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
    const fileSystem = lib.symbols.fstatfs(fd, statfs) === 0
      ? SYNCFS_FILE_SYSTEMS.get(new DataView(statfs.buffer).getUint32(0, true))
      : undefined;
    if (fileSystem === undefined) {
      lib.symbols.close(fd);
      return null;
    }
    return new FsSyncer(lib, fd, fileSystem);
  }

  /** Rounds that failed so far: a commit that saw this change must fail. */
  get failures(): number {
    return this.#failures;
  }

  /** Closes the descriptor once no round is running or queued; rounds asked for later fail. */
  close(): Promise<void> {
    this.#closing ??= this.idle().then(() => {
      this.#fdOpen = false;
      this.#libc.symbols.close(this.#fd);
    });
    return this.#closing;
  }

  protected async run(): Promise<void> {
    if (!this.#fdOpen) throw new Error("syncfs: the spool is closed");
    if (await this.#libc.symbols.syncfs(this.#fd) === 0) return;
    // errno belongs to the thread-pool thread that made the call: not readable here.
    this.#failures++;
    throw new Error(`syncfs failed: the ${this.fileSystem} file system reported a write error`);
  }
}
