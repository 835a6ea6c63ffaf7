/**
 * A temporary directory for one test, removed afterwards whatever happens.
 *
 * @module
 */

/**
 * Runs `fn` with a fresh temporary directory and removes it (recursively) afterwards.
 *
 * @param fn The test body; gets the directory's path.
 * @param prefix Start of the directory's name, so a leftover shows whose it is.
 */
export async function withTempDir(
  fn: (dir: string) => Promise<void>,
  prefix = "smtpd-test-",
): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/**
 * Runs `fn` in a temporary directory where the spool uses syncfs (Linux:
 * tmpfs under /dev/shm, whatever file system holds the usual temporary
 * directory); elsewhere the test is skipped, saying why.
 *
 * @param fn The test body; gets the directory's path.
 */
export async function withSyncfsDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const shm = Deno.build.os === "linux" ? await Deno.stat("/dev/shm").catch(() => null) : null;
  if (shm === null || !shm.isDirectory) {
    Deno.stderr.writeSync(
      new TextEncoder().encode("skipped: syncfs is used on Linux only (no tmpfs at /dev/shm)\n"),
    );
    return;
  }
  const dir = await Deno.makeTempDir({ dir: "/dev/shm", prefix: "smtpd-test-" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}
