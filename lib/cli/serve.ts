/**
 * `smtpd [serve]`: start the server and run until it finishes (a signal,
 * or `--exit-after`).
 *
 * @module
 */

import { OptionError, serve, type ServeOptions } from "../mod.ts";
import { EXIT_OK } from "./errors.ts";

/**
 * Serves until shutdown.
 *
 * @param options Validated flags.
 * @param envNames `--flag` → `SMTPD_FLAG` for values taken from a variable.
 * @returns 0 after a clean shutdown; start-up failures reject (`StartupError`, `OptionError`).
 */
export async function runServe(
  options: ServeOptions,
  envNames: Readonly<Record<string, string>> = {},
): Promise<number> {
  let handle;
  try {
    handle = await serve({ ...options, handleSignals: true });
  } catch (e: unknown) {
    // The server names the flag; a value set by a variable is named by it,
    // as the command-line parser does (`SMTPD_FAULT (--fault): …`).
    const name = e instanceof OptionError ? envNames[e.flag] : undefined;
    throw name === undefined ? e : new OptionError(name, (e as OptionError).message);
  }
  await handle.finished;
  return EXIT_OK;
}
