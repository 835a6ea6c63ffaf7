/**
 * `smtpd [serve]`: start the server and run until it finishes (a signal,
 * or `--exit-after`).
 *
 * @module
 */

import { serve, type ServeOptions } from "../mod.ts";
import { EXIT_OK } from "./errors.ts";

/**
 * Serves until shutdown.
 *
 * @param options Validated flags.
 * @returns 0 after a clean shutdown; start-up failures reject (`StartupError`, `OptionError`).
 */
export async function runServe(options: ServeOptions): Promise<number> {
  const handle = await serve({ ...options, handleSignals: true });
  await handle.finished;
  return EXIT_OK;
}
