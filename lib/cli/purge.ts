/**
 * `smtpd purge [--older-than D]`: delete stored messages, nothing else.
 *
 * @module
 */

import { SpoolReader } from "../mod.ts";
import { EXIT_OK, RunError } from "./errors.ts";
import type { Io } from "./main.ts";

/**
 * Purges the spool and reports how many messages went.
 *
 * @param args Spool and optional age limit in milliseconds.
 * @param io Output.
 * @returns 0; a message that could not be removed throws `RunError` (exit 1) once the rest went.
 */
export async function runPurge(
  args: { spool: string; olderThanMs?: number },
  io: Io,
): Promise<number> {
  const reader = new SpoolReader(args.spool);
  const failures: string[] = [];
  let first = "";
  const removed = await reader.purge({
    ...(args.olderThanMs === undefined ? {} : { olderThanMs: args.olderThanMs }),
    // One file that cannot go (chattr +i) keeps no other message.
    onFailure: (id, e) => {
      failures.push(id);
      // The OS reason, without the path Deno appends ("… (os error 1): remove '…'").
      first ||= e instanceof Error ? e.message.replace(/ \(os error \d+\).*$/s, "") : String(e);
    },
  });
  io.stdout(`purged ${removed} ${removed === 1 ? "message" : "messages"}\n`);
  if (failures.length === 0) return EXIT_OK;
  const n = failures.length;
  throw new RunError(
    `could not remove ${n === 1 ? "message" : `${n} messages`} ${failures[0]}${
      n === 1 ? "" : " and others"
    }: ${first}`,
  );
}
