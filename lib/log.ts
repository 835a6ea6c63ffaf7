/**
 * The only writer of log lines (SPEC §5): one line per event, `text` or
 * `json`, to stderr or a file. File writes are synchronous. stderr lines are
 * queued and written by asynchronous writes, whole lines at a time, so a
 * stderr pipe nobody reads (a test fixture's `Popen(stderr=PIPE)`) never
 * stops the server; {@linkcode flushStderr} lets the lines out before exit.
 *
 * @module
 */

import { encodeShared } from "./bytes.ts";

const ENCODER = new TextEncoder();

export type LogLevel = "debug" | "info" | "warn" | "error";
export type LogFormat = "text" | "json";
export type LogFields = Record<string, unknown>;

const LEVEL_ORDER: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };
export const LOG_LEVELS: readonly LogLevel[] = ["debug", "info", "warn", "error"];
export const LOG_FORMATS: readonly LogFormat[] = ["text", "json"];

/**
 * Longest client text a log line repeats (the debug transcript): a line must
 * stay under PIPE_BUF (4,096 bytes on Linux) even JSON-escaped, or a line
 * from the other serving thread can land inside it on a stderr pipe.
 */
export const LOG_TEXT_CHARS = 512;

/**
 * `text` cut to {@linkcode LOG_TEXT_CHARS} characters, saying how long it was.
 *
 * @param text Client-supplied text for a log line.
 * @returns The text itself, or its start followed by `… (N chars)`.
 */
export function clipForLog(text: string): string {
  if (text.length <= LOG_TEXT_CHARS) return text;
  return `${text.slice(0, LOG_TEXT_CHARS)}… (${text.length} chars)`;
}

/** Where finished lines go; the default is stderr. */
export type LogSink = (line: string) => void;

export interface LoggerOptions {
  level?: LogLevel;
  format?: LogFormat;
  sink?: LogSink;
  /** Where lines go while `sink` throws (a full disk under `--log-file`); default stderr. */
  fallback?: LogSink;
  /** Injected clock for tests. */
  now?: () => Date;
}

/** Most bytes waiting for stderr; past it lines are dropped, and counted. */
const STDERR_BACKLOG_BYTES = 1 << 20;

/**
 * One write's worth: whole lines up to PIPE_BUF, so that on a pipe shared
 * with the other serving thread no write lands inside another.
 */
const STDERR_WRITE_BYTES = 4096;

/**
 * A line waits this long for others to share its write: each write is a
 * trip to another thread and back (about 15 µs of CPU), one per message
 * at the default level.
 */
const STDERR_BATCH_MS = 5;

/** After a failed write that was not EPIPE (EAGAIN on a non-blocking pipe), wait this long. */
const STDERR_RETRY_MS = 50;

/**
 * Lines for stderr, written in order by one asynchronous write at a time.
 * Deno runs those off the event loop, so a full pipe holds back the lines,
 * not the server (a synchronous write there blocked every session, and the
 * signals that should stop it).
 */
class StderrQueue {
  /** Encoded lines, each with its "\n"; `#lines[#head…]` not yet written. */
  #lines: Uint8Array[] = [];
  #head = 0;
  #bytes = 0;
  /** Lines dropped since the queue was last full, told once it has room again. */
  #dropped = 0;
  #notice: ((dropped: number) => string) | null = null;
  #writing: Promise<void> | null = null;
  /** Ends the batching wait of the drain under way, if it is waiting. */
  #hurry: (() => void) | null = null;
  /** stderr is closed (EPIPE): lines are dropped silently from then on. */
  #gone = false;

  /**
   * @param line A finished line.
   * @param notice Renders the line that tells how many lines were dropped
   *   before this one, in the logger's format.
   */
  push(line: string, notice: (dropped: number) => string): void {
    if (this.#gone) return;
    // Its own array: the shared one is reused while a write waits.
    const bytes = ENCODER.encode(line + "\n");
    if (this.#bytes + bytes.length > STDERR_BACKLOG_BYTES) {
      this.#dropped++;
      this.#notice = notice;
      return;
    }
    this.#tellDropped(notice);
    this.#add(bytes);
  }

  #tellDropped(notice: ((dropped: number) => string) | null): void {
    if (this.#dropped === 0 || notice === null) return;
    this.#add(ENCODER.encode(notice(this.#dropped) + "\n"));
    this.#dropped = 0;
  }

  #add(bytes: Uint8Array): void {
    this.#lines.push(bytes);
    this.#bytes += bytes.length;
    this.#writing ??= this.#drain();
  }

  /** Whole lines up to STDERR_WRITE_BYTES (a longer line alone), taken off the queue. */
  #nextBatch(): Uint8Array {
    const lines = this.#lines;
    const first = lines[this.#head]!;
    let end = this.#head + 1;
    let size = first.length;
    while (end < lines.length && size + lines[end]!.length <= STDERR_WRITE_BYTES) {
      size += lines[end++]!.length;
    }
    let batch = first;
    if (end > this.#head + 1) {
      batch = new Uint8Array(size);
      let off = 0;
      for (let i = this.#head; i < end; i++) {
        batch.set(lines[i]!, off);
        off += lines[i]!.length;
      }
    }
    this.#head = end;
    if (end === lines.length) {
      this.#lines = [];
      this.#head = 0;
    }
    this.#bytes -= size;
    return batch;
  }

  async #drain(): Promise<void> {
    try {
      // A flush (exit) cuts the wait short: the lines must start out at once.
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, STDERR_BATCH_MS);
        this.#hurry = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.#hurry = null;
      while (this.#head < this.#lines.length) {
        const batch = this.#nextBatch();
        try {
          for (let off = 0; off < batch.length;) {
            off += await Deno.stderr.write(batch.subarray(off));
          }
        } catch (e: unknown) {
          if (e instanceof Deno.errors.BrokenPipe) {
            // stderr gone: nothing sensible left to do with a log line.
            this.#gone = true;
            this.#lines = [];
            this.#head = 0;
            this.#bytes = 0;
            return;
          }
          // Any other failure (EAGAIN on a pipe another process made
          // non-blocking) loses this batch only; the next lines try again.
          await new Promise((resolve) => setTimeout(resolve, STDERR_RETRY_MS));
        }
      }
    } finally {
      this.#writing = null;
    }
  }

  /**
   * Resolves once every queued line is written (and a count of dropped
   * lines told), after `ms`, or as soon as `stop()` holds.
   */
  async flush(ms: number, stop: () => boolean): Promise<void> {
    this.#tellDropped(this.#notice);
    this.#hurry?.();
    const deadline = Date.now() + ms;
    while (this.#writing !== null && !stop()) {
      const left = deadline - Date.now();
      if (left <= 0) return;
      let timer: ReturnType<typeof setTimeout> | undefined;
      // A short step: `stop()` (a second signal) is looked at again soon.
      const step = new Promise<void>((resolve) => timer = setTimeout(resolve, Math.min(left, 20)));
      await Promise.race([this.#writing, step]);
      clearTimeout(timer);
    }
  }
}

const STDERR = new StderrQueue();

/**
 * Waits until the log lines queued for stderr are written, at most `ms`
 * (a pipe nobody reads would keep them forever). Call it before exiting.
 *
 * @param ms The longest wait.
 * @param stop Ends the wait early once it holds (a second signal).
 */
export function flushStderr(ms = 1000, stop: () => boolean = () => false): Promise<void> {
  return STDERR.flush(ms, stop);
}

/**
 * A sink appending to `path`, opened once.
 *
 * @throws {Error} `cannot write log file <path>: <reason>` for a line the file does not take.
 */
export function fileSink(path: string): LogSink {
  const file = Deno.openSync(path, { append: true, create: true });
  /** A line cut short by a full disk stayed in the file: the next line ends it first. */
  let torn = false;
  return (line) => {
    const ending = torn;
    const bytes = encodeShared((ending ? "\n" : "") + line + "\n");
    let written = 0;
    try {
      while (written < bytes.length) written += file.writeSync(bytes.subarray(written));
      torn = false;
    } catch (e: unknown) {
      // The part that fitted is taken back, or the next line would continue it
      // (a "\n" that ended an earlier torn line may stay).
      if (written > 0) torn = !takeBack(file, written - (ending ? 1 : 0));
      throw new Error(`cannot write log file ${path}: ${e instanceof Error ? e.message : e}`);
    }
  };
}

/**
 * Removes the last `count` bytes this descriptor appended, unless something
 * (the other serving thread) appended after them.
 *
 * @returns Whether they were removed.
 */
function takeBack(file: Deno.FsFile, count: number): boolean {
  try {
    const end = file.seekSync(0, Deno.SeekMode.Current);
    if (file.statSync().size !== end) return false;
    file.truncateSync(end - count);
    return true;
  } catch {
    return false;
  }
}

/** Renders a field value for text lines: bare when safe, JSON-quoted otherwise. */
function textValue(value: unknown): string {
  if (typeof value === "number" || typeof value === "boolean") return String(value);
  // A backslash stays bare: a Windows path copied from the log must work as it is.
  if (typeof value === "string" && /^[\w.:@\-\/\\\[\]+,<>]*$/.test(value) && value !== "") {
    return value;
  }
  return escapeJsonUnsafe(JSON.stringify(value) ?? "null");
}

/**
 * What JSON.stringify leaves raw but a terminal or a line splitter acts on:
 * DEL, the C1 controls (U+009B starts an escape sequence) and U+2028/2029.
 */
const JSON_UNSAFE_REGEXP = /[\u007f-\u009f\u2028\u2029]/g;
/** Every control character, for client text in a text line's message. */
// deno-lint-ignore no-control-regex
const CONTROL_REGEXP = /[\u0000-\u001f\u007f-\u009f\u2028\u2029]/g;

const unicodeEscape = (c: string): string => "\\u" + c.charCodeAt(0).toString(16).padStart(4, "0");

function escapeJsonUnsafe(json: string): string {
  return json.replace(JSON_UNSAFE_REGEXP, unicodeEscape);
}

export class Logger {
  #level: number;
  #format: LogFormat;
  #sink: LogSink;
  #fallback: LogSink;
  /** The sink threw on the last line: the fallback has said why once. */
  #failing = false;
  #now: (() => Date) | null;
  /** The last timestamp written and its millisecond: busy servers log many lines per ms. */
  #stampMs = -1;
  #stamp = "";

  constructor(options: LoggerOptions = {}) {
    this.#level = LEVEL_ORDER[options.level ?? "info"];
    this.#format = options.format ?? "text";
    // stderr tells of lines it dropped in this logger's format.
    const notice = (dropped: number) =>
      this.#render("warn", "log lines dropped: stderr was not read", { dropped });
    const stderr: LogSink = (line) => STDERR.push(line, notice);
    this.#sink = options.sink ?? stderr;
    this.#fallback = options.fallback ?? stderr;
    this.#now = options.now ?? null;
  }

  /** True when `level` lines are written (lets callers skip building costly fields). */
  enabled(level: LogLevel): boolean {
    return LEVEL_ORDER[level] >= this.#level;
  }

  debug(msg: string, fields?: LogFields): void {
    this.log("debug", msg, fields);
  }
  info(msg: string, fields?: LogFields): void {
    this.log("info", msg, fields);
  }
  warn(msg: string, fields?: LogFields): void {
    this.log("warn", msg, fields);
  }
  error(msg: string, fields?: LogFields): void {
    this.log("error", msg, fields);
  }

  log(level: LogLevel, msg: string, fields: LogFields = {}): void {
    if (!this.enabled(level)) return;
    this.#write(this.#render(level, msg, fields));
  }

  /**
   * A line the sink refuses goes to the fallback, after one line there
   * saying why; the next line tries the sink again. Logging never fails a
   * session or stops the server.
   */
  #write(line: string): void {
    try {
      this.#sink(line);
      this.#failing = false;
    } catch (e: unknown) {
      if (!this.#failing) {
        const error = e instanceof Error ? e.message : String(e);
        this.#fallback(this.#render("error", "log lines go here meanwhile", { error }));
      }
      this.#failing = true;
      this.#fallback(line);
    }
  }

  #render(level: LogLevel, msg: string, fields: LogFields): string {
    const time = this.#time();
    if (this.#format === "json") {
      return escapeJsonUnsafe(JSON.stringify({ time, level, msg, ...fields }));
    }
    // A transcript line is client text: a CR or an escape in it must not
    // start a forged line or drive the terminal that shows the log.
    let line = `${time} ${level.toUpperCase().padEnd(5)} ${
      msg.replace(CONTROL_REGEXP, unicodeEscape)
    }`;
    for (const [key, value] of Object.entries(fields)) {
      if (value !== undefined) line += ` ${key}=${textValue(value)}`;
    }
    return line;
  }

  #time(): string {
    if (this.#now !== null) return this.#now().toISOString();
    const ms = Date.now();
    if (ms !== this.#stampMs) {
      this.#stampMs = ms;
      this.#stamp = new Date(ms).toISOString();
    }
    return this.#stamp;
  }
}

/** A logger that drops everything (library default when no logging is wanted). */
export const SILENT: Logger = new Logger({ level: "error", sink: () => {} });
