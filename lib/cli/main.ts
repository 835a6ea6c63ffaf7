/**
 * `smtpd`'s command line: `run(argv, env, io)` parses, dispatches and maps
 * every failure to an exit code and one stderr line. It never exits the
 * process; `/main.ts` does that (the only impure file).
 *
 * @module
 */

import { describeError, EXIT_OK } from "./errors.ts";
import { parseCommandLine } from "./flags.ts";
import { helpText } from "./help.ts";
import { runList } from "./list.ts";
import { runPurge } from "./purge.ts";
import { runSend } from "./send.ts";
import { runServe } from "./serve.ts";
import { runShow } from "./show.ts";
import { runWait } from "./wait.ts";

/** The program version printed by `--version`; keep in step with `deno.json`. */
export const VERSION = "0.1.0";

/** Where a command reads and writes; injected so tests capture it. */
export interface Io {
  stdout(text: string): void;
  /** Binary-safe stdout (`show` writes the raw message). */
  stdoutBytes(bytes: Uint8Array): Promise<void>;
  stderr(text: string): void;
  stdin: ReadableStream<Uint8Array>;
  /** Whether stdout is a terminal (a person reading, not a pipe): `list` adds its header then. */
  stdoutIsTerminal?: boolean;
}

/**
 * Runs one `smtpd` invocation.
 *
 * @param argv Arguments after the program name.
 * @param env The environment (`SMTPD_*` is read).
 * @param io Standard streams.
 * @returns The exit code: 0 ok, 1 run-time failure, 2 usage error, 70 a bug.
 *
 * @example Usage
 * ```ts ignore
 * import { run } from "./main.ts";
 * const code = await run(["list", "--spool", "/tmp/mail"], {}, io);
 * ```
 */
export async function run(
  argv: readonly string[],
  env: Readonly<Record<string, string>>,
  io: Io,
): Promise<number> {
  try {
    const invocation = parseCommandLine(argv, env);
    switch (invocation.command) {
      case "help":
        io.stdout(helpText(invocation.topic));
        return EXIT_OK;
      case "version":
        io.stdout(`smtpd ${VERSION}\n`);
        return EXIT_OK;
      case "serve":
        return await runServe(invocation.options, invocation.envNames);
      case "list":
        return await runList(invocation.spool, invocation.json, io);
      case "show":
        return await runShow(invocation, io);
      case "wait":
        return await runWait(invocation, io);
      case "purge":
        return await runPurge(invocation, io);
      case "send":
        return await runSend(invocation.send, io);
      default: {
        const unhandled: never = invocation;
        throw new Error(`Unhandled command ${JSON.stringify(unhandled)}`);
      }
    }
  } catch (e: unknown) {
    const { code, line } = describeError(e);
    io.stderr(line + "\n");
    return code;
  }
}
