/**
 * One line for a failed file or socket call, for messages that name the
 * path themselves.
 *
 * @module
 */

/**
 * The OS reason of `e` without Deno's ` (os error N): readfile '…'` tail:
 * `permission denied`, `Is a directory`, `No space left on device`.
 *
 * @param e What a Deno file or network call threw.
 * @returns The reason, one line.
 */
export function errorReason(e: unknown): string {
  if (e instanceof Deno.errors.NotFound) return "no such file or directory";
  if (e instanceof Deno.errors.PermissionDenied) return "permission denied";
  const text = e instanceof Error ? e.message : String(e);
  return text.replace(/ \(os error \d+\).*$/s, "").split("\n")[0]!;
}
