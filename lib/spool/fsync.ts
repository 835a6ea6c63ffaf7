/**
 * File-system helpers shared by the spool: group-committed directory fsync,
 * path joining and rename over an existing file, with their platform quirks.
 *
 * @module
 */

const IS_WINDOWS = Deno.build.os === "windows";
const SEP = IS_WINDOWS ? "\\" : "/";

/**
 * `dir` as an absolute path (relative to the working directory), without
 * resolving symbolic links, so logs show the path the user gave.
 *
 * @param dir A path.
 * @returns The absolute path, without a trailing separator.
 */
export function absolutePath(dir: string): string {
  if (IS_WINDOWS) return windowsAbsolute(dir, Deno.cwd());
  const path = dir.startsWith("/") ? dir : joinPath(Deno.cwd(), dir);
  const trimmed = path.replace(/\/+$/, "");
  return trimmed === "" ? SEP : trimmed;
}

/**
 * Windows' forms: `C:\mail` and `\\server\share` are absolute; `\mail`
 * (or `/mail`) is rooted on the working directory's drive (or UNC share); `D:mail` is
 * relative to drive D's working directory, taken as D's root unless D is the
 * working directory's drive; anything else is relative to `cwd`.
 *
 * @param dir A path.
 * @param cwd The working directory (absolute, with its drive).
 * @returns The absolute path, without a trailing separator except a root's.
 */
export function windowsAbsolute(dir: string, cwd: string): string {
  // The root a `\mail` hangs from: the drive, or a UNC working directory's `\\server\share`.
  const drive = /^[A-Za-z]:/.exec(cwd)?.[0] ?? /^[\\/]{2}[^\\/]+[\\/][^\\/]+/.exec(cwd)?.[0] ?? "";
  const base = cwd.replace(/[\\/]+$/, "");
  let path: string;
  if (/^[A-Za-z]:[\\/]/.test(dir) || /^[\\/]{2}/.test(dir)) path = dir;
  else if (/^[\\/]/.test(dir)) path = drive + dir;
  else if (/^[A-Za-z]:/.test(dir)) {
    const here = dir.slice(0, 2).toUpperCase() === drive.toUpperCase();
    path = `${here ? base : dir.slice(0, 2)}\\${dir.slice(2)}`;
  } else path = `${base}\\${dir}`;
  const trimmed = path.replace(/[\\/]+$/, "");
  return /^[A-Za-z]:$/.test(trimmed) || trimmed === "" ? `${trimmed}\\` : trimmed;
}

/**
 * Joins a directory and a name with the platform separator.
 *
 * @param dir A directory path.
 * @param name A file name (no separators).
 * @returns The joined path.
 */
export function joinPath(dir: string, name: string): string {
  return dir.endsWith("/") || dir.endsWith(SEP) ? dir + name : dir + SEP + name;
}

/**
 * Renames `from` to `to`, replacing `to`. POSIX rename replaces atomically;
 * Windows refuses when the target exists or is open, so there the target
 * is removed and the rename retried once (SPEC §7).
 *
 * @param from The existing path.
 * @param to The new path.
 */
export function renameOver(from: string, to: string): void {
  try {
    Deno.renameSync(from, to);
  } catch (e: unknown) {
    if (!IS_WINDOWS) throw e;
    if (!(e instanceof Deno.errors.AlreadyExists || e instanceof Deno.errors.PermissionDenied)) {
      throw e;
    }
    removeQuietly(to);
    Deno.renameSync(from, to);
  }
}

/**
 * Removes a file, ignoring every error (it may already be gone).
 *
 * @param path The file.
 */
export function removeQuietly(path: string): void {
  try {
    Deno.removeSync(path);
  } catch {
    // Already gone, or nothing more can be done: best effort by design.
  }
}

/**
 * fsync of one directory, group-committed: a caller arriving while an fsync
 * is in flight waits for the next one (the one in flight may have started
 * before the caller's rename, so it does not cover it), and every caller
 * arriving meanwhile shares that next one. With N concurrent commits this
 * costs about two fsyncs instead of N, which is where the throughput of
 * `fsync` mode comes from.
 *
 * Windows cannot open a directory for fsync and NTFS journals the rename
 * itself, so there `sync()` resolves at once (SPEC §7).
 */
export class DirSyncer {
  /** The directory. */
  readonly path: string;
  #running: Promise<void> | null = null;
  #queued: Promise<void> | null = null;

  /** @param path The directory to fsync. */
  constructor(path: string) {
    this.path = path;
  }

  /**
   * Makes every directory change made before this call durable.
   *
   * @returns Resolves once an fsync that started after this call completed.
   */
  sync(): Promise<void> {
    if (IS_WINDOWS) return Promise.resolve();
    if (this.#queued !== null) return this.#queued;
    if (this.#running === null) return this.#start();
    this.#queued = this.#running.catch(() => {}).then(() => {
      this.#queued = null;
      return this.#start();
    });
    return this.#queued;
  }

  /** Resolves once no fsync is running or queued (for close). */
  async idle(): Promise<void> {
    while (this.#queued !== null || this.#running !== null) {
      await (this.#queued ?? this.#running)!.catch(() => {});
    }
  }

  #start(): Promise<void> {
    const run: Promise<void> = this.#fsync().finally(() => {
      if (this.#running === run) this.#running = null;
    });
    this.#running = run;
    return run;
  }

  /**
   * Opened synchronously: an async open costs a thread-pool round trip, and
   * every fsync round of every commit waited for it. Opened by path each
   * time, so a directory replaced under the server is the one synced.
   */
  async #fsync(): Promise<void> {
    const dir = Deno.openSync(this.path, { read: true });
    try {
      await dir.sync();
    } catch (e: unknown) {
      // Some file systems (FUSE, some network mounts) cannot fsync a directory
      // and say EINVAL/ENOTSUP; the rename is as durable as they can make it.
      const code = (e as { code?: unknown } | null)?.code;
      if (code !== "EINVAL" && code !== "ENOTSUP" && code !== "EOPNOTSUPP") throw e;
    } finally {
      dir.close();
    }
  }
}
