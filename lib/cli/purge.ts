/**
 * `smtpd purge [--older-than D]`: delete stored messages, nothing else.
 *
 * @module
 */

import { SpoolReader } from "../mod.ts";
import { EXIT_OK } from "./errors.ts";
import type { Io } from "./main.ts";

/**
 * Purges the spool and reports how many messages went.
 *
 * @param args Spool and optional age limit in milliseconds.
 * @param io Output.
 * @returns 0.
 */
export async function runPurge(
  args: { spool: string; olderThanMs?: number },
  io: Io,
): Promise<number> {
  const reader = new SpoolReader(args.spool);
  const removed = await reader.purge(
    args.olderThanMs === undefined ? {} : { olderThanMs: args.olderThanMs },
  );
  io.stdout(`purged ${removed} ${removed === 1 ? "message" : "messages"}\n`);
  return EXIT_OK;
}
