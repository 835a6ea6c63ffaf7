/**
 * Runs the real `main.ts` for end-to-end tests, the way a user runs it:
 * `deno run` with the runtime flags pinned in `deno.json` (so a missing
 * permission fails here, not in a user's CI), `--listen 127.0.0.1:0`, a
 * `--ready-file` to learn the port, and a fresh spool. Helpers layer like
 * go-smtp's `testServer` → `testServerGreeted` → `testServerEhlo`:
 * {@linkcode started} → {@linkcode greeted} → {@linkcode ehloed}.
 *
 * Every wait is bounded; every process and temp dir is released by
 * `await using` (or an explicit `stop()`/`kill()`).
 *
 * @module
 */

import assert from "node:assert/strict";
import { RawClient, type ReplyRead, visible } from "./raw_client.ts";

/** Cold start includes Deno loading npm modules from its cache: keep it generous on 2 cores. */
export const READY_TIMEOUT_MS = 30_000;
/** SPEC §4 lets transfers in flight run 10 s after SIGTERM; allow that plus start-up slack. */
export const STOP_TIMEOUT_MS = 20_000;
const POLL_MS = 25;

const REPO_ROOT = new URL("../../", import.meta.url);

/** A `file:` URL to a local path (POSIX and Windows drive letters). */
export function fromFileUrl(url: URL): string {
  const path = decodeURIComponent(url.pathname);
  return /^\/[A-Za-z]:\//.test(path) ? path.slice(1) : path;
}

/** Absolute path of a file in the repository. */
export function repoPath(relative: string): string {
  return fromFileUrl(new URL(relative, REPO_ROOT));
}

/** The runtime flags (permissions, V8 flags) in a `deno run …`/`deno compile …` task string. */
export function runtimeFlags(task: string): string[] {
  return task.split(/\s+/).filter((t) => /^(--allow-|--deny-|-A$|--v8-flags=|--unstable-)/.test(t));
}

/** The `--include PATH` values of a `deno compile …` task string or Makefile line. */
export function includedModules(task: string): string[] {
  return [...task.matchAll(/--include[=\s]+(\S+)/g)].map((m) => m[1]!);
}

/** Runtime flags of `deno.json` `tasks.run`: the ones the product ships with. */
export function runFlags(): string[] {
  const config = JSON.parse(Deno.readTextFileSync(repoPath("deno.json")));
  const task: unknown = config?.tasks?.run;
  if (typeof task !== "string") throw new Error("deno.json has no tasks.run string");
  const flags = runtimeFlags(task);
  if (flags.length === 0) throw new Error(`deno.json tasks.run has no runtime flags: ${task}`);
  return flags;
}

/** Deno's arguments that run the product's `main.ts` with `args`, as `make run` does. */
export function mainArgs(args: readonly string[]): string[] {
  return ["run", ...runFlags(), repoPath("main.ts"), ...args];
}

/** The parent environment minus `SMTPD_*`, so a developer's shell cannot change a test. */
function cleanEnv(extra: Record<string, string> = {}): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(Deno.env.toObject())) {
    if (!k.startsWith("SMTPD_")) env[k] = v;
  }
  return { ...env, NO_COLOR: "1", ...extra };
}

/** SPEC §2 `--ready-file` contents. */
export interface ReadyInfo {
  pid: number;
  listeners: { address: string; port: number; tls: boolean }[];
}

export interface StartOptions {
  /** Extra environment (e.g. `SMTPD_MAX_SIZE`); inherited `SMTPD_*` are dropped. */
  env?: Record<string, string>;
  /** How long to wait for the ready file. */
  readyTimeoutMs?: number;
  /** A program that runs the server, e.g. `["nohup"]` (it must exec, keeping the pid). */
  wrapper?: string[];
}

function hasFlag(args: readonly string[], flag: string): boolean {
  return args.some((a) => a === flag || a.startsWith(flag + "="));
}

function flagValue(args: readonly string[], flag: string): string | undefined {
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (a === flag) return args[i + 1];
    if (a.startsWith(flag + "=")) return a.slice(flag.length + 1);
  }
  return undefined;
}

/** A message read back from the spool. */
export interface StoredMessage {
  id: string;
  eml: Uint8Array;
  // deno-lint-ignore no-explicit-any
  meta: Record<string, any>;
}

/** Lists `<id>.json` in `spool` (as readers must, SPEC §3), sorted by id, with the `.eml` bytes. */
export async function readSpool(spool: string): Promise<StoredMessage[]> {
  const ids: string[] = [];
  for await (const entry of Deno.readDir(spool)) {
    if (entry.isFile && entry.name.endsWith(".json")) ids.push(entry.name.slice(0, -5));
  }
  ids.sort();
  const out: StoredMessage[] = [];
  for (const id of ids) {
    const meta = JSON.parse(await Deno.readTextFile(`${spool}/${id}.json`));
    out.push({ id, meta, eml: await Deno.readFile(`${spool}/${id}.eml`) });
  }
  return out;
}

/** Lower-case hex SHA-256. */
export async function sha256Hex(data: Uint8Array | string): Promise<string> {
  const bytes = typeof data === "string" ? new TextEncoder().encode(data) : data;
  const digest = await crypto.subtle.digest("SHA-256", bytes as Uint8Array<ArrayBuffer>);
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, "0")).join("");
}

/**
 * Asserts that a stored message is exactly `expected` (the unstuffed bytes):
 * the `.eml` equals it, and the `.json` `id`, `size` and `sha256` agree with
 * the `.eml` and with the expected bytes' own digest (SPEC §3).
 */
export async function assertStored(
  msg: StoredMessage,
  expected: Uint8Array | string,
): Promise<void> {
  const want = typeof expected === "string" ? new TextEncoder().encode(expected) : expected;
  const emlSha = await sha256Hex(msg.eml);
  assert.equal(msg.meta.id, msg.id, "meta.id names the file");
  assert.equal(msg.meta.sha256, emlSha, "meta.sha256 is the digest of the .eml");
  assert.equal(msg.meta.size, msg.eml.length, "meta.size is the .eml length");
  if (emlSha !== (await sha256Hex(want))) {
    const dec = new TextDecoder("latin1");
    assert.equal(visible(dec.decode(msg.eml)), visible(dec.decode(want)), "stored bytes");
  }
  assert.deepEqual(msg.eml, want);
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * The contents of a `--ready-file`, or undefined while it is not there yet
 * (SPEC §2 writes it atomically, so a parse error is "not yet" too). For {@linkcode poll}.
 */
export async function readReadyFile(path: string): Promise<ReadyInfo | undefined> {
  try {
    const parsed = JSON.parse(await Deno.readTextFile(path));
    if (parsed?.listeners?.length) return parsed as ReadyInfo;
  } catch {
    // Not there yet.
  }
  return undefined;
}

/** Polls `probe` every 25 ms until it returns a value other than undefined, or throws on timeout. */
export async function poll<T>(
  what: string,
  timeoutMs: number,
  probe: () => Promise<T | undefined> | T | undefined,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  while (true) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() >= deadline) {
      throw new Error(`Timed out after ${timeoutMs} ms waiting for ${what}`);
    }
    await sleep(POLL_MS);
  }
}

/** One running `main.ts` process. */
export class ServerProc implements AsyncDisposable {
  readonly dir: string;
  readonly spool: string;
  readonly readyFile: string;
  readonly ready: ReadyInfo;
  readonly port: number;
  readonly stderrPath: string;
  readonly stdoutPath: string;
  /** Resolves when the process has exited. */
  readonly status: Promise<Deno.CommandStatus>;
  #child: Deno.ChildProcess;
  #pipes: Promise<unknown>;
  #exit: Deno.CommandStatus | null = null;
  #ownsDir: boolean;

  constructor(init: {
    dir: string;
    ownsDir: boolean;
    spool: string;
    readyFile: string;
    ready: ReadyInfo;
    stderrPath: string;
    stdoutPath: string;
    child: Deno.ChildProcess;
    pipes: Promise<unknown>;
  }) {
    this.dir = init.dir;
    this.#ownsDir = init.ownsDir;
    this.spool = init.spool;
    this.readyFile = init.readyFile;
    this.ready = init.ready;
    this.port = init.ready.listeners[0]?.port ?? 0;
    this.stderrPath = init.stderrPath;
    this.stdoutPath = init.stdoutPath;
    this.#child = init.child;
    this.#pipes = init.pipes;
    this.status = init.child.status.then((s) => (this.#exit = s));
  }

  get pid(): number {
    return this.#child.pid;
  }

  /** The exit status once exited, else null. */
  get exit(): Deno.CommandStatus | null {
    return this.#exit;
  }

  /** Everything the server wrote to stderr so far. */
  stderr(): string {
    try {
      return Deno.readTextFileSync(this.stderrPath);
    } catch {
      return "";
    }
  }

  /** Waits until stderr matches `pattern`; returns the match. */
  waitForStderr(pattern: RegExp, timeoutMs = 10_000): Promise<RegExpExecArray> {
    return poll(`stderr ${pattern}`, timeoutMs, () => pattern.exec(this.stderr()) ?? undefined)
      .catch((e: unknown) => {
        throw new Error(`${(e as Error).message}; stderr was:\n${this.stderr()}`);
      });
  }

  /** Sends a signal; ignored when the process is gone. */
  signal(sig: Deno.Signal): void {
    if (this.#exit) return;
    try {
      this.#child.kill(sig);
    } catch {
      // Exited between the check and the kill.
    }
  }

  /** Waits (bounded) for the process to exit by itself; returns its exit code. */
  async exited(timeoutMs = STOP_TIMEOUT_MS): Promise<number> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<null>((resolve) => (timer = setTimeout(resolve, timeoutMs, null)));
    const status = await Promise.race([this.status, timeout]);
    clearTimeout(timer);
    if (!status) {
      throw new Error(`Server still running after ${timeoutMs} ms; stderr:\n${this.stderr()}`);
    }
    await this.#pipes;
    return status.code;
  }

  /** SIGTERM, then the exit code (SIGKILL and a throw if it does not exit in time). */
  async stop(timeoutMs = STOP_TIMEOUT_MS): Promise<number> {
    this.signal("SIGTERM");
    try {
      return await this.exited(timeoutMs);
    } catch (e: unknown) {
      await this.kill();
      throw e;
    }
  }

  /** SIGKILL and wait. */
  async kill(): Promise<number> {
    this.signal("SIGKILL");
    const status = await this.status;
    await this.#pipes;
    return status.code;
  }

  /** A raw client connected to the first listener. */
  connect(): Promise<RawClient> {
    return RawClient.connect(this.port);
  }

  /** Messages in the spool (`*.json` with their `.eml`). */
  messages(): Promise<StoredMessage[]> {
    return readSpool(this.spool);
  }

  /** Waits until at least `n` messages are stored; returns them all. */
  waitForMessages(n: number, timeoutMs = 10_000): Promise<StoredMessage[]> {
    return poll(`${n} stored messages in ${this.spool}`, timeoutMs, async () => {
      const msgs = await readSpool(this.spool);
      return msgs.length >= n ? msgs : undefined;
    });
  }

  async [Symbol.asyncDispose](): Promise<void> {
    if (!this.#exit) {
      try {
        await this.stop();
      } catch {
        // stop() already fell back to SIGKILL; the test itself reports failures.
      }
    }
    await this.#pipes;
    if (this.#ownsDir) await Deno.remove(this.dir, { recursive: true }).catch(() => {});
  }
}

/**
 * Copies a child's output into a file chunk by chunk, synchronously, so the
 * file is current whenever a test reads it (a `pipeTo(file.writable)` was
 * seen to hold lines back until the process exited).
 */
async function drainTo(stream: ReadableStream<Uint8Array>, path: string): Promise<void> {
  using file = await Deno.open(path, { write: true, create: true, truncate: true });
  for await (const chunk of stream) {
    for (let off = 0; off < chunk.length;) off += file.writeSync(chunk.subarray(off));
  }
}

/**
 * Starts `main.ts` with `deno.json`'s permissions. Adds `--listen 127.0.0.1:0`,
 * `--ready-file` and `--spool <fresh dir>` unless `args` give their own
 * (`--listen`/`--listen-tls`, `--ready-file`, `--spool`). Throws, with the
 * server's stderr, when it exits or stays silent before the ready file.
 */
export async function startServer(
  args: string[] = [],
  opts: StartOptions = {},
): Promise<ServerProc> {
  const dir = await Deno.makeTempDir({ prefix: "smtpd-e2e-" });
  const extra: string[] = [];
  if (!hasFlag(args, "--listen") && !hasFlag(args, "--listen-tls")) {
    extra.push("--listen", "127.0.0.1:0");
  }
  const readyFile = flagValue(args, "--ready-file") ?? `${dir}/ready.json`;
  if (!hasFlag(args, "--ready-file")) extra.push("--ready-file", readyFile);
  const spool = flagValue(args, "--spool") ?? `${dir}/spool`;
  if (!hasFlag(args, "--spool")) extra.push("--spool", spool);

  const stderrPath = `${dir}/stderr.log`;
  const stdoutPath = `${dir}/stdout.log`;
  const wrapper = opts.wrapper ?? [];
  const child = new Deno.Command(wrapper[0] ?? Deno.execPath(), {
    args: [
      ...wrapper.slice(1),
      ...(wrapper.length ? [Deno.execPath()] : []),
      ...mainArgs([...extra, ...args]),
    ],
    cwd: dir,
    env: cleanEnv(opts.env),
    clearEnv: true,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const pipes = Promise.all([
    drainTo(child.stderr, stderrPath),
    drainTo(child.stdout, stdoutPath),
  ]);

  let exited = false;
  const statusWatch = child.status.then(() => (exited = true));
  const readStderr = () => {
    try {
      return Deno.readTextFileSync(stderrPath);
    } catch {
      return "";
    }
  };
  let ready: ReadyInfo;
  try {
    ready = await poll(
      `ready file ${readyFile}`,
      opts.readyTimeoutMs ?? READY_TIMEOUT_MS,
      async () => {
        const info = await readReadyFile(readyFile);
        if (info === undefined && exited) {
          throw new Error("server exited before writing the ready file");
        }
        return info;
      },
    );
  } catch (e: unknown) {
    try {
      child.kill("SIGKILL");
    } catch {
      // Already gone.
    }
    await statusWatch;
    await pipes;
    const status = await child.status;
    const stderr = readStderr();
    await Deno.remove(dir, { recursive: true }).catch(() => {});
    throw new Error(
      `Cannot start smtpd ${visible(args.join(" "))}: ${(e as Error).message} ` +
        `(exit ${status.code}); stderr:\n${stderr}`,
    );
  }
  return new ServerProc({
    dir,
    ownsDir: true,
    spool,
    readyFile,
    ready,
    stderrPath,
    stdoutPath,
    child,
    pipes,
  });
}

/** Result of a finished CLI run. */
export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/**
 * Runs `main.ts args…` to completion (killed after `timeoutMs`) in a fresh
 * temp dir, so a default `./spool` never lands in the repository.
 */
export async function runCli(
  args: string[],
  env: Record<string, string> = {},
  opts: { cwd?: string; timeoutMs?: number; stdin?: Uint8Array } = {},
): Promise<CliResult> {
  const tmp = opts.cwd ? null : await Deno.makeTempDir({ prefix: "smtpd-cli-" });
  const abort = new AbortController();
  const timer = setTimeout(() => abort.abort(), opts.timeoutMs ?? 30_000);
  try {
    const child = new Deno.Command(Deno.execPath(), {
      args: mainArgs(args),
      cwd: opts.cwd ?? tmp!,
      env: cleanEnv(env),
      clearEnv: true,
      stdin: opts.stdin ? "piped" : "null",
      stdout: "piped",
      stderr: "piped",
      signal: abort.signal,
    }).spawn();
    if (opts.stdin) {
      const w = child.stdin.getWriter();
      await w.write(opts.stdin);
      await w.close();
    }
    const out = await child.output();
    const dec = new TextDecoder();
    return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
  } finally {
    clearTimeout(timer);
    if (tmp) await Deno.remove(tmp, { recursive: true }).catch(() => {});
  }
}

/** Same as {@linkcode startServer}: layer 1. */
export function started(args: string[] = [], opts: StartOptions = {}): Promise<ServerProc> {
  return startServer(args, opts);
}

/** A server plus a raw client that has read the 220 greeting. */
export interface Greeted extends AsyncDisposable {
  server: ServerProc;
  client: RawClient;
  greeting: ReplyRead;
}

/** A greeted session that has also sent `EHLO` and read its 250 reply. */
export interface Ehloed extends Greeted {
  ehlo: ReplyRead;
}

/** Layer 2: started, connected, `220` read. */
export async function greeted(args: string[] = [], opts: StartOptions = {}): Promise<Greeted> {
  const server = await startServer(args, opts);
  let client: RawClient | null = null;
  try {
    client = await server.connect();
    const greeting = await client.readReply();
    if (greeting.code !== 220) {
      throw new Error(`Expected 220 greeting, got ${visible(greeting.raw)}`);
    }
    const c = client;
    return {
      server,
      client: c,
      greeting,
      async [Symbol.asyncDispose]() {
        await c.close();
        await server[Symbol.asyncDispose]();
      },
    };
  } catch (e: unknown) {
    await client?.close();
    await server[Symbol.asyncDispose]();
    throw e;
  }
}

/** Layer 3: greeted, then `EHLO client.example` answered with 250. */
export async function ehloed(args: string[] = [], opts: StartOptions = {}): Promise<Ehloed> {
  const g = await greeted(args, opts);
  try {
    const ehlo = await g.client.command("EHLO client.example");
    if (ehlo.code !== 250) throw new Error(`Expected 250 to EHLO, got ${visible(ehlo.raw)}`);
    return { ...g, ehlo };
  } catch (e: unknown) {
    await g[Symbol.asyncDispose]();
    throw e;
  }
}
