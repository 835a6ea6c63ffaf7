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
