/**
 * `--on-message CMD` (SPEC §6): runs a shell command after each stored
 * message, never more than a cap at once, and never lets its failure reach
 * the server: a non-zero exit or a failed start is one `warn` line.
 *
 * @module
 */

import type { Logger } from "../log.ts";

/** What the hook finds in its environment (SPEC §6). */
export interface HookEnv {
  SMTPD_ID: string;
  /** Absolute path of `<id>.eml`. */
  SMTPD_EML: string;
  /** Absolute path of `<id>.json`. */
  SMTPD_META: string;
  /** Reverse path; empty for `<>`. */
  SMTPD_FROM: string;
  /** Recipients, comma-separated. */
  SMTPD_RCPT: string;
}

/**
 * Longest `SMTPD_RCPT`, in UTF-16 units (at most 3 bytes each): Linux refuses
 * to start a program with one environment string over 128 KiB
 * (MAX_ARG_STRLEN), so a thousand long recipients kept the hook from running.
 */
const MAX_RCPT_CHARS = 40_000;

/**
 * Recipients for `SMTPD_RCPT`: comma-separated, cut after the last whole
 * address that fits, then `,…` (the `.json` at `SMTPD_META` has them all).
 *
 * @param rcptTo The message's recipients.
 * @returns The variable's value.
 */
export function rcptVariable(rcptTo: readonly string[]): string {
  const all = rcptTo.join(",");
  if (all.length <= MAX_RCPT_CHARS) return all;
  const cut = all.lastIndexOf(",", MAX_RCPT_CHARS);
  return `${cut > 0 ? all.slice(0, cut) : ""},…`;
}

/** Hooks waiting beyond this are dropped with a warning: memory stays bounded when hooks are slower than mail. */
export const MAX_QUEUED_HOOKS = 10_000;
/** Windows has no process groups to signal; there a hook runs as an ordinary child. */
const IS_WINDOWS = Deno.build.os === "windows";
/** Bytes of a hook's stderr kept for the failure line (its end: where the error usually is). */
const STDERR_TAIL_BYTES = 1024;
/** How long stderr may stay open after the hook exited (see settleTail). */
const STDERR_GRACE_MS = 100;

/** Runs `--on-message` commands through the system shell with a concurrency cap. */
export class HookRunner {
  #command: string;
  #maxConcurrent: number;
  #logger: Logger;
  #queue: HookEnv[] = [];
  /** Hooks started and not finished, spawned or not yet. */
  #active = 0;
  /** The spawned ones and the message each is for, for `cancel()`. */
  #children = new Map<Deno.ChildProcess, string>();
  #idleWaiters: (() => void)[] = [];

  /**
   * @param command Shell command line, run by `sh -c` (Unix) or `cmd /d /s /c` (Windows).
   * @param maxConcurrent At most this many hooks run at once (SPEC §6: `--max-connections`).
   * @param logger Where failures go.
   * @throws {RangeError} When `maxConcurrent` is not a positive whole number.
   */
  constructor(command: string, maxConcurrent: number, logger: Logger) {
    if (!Number.isSafeInteger(maxConcurrent) || maxConcurrent < 1) {
      throw new RangeError(`Cannot run hooks ${maxConcurrent} at a time: expected 1 or more`);
    }
    this.#command = command;
    this.#maxConcurrent = maxConcurrent;
    this.#logger = logger;
  }

  /** Hooks started and not yet finished. */
  get running(): number {
    return this.#active;
  }

  /** Hooks waiting for a free slot. */
  get queued(): number {
    return this.#queue.length;
  }

  /**
   * Runs the hook for one stored message, now or when a slot frees up.
   * Fire and forget: nothing is returned and nothing is thrown.
   *
   * @param env Added to the server's own environment for the command.
   */
  run(env: HookEnv): void {
    if (this.running < this.#maxConcurrent) {
      this.#start(env);
      return;
    }
    if (this.#queue.length >= MAX_QUEUED_HOOKS) {
      this.#logger.warn("hook dropped: too many waiting", {
        id: env.SMTPD_ID,
        queued: this.#queue.length,
      });
      return;
    }
    this.#queue.push({ ...env });
  }

  /** Resolves once no hook is queued or running (for shutdown). */
  idle(): Promise<void> {
    if (this.running === 0 && this.#queue.length === 0) return Promise.resolve();
    return new Promise((resolve) => this.#idleWaiters.push(resolve));
  }

  /**
   * Drops queued hooks and sends SIGTERM to running ones (second signal,
   * drain deadline); `idle()` resolves as they exit.
   */
  cancel(): void {
    if (this.#queue.length > 0) {
      this.#logger.warn("hooks dropped at shutdown", { queued: this.#queue.length });
      this.#queue = [];
    }
    for (const [child, id] of this.#children) {
      // Said now: the hook's own exit may come after the last log line.
      this.#logger.warn("hook killed at shutdown", { id, pid: child.pid });
      try {
        // The hook's whole process group: what its shell runs in the
        // foreground, and what it started in the background, goes too.
        if (IS_WINDOWS) child.kill("SIGTERM");
        else Deno.kill(-child.pid, "SIGTERM");
      } catch {
        // Already exited between the check and the kill.
      }
    }
    this.#settle();
  }

  #start(env: HookEnv): void {
    this.#active++;
    void this.#execute(env).finally(() => {
      this.#active--;
      const next = this.#queue.shift();
      if (next !== undefined) this.#start(next);
      this.#settle();
    });
  }

  async #execute(env: HookEnv): Promise<void> {
    const started = Date.now();
    let child: Deno.ChildProcess;
    try {
      child = new Deno.Command(shell()[0], {
        args: [...shell().slice(1), shellArgument(this.#command)],
        env: { ...env },
        stdin: "null",
        // Output goes where the server's stdout goes (logs use stderr); stderr
        // is kept for the failure line instead.
        stdout: "inherit",
        stderr: "piped",
        // cmd.exe parses its own command line; Deno's quoting would corrupt it.
        windowsRawArguments: IS_WINDOWS,
        // POSIX: a session and process group of its own (setsid), so cancel()
        // reaches its children, and a Ctrl-C at the terminal leaves the hook
        // to finish within the drain like the transfers do.
        detached: !IS_WINDOWS,
      }).spawn();
    } catch (e: unknown) {
      this.#logger.warn("hook failed to start", { id: env.SMTPD_ID, error: oneLine(e) });
      return;
    }
    this.#children.set(child, env.SMTPD_ID);
    try {
      const reader = child.stderr.getReader();
      const collected = tail(reader);
      const status = await child.status;
      const stderr = await settleTail(reader, collected);
      const ms = Date.now() - started;
      if (status.success) {
        this.#logger.debug("hook finished", {
          id: env.SMTPD_ID,
          ms,
          ...(stderr !== "" ? { stderr } : {}),
        });
      } else {
        this.#logger.warn("hook failed", {
          id: env.SMTPD_ID,
          ...(status.signal !== null ? { signal: status.signal } : { code: status.code }),
          ms,
          ...(stderr !== "" ? { stderr } : {}),
        });
      }
    } catch (e: unknown) {
      this.#logger.warn("hook failed", { id: env.SMTPD_ID, error: oneLine(e) });
    } finally {
      this.#children.delete(child);
    }
  }

  #settle(): void {
    if (this.running > 0 || this.#queue.length > 0) return;
    const waiters = this.#idleWaiters;
    this.#idleWaiters = [];
    for (const resolve of waiters) resolve();
  }
}

/** The system shell, as `child_process` with `shell: true` picks it. */
function shell(): [string, ...string[]] {
  if (Deno.build.os === "windows") return [Deno.env.get("ComSpec") ?? "cmd.exe", "/d", "/s", "/c"];
  return ["/bin/sh", "-c"];
}

/** `cmd /s /c "…"` strips exactly the outer quotes, so any command line survives. */
function shellArgument(command: string): string {
  return Deno.build.os === "windows" ? `"${command}"` : command;
}

/** The last bytes read from `reader`, as one trimmed line (bounded memory whatever the hook prints). */
async function tail(reader: ReadableStreamDefaultReader<Uint8Array>): Promise<string> {
  let kept = new Uint8Array(0);
  for (;;) {
    const { done, value } = await reader.read().catch(() => ({ done: true, value: undefined }));
    if (done || value === undefined) break;
    const joined = new Uint8Array(Math.min(kept.length + value.length, STDERR_TAIL_BYTES));
    const fromChunk = value.subarray(Math.max(0, value.length - joined.length));
    const fromKept = kept.subarray(kept.length - (joined.length - fromChunk.length));
    joined.set(fromKept, 0);
    joined.set(fromChunk, fromKept.length);
    kept = joined;
  }
  return new TextDecoder().decode(kept).trim().replace(/\s*\r?\n\s*/g, " | ");
}

/**
 * After the hook exited: its stderr ends at once unless a process it left
 * behind (`cmd &`) still holds the pipe. Waiting for that would keep the slot
 * and `idle()` busy for as long as the orphan lives, so stop reading after a
 * short grace.
 */
async function settleTail(
  reader: ReadableStreamDefaultReader<Uint8Array>,
  collected: Promise<string>,
): Promise<string> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const grace = new Promise<void>((resolve) => {
    timer = setTimeout(resolve, STDERR_GRACE_MS);
  });
  await Promise.race([collected, grace]);
  clearTimeout(timer);
  await reader.cancel().catch(() => {});
  return await collected;
}

function oneLine(e: unknown): string {
  const text = e instanceof Error ? e.message : String(e);
  return text.split("\n")[0] ?? text;
}
