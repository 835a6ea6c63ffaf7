/**
 * `smtpd send`: one message to an SMTP server (SPEC §2), for smoke tests and relays.
 *
 * @module
 */

import {
  DotStuffer,
  isSendableAddress,
  isSendableHelo,
  parseDuration,
  parseHostPort,
  SendError,
  sendMail,
  type SendOptions,
} from "../mod.ts";
import { checked, EXIT_FAILURE, EXIT_OK, RunError, UsageError } from "./errors.ts";
import type { Values } from "./flags.ts";
import type { Io } from "./main.ts";

/** Flags of `send`, validated; files are read when sending. */
export interface SendFlags {
  host: string;
  port: number;
  tls: boolean;
  starttls: boolean;
  insecure: boolean;
  /** `--ca` PEM files. */
  caFiles: string[];
  auth?: { user: string; pass: string };
  helo?: string;
  from: string;
  to: string[];
  /** Message file; undefined or `-` reads stdin. */
  file?: string;
  timeoutMs: number;
}

/** `<a@b>` → `a@b`, `<>` → `""`: users paste addresses either way. */
function address(label: string, value: string): string {
  const match = /^<(.*)>$/s.exec(value.trim());
  const bare = match ? match[1]! : value.trim();
  // Checked here too, so that the usage error names the flag (exit 2).
  if (!isSendableAddress(bare)) {
    throw new UsageError(
      `Cannot use ${JSON.stringify(value)}: an address holds no space, control character, < or >`,
      label,
    );
  }
  return bare;
}

/** A zero limit could never even connect. */
function positiveDuration(text: string): number {
  const ms = parseDuration(text);
  if (ms < 1) throw new RangeError(`Cannot use "${text}": expected a duration above 0`);
  return ms;
}

function filled(label: string, value: string): string {
  if (value === "") throw new UsageError(`Cannot use "": expected a value`, label);
  return value;
}

/**
 * Validates the parsed `send` flags.
 *
 * @param values Flag values from node:util parseArgs.
 * @param positionals At most one: FILE or `-`.
 * @returns The flags, checked.
 * @throws {UsageError} For a missing or bad flag.
 */
export function parseSendFlags(values: Values, positionals: string[]): SendFlags {
  const text = (name: string): string | undefined => {
    const value = values[name];
    return typeof value === "string" ? value : undefined;
  };
  const server = text("server");
  if (server === undefined) throw new UsageError("required (HOST:PORT)", "--server");
  const { host, port } = checked("--server", () => parseHostPort(server));
  const from = text("from");
  if (from === undefined) throw new UsageError(`required (use --from "" for <>)`, "--from");
  const to = ((values["to"] ?? []) as string[]).map((t) => address("--to", t));
  if (to.length === 0) throw new UsageError("required: at least one address", "--to");
  if (to.some((t) => t === "")) {
    throw new UsageError("an empty address (<> is only a sender)", "--to");
  }
  if (values["tls"] === true && values["starttls"] === true) {
    throw new UsageError("cannot be combined with --starttls", "--tls");
  }
  const result: SendFlags = {
    host,
    port,
    tls: values["tls"] === true,
    starttls: values["starttls"] === true,
    insecure: values["insecure"] === true,
    caFiles: ((values["ca"] ?? []) as string[]).map((f) => filled("--ca", f)),
    from: address("--from", from),
    to,
    timeoutMs: checked("--timeout", () => positiveDuration(text("timeout") ?? "60s")),
  };
  const auth = text("auth");
  if (auth !== undefined) {
    const colon = auth.indexOf(":");
    // The value is not repeated: without its colon it may be all password.
    if (colon < 1) throw new UsageError("expected USER:PASS", "--auth");
    result.auth = { user: auth.slice(0, colon), pass: auth.slice(colon + 1) };
  }
  const helo = text("helo");
  if (helo !== undefined) {
    if (!isSendableHelo(helo)) {
      throw new UsageError(
        `Cannot use ${JSON.stringify(helo)}: a space or control character`,
        "--helo",
      );
    }
    result.helo = filled("--helo", helo);
  }
  if (positionals[0] !== undefined) result.file = positionals[0];
  return result;
}

async function readCa(path: string): Promise<string> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (e: unknown) {
    throw new RunError(`send: cannot read --ca ${path}: ${(e as Error).message}`);
  }
  // TLS would ignore it silently and fail later with "UnknownIssuer", naming nothing.
  if (!text.includes("-----BEGIN CERTIFICATE-----")) {
    throw new RunError(`send: --ca ${path} holds no PEM certificate (-----BEGIN CERTIFICATE-----)`);
  }
  return text;
}

/**
 * The message source: a file or stdin. A regular file is read twice through
 * one handle: once for what MAIL declares (the size on the wire after CRLF
 * conversion, RFC 1870 §4, and whether it needs `BODY=8BITMIME`), then
 * streamed. Stdin, and a file that is not a regular one (a pipe, `<(…)`,
 * a FIFO: a second read would find it empty, or wait for a writer), is
 * streamed once and declares neither.
 */
async function source(
  file: string | undefined,
  io: Io,
): Promise<{ message: ReadableStream<Uint8Array>; size?: number; eightBit?: boolean }> {
  if (file === undefined || file === "-") return { message: io.stdin };
  let handle: Deno.FsFile | undefined;
  try {
    handle = await Deno.open(file);
    const info = await handle.stat();
    // Opening a directory works; reading it fails only once DATA has begun.
    if (info.isDirectory) throw new Deno.errors.IsADirectory("is a directory");
    if (!info.isFile) return { message: handle.readable };
    const scan = new DotStuffer();
    const buffer = new Uint8Array(64 * 1024);
    for (let n; (n = await handle.read(buffer)) !== null;) scan.push(buffer.subarray(0, n));
    scan.end();
    await handle.seek(0, Deno.SeekMode.Start);
    return { message: handle.readable, size: scan.size, eightBit: scan.eightBit };
  } catch (e: unknown) {
    handle?.close();
    throw new RunError(`send: cannot read ${file}: ${(e as Error).message}`);
  }
}

/**
 * Sends the message and prints the server's final reply on stdout.
 *
 * @param flags Validated `send` flags.
 * @param io Streams; stdin is the message when no FILE is given.
 * @returns 0 when every recipient was accepted; 1 when some were refused (each printed).
 * @throws {RunError} On a non-2xx reply or a connection failure, as one line.
 */
export async function runSend(flags: SendFlags, io: Io): Promise<number> {
  const caCerts = await Promise.all(flags.caFiles.map(readCa));
  const { message, size, eightBit } = await source(flags.file, io);
  const options: SendOptions = {
    host: flags.host,
    port: flags.port,
    tls: flags.tls,
    starttls: flags.starttls,
    insecure: flags.insecure,
    from: flags.from,
    to: flags.to,
    message,
    timeoutMs: flags.timeoutMs,
    ...(caCerts.length > 0 ? { caCerts } : {}),
    ...(flags.auth ? { auth: flags.auth } : {}),
    ...(flags.helo ? { helo: flags.helo } : {}),
    ...(size !== undefined ? { size } : {}),
    ...(eightBit ? { eightBit } : {}),
  };
  let result;
  try {
    result = await sendMail(options);
  } catch (e: unknown) {
    if (e instanceof SendError) throw new RunError(`send: ${e.message}`);
    throw e;
  } finally {
    // An unread file stream keeps its handle open.
    await message.cancel().catch(() => {});
  }
  io.stdout(result.reply + "\n");
  for (const refused of result.rejected) {
    io.stderr(`smtpd: send: ${refused.code} ${refused.text} (${refused.address})\n`);
  }
  return result.rejected.length === 0 ? EXIT_OK : EXIT_FAILURE;
}
