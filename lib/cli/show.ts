/**
 * `smtpd show ID|latest [--meta]`: the raw message, byte for byte, or its metadata.
 *
 * @module
 */

import { SpoolReader } from "../mod.ts";
import { EXIT_OK, RunError } from "./errors.ts";
import type { Io } from "./main.ts";

/**
 * Writes one message to stdout.
 *
 * @param args Spool, ID (or `latest`) and whether to print the metadata instead.
 * @param io Output.
 * @returns 0.
 * @throws {RunError} `no message "X"` when the ID is unknown; `has no .eml` when the
 *   `.eml` is gone (removed by hand, or purged between the two reads); or when its
 *   `.json` holds no valid metadata or its `.eml` is not a regular file (saying so).
 */
export async function runShow(
  args: { spool: string; id: string; meta: boolean },
  io: Io,
): Promise<number> {
  const reader = new SpoolReader(args.spool);
  const found = await reader.read(args.id);
  if (found.status === "unreadable") {
    throw new RunError(`message "${args.id}" has unreadable metadata (${found.reason})`);
  }
  if (found.status === "missing") throw new RunError(`no message "${args.id}"`);
  const meta = found.meta;
  if (args.meta) {
    io.stdout(JSON.stringify(meta, null, 2) + "\n");
    return EXIT_OK;
  }
  let file: Deno.FsFile;
  try {
    // Opening a FIFO (or a device) by that name would wait for a writer forever.
    if (!(await Deno.stat(reader.emlPath(meta.id))).isFile) {
      throw new RunError(`message "${args.id}": its .eml is not a regular file`);
    }
    file = await Deno.open(reader.emlPath(meta.id));
  } catch (e: unknown) {
    if (e instanceof Deno.errors.NotFound) {
      throw new RunError(`message "${args.id}" has no .eml (removed by hand?)`);
    }
    throw e;
  }
  // Streamed: a message may be as large as --max-size.
  for await (const chunk of file.readable) await io.stdoutBytes(chunk);
  return EXIT_OK;
}
