/**
 * The command line as a pure function: `argv` and the environment in, a
 * validated command out, or a {@linkcode UsageError} naming the flag (SPEC §2).
 * Serve flags also read `SMTPD_<FLAG>`; a flag on the command line wins.
 *
 * @module
 */

import { parseArgs } from "node:util";
import {
  LOG_FORMATS,
  LOG_LEVELS,
  type LogFormat,
  type LogLevel,
  type MessageFilter,
  parseDuration,
  parseHostPort,
  parseSize,
  type ServeOptions,
} from "../mod.ts";
import { checked, UsageError } from "./errors.ts";
import { parseSendFlags, type SendFlags } from "./send.ts";

/** The subcommands; `serve` is the default. */
export const COMMANDS = ["serve", "list", "show", "wait", "purge", "send"] as const;
export type CommandName = typeof COMMANDS[number];

/** Defaults of the companion commands (SPEC §2). */
export const WAIT_DEFAULTS = { count: 1, timeout: "30s" } as const;

/** What the command line asks for. */
export type Invocation =
  | { command: "help"; topic: CommandName }
  | { command: "version" }
  | {
    command: "serve";
    options: ServeOptions;
    /** `--flag` → `SMTPD_FLAG (--flag)` for each value taken from a variable, to name both in errors. */
    envNames: Readonly<Record<string, string>>;
  }
  | { command: "list"; spool: string; json: boolean }
  | { command: "show"; spool: string; id: string; meta: boolean }
  | {
    command: "wait";
    spool: string;
    count: number;
    filter: MessageFilter;
    timeoutMs: number;
    /** The timeout as the user wrote it, for the time-out message. */
    timeoutText: string;
  }
  | { command: "purge"; spool: string; olderThanMs?: number }
  | { command: "send"; send: SendFlags };

type Kind =
  | "string"
  | "boolean"
  | "size"
  | "count"
  | "duration"
  | "hostport"
  | "regex"
  | "level"
  | "format";

interface FlagSpec {
  kind: Kind;
  /** Repeatable; the variable holds several values split by `split`. */
  split?: "lines" | "list";
  /** The `ServeOptions` key, when not the camelCase flag name. */
  key?: keyof ServeOptions;
}

/** SPEC §2, in table order. */
export const SERVE_FLAGS: Readonly<Record<string, FlagSpec>> = {
  "spool": { kind: "string" },
  "listen": { kind: "hostport", split: "list" },
  "listen-tls": { kind: "hostport", split: "list" },
  "hostname": { kind: "string" },
  "tls-cert": { kind: "string" },
  "tls-key": { kind: "string" },
  "tls-self-signed": { kind: "boolean" },
  "require-tls": { kind: "boolean" },
  "auth-file": { kind: "string" },
  "require-auth": { kind: "boolean" },
  "max-size": { kind: "size" },
  "max-recipients": { kind: "count" },
  "max-connections": { kind: "count" },
  "timeout": { kind: "duration" },
  "on-message": { kind: "string", key: "onMessageCommand" },
  "no-fsync": { kind: "boolean" },
  "log-level": { kind: "level" },
  "log-format": { kind: "format" },
  "log-file": { kind: "string" },
  "ready-file": { kind: "string" },
  "exit-after": { kind: "count" },
  // Regexes and fault rules may contain commas and spaces: one per line in the variable.
  "accept-rcpt": { kind: "regex", split: "lines" },
  "fault": { kind: "string", split: "lines", key: "faults" },
  "trust-proxy": { kind: "string", split: "list" },
  // Not in SPEC §2: a second serving thread (README, "Two serving threads").
  "threads": { kind: "count" },
};

const TRUE_WORDS = ["1", "true", "yes"];
const FALSE_WORDS = ["0", "false", "no", ""];

/** `--max-size` → `SMTPD_MAX_SIZE`. */
export function envName(flag: string): string {
  return "SMTPD_" + flag.toUpperCase().replaceAll("-", "_");
}

function camelCase(flag: string): string {
  return flag.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());
}

/** A whole number ≥ `min`; `"1e3"`, `"2.5"` and `"-1"` are refused. */
export function parseCount(text: string, min = 1): number {
  const n = /^\d+$/.test(text.trim()) ? Number(text.trim()) : NaN;
  if (!Number.isSafeInteger(n) || n < min) {
    const what = min === 1 ? "a positive whole number" : `a whole number of at least ${min}`;
    throw new SyntaxError(`Cannot parse "${text}": expected ${what}`);
  }
  return n;
}

function oneOf<T extends string>(text: string, allowed: readonly T[]): T {
  const found = allowed.find((a) => a === text.trim().toLowerCase());
  if (found === undefined) {
    const list = allowed.slice(0, -1).join(", ") + " or " + allowed.at(-1);
    throw new SyntaxError(`Cannot use "${text}": expected ${list}`);
  }
  return found;
}

/** Refuses `""`, which no flag takes as a value. */
function nonEmpty(text: string): string {
  if (text === "") throw new SyntaxError(`Cannot use "": expected a value`);
  return text;
}

type Value = string | number | boolean | LogLevel | LogFormat;

function convert(kind: Kind, text: string): Value {
  switch (kind) {
    case "string":
      return nonEmpty(text);
    case "boolean":
      return true;
    case "size": {
      // --max-size 0 sets no limit; a fraction of a byte is not a way to write it.
      const size = parseSize(text);
      if (size === 0 && parseFloat(text) !== 0) {
        throw new RangeError(`Cannot use "${text}": expected 0 (no limit) or at least 1 byte`);
      }
      return size;
    }
    case "count":
      return parseCount(text);
    case "duration": {
      const ms = parseDuration(text);
      if (ms < 1) throw new RangeError(`Cannot use "${text}": expected a duration above 0`);
      return ms;
    }
    case "hostport":
      parseHostPort(text);
      return text.trim();
    case "regex":
      // An empty regex matches every address: `--accept-rcpt "$UNSET"` must not open the list.
      nonEmpty(text);
      try {
        new RegExp(text);
      } catch (e: unknown) {
        throw new SyntaxError(`Cannot parse "${text}": ${(e as Error).message}`);
      }
      return text;
    case "level":
      return oneOf(text, LOG_LEVELS);
    case "format":
      return oneOf(text, LOG_FORMATS);
    default: {
      const unhandled: never = kind;
      throw new Error(`Unhandled flag kind ${unhandled}`);
    }
  }
}

function envBoolean(name: string, text: string): boolean {
  const word = text.trim().toLowerCase();
  if (TRUE_WORDS.includes(word)) return true;
  if (FALSE_WORDS.includes(word)) return false;
  throw new UsageError(`Cannot parse "${text}": expected 1, true, yes, 0, false or no`, name);
}

function envValues(spec: FlagSpec, text: string): string[] {
  const parts = spec.split === "lines" ? text.split(/\r?\n/) : text.split(/[\s,]+/);
  return parts.map((p) => spec.split === "lines" ? p.trim() : p).filter((p) => p !== "");
}

/** node:util parseArgs options for a flag table, plus --help/-h and --version. */
function parseArgsOptions(
  flags: Readonly<Record<string, FlagSpec>>,
): Record<string, { type: "string" | "boolean"; multiple?: boolean; short?: string }> {
  const options: Record<
    string,
    { type: "string" | "boolean"; multiple?: boolean; short?: string }
  > = { help: { type: "boolean", short: "h" }, version: { type: "boolean" } };
  for (const [name, spec] of Object.entries(flags)) {
    options[name] = spec.kind === "boolean"
      ? { type: "boolean" }
      : { type: "string", ...(spec.split ? { multiple: true } : {}) };
  }
  return options;
}

/** Values from node:util parseArgs. */
export type Values = Record<string, string | boolean | (string | boolean)[] | undefined>;

/** Strict parseArgs with its errors turned into one-line UsageErrors naming the flag. */
function strictParse(
  command: CommandName,
  args: readonly string[],
  flags: Readonly<Record<string, FlagSpec>>,
  positionals: number,
): { values: Values; positionals: string[] } {
  const assigned = booleanAssignments(args, flags);
  try {
    const result = parseArgs({
      args: assigned.args,
      options: parseArgsOptions(flags),
      strict: true,
      allowPositionals: positionals > 0,
    });
    if (result.positionals.length > positionals) {
      throw new UsageError(`unexpected argument "${result.positionals[positionals]}"`);
    }
    const values = result.values as Values;
    // The last of `--flag` and `--flag=false` wins.
    for (const [name, on] of assigned.last) if (!on) values[name] = false;
    return { values, positionals: result.positionals };
  } catch (e: unknown) {
    if (e instanceof UsageError) throw e;
    const code = (e as { code?: string }).code;
    const message = e instanceof Error ? e.message : String(e);
    // Node names a flag with a short form as '-h, --help': take the long one.
    const flag = /'(?:-[^-' ], )?(-[^' ]*)/.exec(message)?.[1];
    const help = `see smtpd ${command === "serve" ? "" : command + " "}--help`;
    if (code === "ERR_PARSE_ARGS_UNKNOWN_OPTION") {
      throw new UsageError(`unknown flag (${help})`, flag);
    }
    if (code === "ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL") {
      const arg = /'([^']*)'/.exec(message)?.[1] ?? "";
      // `smtpd --spool X list`: the command must come first.
      const hint = command === "serve" && (COMMANDS as readonly string[]).includes(arg)
        ? ` (the command comes first: smtpd ${arg} [flags])`
        : "";
      throw new UsageError(`unexpected argument "${arg}"${hint}`);
    }
    if (code === "ERR_PARSE_ARGS_INVALID_OPTION_VALUE") {
      if (message.includes("does not take an argument")) {
        throw new UsageError("takes no value", flag);
      }
      throw new UsageError(`expected a value (write ${flag}=VALUE for one starting with -)`, flag);
    }
    throw e;
  }
}

/**
 * `--flag=true` and `--flag=false` (or 1/yes, 0/no) for a boolean flag, so a
 * flag can also switch off what its `SMTPD_*` variable switched on (flags
 * win over variables, SPEC §2). Returns the arguments parseArgs can read
 * (`--flag=true` becomes `--flag`, `--flag=false` is taken out) and the last
 * state named for each boolean flag.
 */
function booleanAssignments(
  args: readonly string[],
  flags: Readonly<Record<string, FlagSpec>>,
): { args: string[]; last: Map<string, boolean> } {
  const out: string[] = [];
  const last = new Map<string, boolean>();
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    if (arg === "--") {
      out.push(...args.slice(i));
      break;
    }
    // parseArgs would read `-h=1` as the short flags -h, -= and -1.
    if (arg.startsWith("-h=")) throw new UsageError("takes no value", "--help");
    const m = /^--([^=]+)(?:=(.*))?$/s.exec(arg);
    if (m === null || flags[m[1]!]?.kind !== "boolean") {
      out.push(arg);
      continue;
    }
    const name = m[1]!;
    if (m[2] === undefined) {
      last.set(name, true);
      out.push(arg);
      continue;
    }
    const word = m[2].trim().toLowerCase();
    const on = TRUE_WORDS.includes(word)
      ? true
      : FALSE_WORDS.includes(word) && word !== ""
      ? false
      : null;
    if (on === null) {
      throw new UsageError(`expected true or false (1/0, yes/no), found "${m[2]}"`, `--${name}`);
    }
    last.set(name, on);
    if (on) out.push(`--${name}`);
  }
  return { args: out, last };
}

function wantsHelp(args: readonly string[]): boolean {
  const end = args.indexOf("--");
  const head = end < 0 ? args : args.slice(0, end);
  return head.includes("--help") || head.includes("-h");
}

/**
 * Builds `ServeOptions` from serve flags and `SMTPD_*` variables. A flag given
 * on the command line replaces its variable entirely (also for repeatable ones).
 */
function serveOptions(
  values: Values,
  env: Readonly<Record<string, string>>,
): { options: ServeOptions; envNames: Record<string, string> } {
  const options: Record<string, unknown> = {};
  const envNames: Record<string, string> = {};
  for (const [flag, spec] of Object.entries(SERVE_FLAGS)) {
    const key = spec.key ?? camelCase(flag);
    const given = values[flag];
    if (given !== undefined) {
      options[key] = Array.isArray(given)
        ? given.map((v) => checked(`--${flag}`, () => convert(spec.kind, String(v))))
        : spec.kind === "boolean"
        ? given === true
        : checked(`--${flag}`, () => convert(spec.kind, String(given)));
      continue;
    }
    const name = envName(flag);
    const text = env[name];
    if (text === undefined) continue;
    // Errors name the variable, where the value came from, and the flag (SPEC §2).
    const label = `${name} (--${flag})`;
    if (spec.kind === "boolean") {
      if (envBoolean(label, text)) {
        options[key] = true;
        envNames[`--${flag}`] = label;
      }
      continue;
    }
    // An empty variable (`SMTPD_LOG_FILE=` in a compose file) means "not set".
    if (text.trim() === "") continue;
    envNames[`--${flag}`] = label;
    options[key] = spec.split
      ? envValues(spec, text).map((v) => checked(label, () => convert(spec.kind, v)))
      : checked(label, () => convert(spec.kind, text));
  }
  const serve = options as ServeOptions;
  preferCommandLineTls(serve, envNames);
  const named = (flag: string) => envNames[flag] ?? flag;
  const tls = serve.tlsCert !== undefined || serve.tlsSelfSigned === true;
  if (serve.tlsCert !== undefined && serve.tlsKey === undefined) {
    throw new UsageError("needs --tls-key as well", named("--tls-cert"));
  }
  if (serve.tlsKey !== undefined && serve.tlsCert === undefined) {
    throw new UsageError("needs --tls-cert as well", named("--tls-key"));
  }
  // Both would leave it unclear which certificate is served (and logged).
  if (serve.tlsSelfSigned === true && (serve.tlsCert !== undefined || serve.tlsKey !== undefined)) {
    throw new UsageError(
      "cannot be combined with --tls-cert/--tls-key",
      named("--tls-self-signed"),
    );
  }
  if (serve.requireTls && !tls) {
    throw new UsageError(
      "needs --tls-cert and --tls-key, or --tls-self-signed",
      named("--require-tls"),
    );
  }
  if ((serve.listenTls?.length ?? 0) > 0 && !tls) {
    throw new UsageError(
      "needs --tls-cert and --tls-key, or --tls-self-signed",
      named("--listen-tls"),
    );
  }
  return { options: serve, envNames };
}

/**
 * Flags win over variables (SPEC §2), also between the two ways to get a
 * certificate: `--tls-cert`/`--tls-key` on the command line set aside
 * `SMTPD_TLS_SELF_SIGNED`, and `--tls-self-signed` sets aside
 * `SMTPD_TLS_CERT`/`SMTPD_TLS_KEY`. Both from one source still conflict.
 */
function preferCommandLineTls(serve: ServeOptions, envNames: Record<string, string>): void {
  const fromFlag = (flag: string, set: boolean) => set && envNames[flag] === undefined;
  const filesByFlag = fromFlag("--tls-cert", serve.tlsCert !== undefined) ||
    fromFlag("--tls-key", serve.tlsKey !== undefined);
  if (filesByFlag && envNames["--tls-self-signed"] !== undefined) {
    delete serve.tlsSelfSigned;
    delete envNames["--tls-self-signed"];
  }
  if (fromFlag("--tls-self-signed", serve.tlsSelfSigned === true)) {
    for (const [flag, key] of [["--tls-cert", "tlsCert"], ["--tls-key", "tlsKey"]] as const) {
      if (envNames[flag] === undefined) continue;
      delete serve[key];
      delete envNames[flag];
    }
  }
}

const SPOOL_FLAG: Record<string, FlagSpec> = { spool: { kind: "string" } };

const COMPANION_FLAGS: Record<Exclude<CommandName, "serve">, Record<string, FlagSpec>> = {
  list: { ...SPOOL_FLAG, json: { kind: "boolean" } },
  show: { ...SPOOL_FLAG, meta: { kind: "boolean" } },
  wait: {
    ...SPOOL_FLAG,
    count: { kind: "count" },
    from: { kind: "string" },
    to: { kind: "string" },
    subject: { kind: "string" },
    timeout: { kind: "duration" },
  },
  purge: { ...SPOOL_FLAG, "older-than": { kind: "duration" } },
  send: {
    server: { kind: "hostport" },
    tls: { kind: "boolean" },
    starttls: { kind: "boolean" },
    insecure: { kind: "boolean" },
    ca: { kind: "string", split: "list" },
    auth: { kind: "string" },
    helo: { kind: "string" },
    from: { kind: "string" },
    to: { kind: "string", split: "list" },
    timeout: { kind: "duration" },
  },
};

/** Companion commands read only `SMTPD_SPOOL`: `SMTPD_TIMEOUT` is the server's idle limit. */
function spoolOf(values: Values, env: Readonly<Record<string, string>>): string {
  const flag = values["spool"];
  if (typeof flag === "string") return checked("--spool", () => nonEmpty(flag));
  const fromEnv = env[envName("spool")];
  return fromEnv !== undefined && fromEnv.trim() !== "" ? fromEnv : "./spool";
}

/** The string value of a flag, if given. */
function text(values: Values, name: string): string | undefined {
  const value = values[name];
  return typeof value === "string" ? value : undefined;
}

/**
 * Parses a whole command line.
 *
 * @param argv The arguments after the program name.
 * @param env The environment (only `SMTPD_*` is read).
 * @returns The command to run, with validated values.
 * @throws {UsageError} For anything wrong; `flag` names the flag or variable.
 *
 * @example Usage
 * ```ts ignore
 * import { parseCommandLine } from "./flags.ts";
 * parseCommandLine(["--max-size", "1MiB"], { SMTPD_NO_FSYNC: "1" });
 * // { command: "serve", options: { maxSize: 1048576, noFsync: true }, envNames: {} }
 * ```
 */
export function parseCommandLine(
  argv: readonly string[],
  env: Readonly<Record<string, string>>,
): Invocation {
  let command: CommandName = "serve";
  let args = argv;
  const first = argv[0];
  if (first === "help") {
    // `smtpd help help` asks how help works: the general help says it.
    const topic = argv[1] === undefined || argv[1] === "help" ? "serve" : argv[1];
    if (!(COMMANDS as readonly string[]).includes(topic)) {
      throw new UsageError(`unknown command "${topic}" (commands: ${COMMANDS.join(", ")})`);
    }
    return { command: "help", topic: topic as CommandName };
  }
  if (first !== undefined && (COMMANDS as readonly string[]).includes(first)) {
    command = first as CommandName;
    args = argv.slice(1);
  } else if (first !== undefined && !first.startsWith("-")) {
    throw new UsageError(`unknown command "${first}" (commands: ${COMMANDS.join(", ")})`);
  }
  if (wantsHelp(args)) return { command: "help", topic: command };

  if (command === "serve") {
    const { values } = strictParse(command, args, SERVE_FLAGS, 0);
    if (values["version"] === true) return { command: "version" };
    return { command, ...serveOptions(values, env) };
  }
  const flags = COMPANION_FLAGS[command];
  const positionals = command === "show" || command === "send" ? 1 : 0;
  const { values, positionals: rest } = strictParse(command, args, flags, positionals);
  if (values["version"] === true) return { command: "version" };
  switch (command) {
    case "list":
      return { command, spool: spoolOf(values, env), json: values["json"] === true };
    case "show": {
      const id = rest[0];
      if (id === undefined) throw new UsageError("expected a message ID or latest");
      return { command, spool: spoolOf(values, env), id, meta: values["meta"] === true };
    }
    case "wait": {
      const timeoutText = text(values, "timeout") ?? WAIT_DEFAULTS.timeout;
      const filter: MessageFilter = {};
      for (const key of ["from", "to", "subject"] as const) {
        const value = text(values, key);
        if (value !== undefined) filter[key] = checked(`--${key}`, () => nonEmpty(value));
      }
      return {
        command,
        spool: spoolOf(values, env),
        count: checked("--count", () => parseCount(text(values, "count") ?? "1")),
        filter,
        // 0 is allowed: look once, do not wait.
        timeoutMs: checked("--timeout", () => parseDuration(timeoutText)),
        timeoutText,
      };
    }
    case "purge": {
      const olderThan = text(values, "older-than");
      return {
        command,
        spool: spoolOf(values, env),
        ...(olderThan === undefined
          ? {}
          : { olderThanMs: checked("--older-than", () => parseDuration(olderThan)) }),
      };
    }
    case "send":
      return { command, send: parseSendFlags(values, rest) };
    default: {
      const unhandled: never = command;
      throw new Error(`Unhandled command ${unhandled}`);
    }
  }
}
