/**
 * The `smtpd` executable (SPEC §1): the only impure file. It alone reads
 * `Deno.args` and the environment, owns the standard streams and calls
 * `Deno.exit`; everything else is `run()` in `lib/cli/main.ts`.
 *
 * @module
 */

import { type Io, run } from "./lib/cli/main.ts";

const encoder = new TextEncoder();

function writeAllSync(file: typeof Deno.stdout, bytes: Uint8Array): void {
  for (let off = 0; off < bytes.length;) off += file.writeSync(bytes.subarray(off));
}

/** `smtpd list | head -1` closes the pipe early: stop quietly, as `cat` does. */
function guard<T>(write: () => T): T {
  try {
    return write();
  } catch (e: unknown) {
    if (e instanceof Deno.errors.BrokenPipe) Deno.exit(0);
    throw e;
  }
}

if (import.meta.main) {
  const io: Io = {
    stdout: (text) => guard(() => writeAllSync(Deno.stdout, encoder.encode(text))),
    stderr: (text) => {
      try {
        writeAllSync(Deno.stderr, encoder.encode(text));
      } catch {
        // stderr is gone: nowhere left to report to.
      }
    },
    stdoutBytes: async (bytes) => {
      try {
        for (let off = 0; off < bytes.length;) off += await Deno.stdout.write(bytes.subarray(off));
      } catch (e: unknown) {
        if (e instanceof Deno.errors.BrokenPipe) Deno.exit(0);
        throw e;
      }
    },
    stdin: Deno.stdin.readable,
    stdoutIsTerminal: Deno.stdout.isTerminal(),
  };
  // Windows variable names ignore case (`$env:smtpd_spool`); Deno keeps them as stored.
  const env = Deno.env.toObject();
  const lookup = Deno.build.os === "windows"
    ? Object.fromEntries(Object.entries(env).map(([k, v]) => [k.toUpperCase(), v]))
    : env;
  Deno.exit(await run(Deno.args, lookup, io));
}
