/**
 * The CLI's error classes and the one place that turns any error into an
 * exit code and one line for stderr (SPEC §2: no stack traces for user
 * errors; only a bug shows one).
 *
 * @module
 */

import { OptionError, StartupError } from "../mod.ts";

/** A bad command line or `SMTPD_*` value: exit 2. `flag` names the culprit (`--max-size`). */
export class UsageError extends Error {
  override name = "UsageError";
  readonly flag: string | undefined;
  constructor(message: string, flag?: string) {
    super(message);
    this.flag = flag;
  }
}

/** A run-time failure the user can fix (unknown message, time-out, refused send): exit 1. */
export class RunError extends Error {
  override name = "RunError";
}

/**
 * Runs a value parser; its SyntaxError/RangeError (or UsageError) becomes a
 * UsageError naming `label` (a flag or an `SMTPD_*` variable).
 *
 * @param label What to name in the message.
 * @param parse The parser call.
 * @returns Its result.
 */
export function checked<T>(label: string, parse: () => T): T {
  try {
    return parse();
  } catch (e: unknown) {
    if (e instanceof UsageError || e instanceof SyntaxError || e instanceof RangeError) {
      throw new UsageError(e.message, label);
    }
    throw e;
  }
}

/** sysexits.h: success, failure, usage; EX_SOFTWARE (70) marks a bug. */
export const EXIT_OK = 0;
export const EXIT_FAILURE = 1;
export const EXIT_USAGE = 2;
export const EXIT_SOFTWARE = 70;

/** Deno errors that report the world (files, network), not a bug in smtpd. */
const WORLD_ERRORS = [
  // A Windows console refuses bytes that are not UTF-8 (`show` of a Latin-1 message).
  Deno.errors.InvalidData,
  Deno.errors.NotFound,
  Deno.errors.PermissionDenied,
  Deno.errors.NotCapable,
  Deno.errors.AlreadyExists,
  Deno.errors.IsADirectory,
  Deno.errors.NotADirectory,
  Deno.errors.ConnectionRefused,
  Deno.errors.ConnectionReset,
  Deno.errors.BrokenPipe,
  Deno.errors.TimedOut,
  Deno.errors.AddrInUse,
  Deno.errors.AddrNotAvailable,
];

/** Messages become one line: a user error never spans lines on stderr. */
function oneLine(text: string): string {
  return text.replace(/\s*[\r\n]+\s*/g, " ").trim();
}

/**
 * An operating-system failure Deno has no class for (ENOSPC, EROFS, EIO,
 * EMFILE…): it carries the errno name as `code`. The world's fault, not ours.
 */
function isOsError(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  return error instanceof Error && typeof code === "string" && /^E[A-Z0-9]+$/.test(code);
}

/**
 * Maps an error to its exit code and the line for stderr (without newline).
 *
 * @param error Whatever a command threw.
 * @returns `{ code, line }`: 2 for usage, 1 for run-time failures, 70 for bugs.
 *
 * @example Usage
 * ```ts ignore
 * import { describeError, UsageError } from "./errors.ts";
 * describeError(new UsageError("Cannot parse \"10XB\"", "--max-size"));
 * // { code: 2, line: 'smtpd: --max-size: Cannot parse "10XB"' }
 * ```
 */
export function describeError(error: unknown): { code: number; line: string } {
  if (error instanceof UsageError || error instanceof OptionError) {
    const prefix = error.flag === undefined ? "" : `${error.flag}: `;
    return { code: EXIT_USAGE, line: `smtpd: ${prefix}${oneLine(error.message)}` };
  }
  if (
    error instanceof RunError || error instanceof StartupError ||
    WORLD_ERRORS.some((kind) => error instanceof kind) || isOsError(error)
  ) {
    return { code: EXIT_FAILURE, line: `smtpd: ${oneLine((error as Error).message)}` };
  }
  const detail = error instanceof Error ? error.stack ?? String(error) : String(error);
  return { code: EXIT_SOFTWARE, line: `smtpd: unexpected error (a bug): ${detail}` };
}
