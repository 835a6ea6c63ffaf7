/**
 * `smtpd wait`: block until enough messages match, print their IDs.
 *
 * @module
 */

import { type MessageFilter, SpoolReader } from "../mod.ts";
import { EXIT_OK, RunError } from "./errors.ts";
import type { Io } from "./main.ts";

/** Arguments of {@linkcode runWait}. */
export interface WaitArgs {
  spool: string;
  count: number;
  filter: MessageFilter;
  timeoutMs: number;
  /** The timeout as written (`30s`), quoted back in the time-out message. */
  timeoutText: string;
  signal?: AbortSignal;
}

/**
 * Waits for `count` matching messages and prints every matching ID, oldest first.
 *
 * @param args Spool, filter, count and timeout.
 * @param io Output.
 * @returns 0 when enough matched.
 * @throws {RunError} On time-out: `wait: timed out after 30s: 0 of 1 messages matched`.
 */
export async function runWait(args: WaitArgs, io: Io): Promise<number> {
  const reader = new SpoolReader(args.spool);
  const { matched, timedOut } = await reader.wait({
    filter: args.filter,
    count: args.count,
    timeoutMs: args.timeoutMs,
    ...(args.signal ? { signal: args.signal } : {}),
  });
  if (timedOut) {
    throw new RunError(
      `wait: timed out after ${args.timeoutText}: ${matched.length} of ${args.count} messages matched`,
    );
  }
  io.stdout(matched.map((m) => m.id + "\n").join(""));
  return EXIT_OK;
}
