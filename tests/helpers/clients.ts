/**
 * Real SMTP clients as subprocesses: swaks, python3 smtplib, curl, msmtp and
 * Postfix `smtp-source`. Interoperability with what applications actually
 * use is the point of smtpd, so these run in CI (`.ci/run` installs them);
 * on a developer machine without one, its tests are skipped with a printed
 * reason instead of failing.
 *
 * @module
 */

/** One client run is one small SMTP session; a minute means it is hung. */
export const TOOL_TIMEOUT_MS = 60_000;

/** What a finished tool run printed. */
export interface ToolResult {
  code: number;
  stdout: string;
  stderr: string;
}

export type ToolName = "swaks" | "python3" | "curl" | "msmtp" | "smtp-source";

/** Postfix installs `smtp-source` in sbin, which a non-root PATH often lacks. */
const EXTRA_DIRS = ["/usr/sbin", "/sbin", "/usr/local/sbin"];

function isExecutable(path: string): boolean {
  try {
    const info = Deno.statSync(path);
    return info.isFile && (info.mode === null || (info.mode & 0o111) !== 0);
  } catch {
    return false;
  }
}

/** The first `name` on PATH (then sbin directories), or null. */
export function findOnPath(name: string): string | null {
  const sep = Deno.build.os === "windows" ? ";" : ":";
  const dirs = [...(Deno.env.get("PATH") ?? "").split(sep), ...EXTRA_DIRS];
  for (const dir of dirs) {
    if (dir && isExecutable(`${dir}/${name}`)) return `${dir}/${name}`;
  }
  return null;
}

function hasSmtplib(python: string): boolean {
  try {
    const out = new Deno.Command(python, {
      args: ["-c", "import smtplib, email.generator"],
      stdin: "null",
      stdout: "null",
      stderr: "null",
    }).outputSync();
    return out.success;
  } catch {
    return false;
  }
}

const found = new Map<ToolName, string | null>();

/** Path of a usable tool, or null. python3: the first on PATH, else /usr/bin/python3, with smtplib. */
export function toolPath(name: ToolName): string | null {
  if (found.has(name)) return found.get(name)!;
  let path = findOnPath(name);
  if (name === "python3") {
    if (path && !hasSmtplib(path)) path = null;
    if (!path && isExecutable("/usr/bin/python3") && hasSmtplib("/usr/bin/python3")) {
      path = "/usr/bin/python3";
    }
  }
  found.set(name, path);
  return path;
}

/**
 * `Deno.test` that is skipped, with a line on stderr saying why, when one of
 * `tools` is missing.
 */
export function toolTest(name: string, tools: ToolName[], fn: () => Promise<void>): void {
  const missing = tools.filter((t) => toolPath(t) === null);
  if (missing.length > 0) {
    Deno.stderr.writeSync(
      new TextEncoder().encode(
        `skip "${name}": ${missing.join(", ")} not installed (.ci/run installs it)\n`,
      ),
    );
  }
  Deno.test({ name, ignore: missing.length > 0, fn });
}

/** Options of {@linkcode runProgram} and {@linkcode runTool}. */
export interface RunOptions {
  stdin?: Uint8Array | string;
  timeoutMs?: number;
  env?: Record<string, string>;
}

/** Runs a program by path with optional stdin, killed after `timeoutMs`. */
export async function runProgram(
  path: string,
  args: string[],
  opts: RunOptions = {},
): Promise<ToolResult> {
  const abort = new AbortController();
  const timer = setTimeout(() => abort.abort(), opts.timeoutMs ?? TOOL_TIMEOUT_MS);
  try {
    const child = new Deno.Command(path, {
      args,
      stdin: opts.stdin === undefined ? "null" : "piped",
      stdout: "piped",
      stderr: "piped",
      signal: abort.signal,
      ...(opts.env ? { env: opts.env } : {}),
    }).spawn();
    if (opts.stdin !== undefined) {
      const bytes = typeof opts.stdin === "string"
        ? new TextEncoder().encode(opts.stdin)
        : opts.stdin;
      const w = child.stdin.getWriter();
      await w.write(bytes);
      await w.close();
    }
    const out = await child.output();
    const dec = new TextDecoder();
    return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
  } finally {
    clearTimeout(timer);
  }
}

/** Runs `tool args…` (see {@linkcode toolPath}); throws when the tool is missing. */
export function runTool(
  name: ToolName,
  args: string[],
  opts: RunOptions = {},
): Promise<ToolResult> {
  const path = toolPath(name);
  if (!path) throw new Error(`Cannot run ${name}: not installed`);
  return runProgram(path, args, opts);
}

/** swaks against 127.0.0.1:`port`; `args` add `--from`, `--to`, `--data` and so on. */
export function swaks(port: number, args: string[]): Promise<ToolResult> {
  return runTool("swaks", ["--server", "127.0.0.1", "--port", String(port), ...args]);
}

/**
 * Runs a python3 program; `sys.argv[1:]` are `args`. The program talks to the
 * server with smtplib and prints whatever the test wants to compare.
 */
export function python(script: string, args: string[]): Promise<ToolResult> {
  return runTool("python3", ["-c", script, ...args]);
}

/** curl with `url` (e.g. `smtp://127.0.0.1:PORT`) and further options. */
export function curl(url: string, args: string[]): Promise<ToolResult> {
  return runTool("curl", ["--silent", "--show-error", "--max-time", "30", url, ...args]);
}

/**
 * msmtp without any configuration file (a developer's ~/.msmtprc must not
 * leak in): plain SMTP, no auth; the message comes on stdin.
 */
export function msmtp(
  port: number,
  from: string,
  to: string[],
  message: Uint8Array | string,
): Promise<ToolResult> {
  return runTool("msmtp", [
    "--file=/dev/null",
    "--host=127.0.0.1",
    `--port=${port}`,
    "--auth=off",
    "--tls=off",
    "--domain=client.example",
    `--from=${from}`,
    "--",
    ...to,
  ], { stdin: message });
}

/** Postfix's load generator: `smtp-source [args] 127.0.0.1:PORT`. */
export function smtpSource(port: number, args: string[]): Promise<ToolResult> {
  return runTool("smtp-source", [...args, `127.0.0.1:${port}`], { timeoutMs: 120_000 });
}
