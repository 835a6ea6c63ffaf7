/**
 * The SMTP client behind `smtpd send` (SPEC §2): one message, one connection,
 * RFC 5321 with the ESMTP pieces a smoke test needs (SIZE, STARTTLS, AUTH).
 * The message is streamed from its source, never read whole.
 *
 * @module
 */

import { nodeConnect, nodeStartTls, NodeWire, type Wire } from "./_node_wire.ts";
import { DotStuffer } from "./dot_stuffer.ts";
import { timerDelay } from "../units.ts";

export { DotStuffer };

/** Options of {@linkcode sendMail}. */
export interface SendOptions {
  /** Server host name or address (IPv6 without brackets). */
  host: string;
  port: number;
  /** Implicit TLS from the first byte (SMTPS, port 465). */
  tls?: boolean;
  /** Upgrade with STARTTLS after EHLO (RFC 3207); fails when not offered. */
  starttls?: boolean;
  /** Extra trusted root certificates (PEM), e.g. the server's self-signed one. */
  caCerts?: string[];
  /** Accept any certificate (self-signed, wrong name, expired). */
  insecure?: boolean;
  /** AUTH PLAIN (or LOGIN when PLAIN is not offered) with these credentials. */
  auth?: { user: string; pass: string };
  /** EHLO/HELO name; default `localhost`. */
  helo?: string;
  /** Reverse-path; `""` sends the null path `<>`. */
  from: string;
  to: string[];
  /** The message: bytes, text, or a stream (read once, chunk by chunk). */
  message: ReadableStream<Uint8Array> | Uint8Array | string;
  /** Message size when known beforehand (a file's size): sent as `SIZE=` and checked. */
  size?: number;
  /** The message has bytes above 127: MAIL declares `BODY=8BITMIME` where offered (RFC 6152). */
  eightBit?: boolean;
  /** Limit for the connection and for each reply; default 60 s. */
  timeoutMs?: number;
}

/** What {@linkcode sendMail} resolves to. */
export interface SendResult {
  /** The last line of the reply to the end of data, e.g. `250 2.0.0 Ok: queued as 01K…`. */
  reply: string;
  /** The id in `queued as <id>`, when the server said one. */
  id?: string;
  /** Recipients the server refused while others were accepted (message sent to the rest). */
  rejected: { address: string; code: number; text: string }[];
}

/**
 * A failed send. `code` is the server's reply code (`550`) with `text` the
 * rest of the reply (`5.1.1 No such user`); `code` is 0 when there is no
 * reply to blame (connection refused, TLS failure, time-out, closed early).
 */
export class SendError extends Error {
  override name = "SendError";
  readonly code: number;
  readonly text: string;
  /** The command the reply answers (`RCPT TO:<b@example.com>`), `""` for none. */
  readonly command: string;
  constructor(code: number, text: string, command = "") {
    super(code === 0 ? text : `${code} ${text}`);
    this.code = code;
    this.text = text;
    this.command = command;
  }
}

/** RFC 5321 §4.5.3.2: the longest wait for any reply is 10 minutes; 60 s suits a smoke test. */
export const DEFAULT_SEND_TIMEOUT_MS = 60_000;
/** RFC 5321 §4.5.3.1.5 sets 512 octets per reply line; we tolerate far more, but not unbounded. */
const MAX_REPLY_LINE_OCTETS = 64 * 1024;
/** Bounds a multi-line reply (EHLO lists are ~20 lines). */
const MAX_REPLY_LINES = 1000;
const READ_CHUNK = 16 * 1024;
/** QUIT is a courtesy: do not hang on a server that never answers it. */
const QUIT_TIMEOUT_MS = 5_000;
/** How errors name the wait for the reply to the final dot. */
const END_OF_DATA = "end of data";

interface Reply {
  code: number;
  /** Text of each line after `NNN-`/`NNN `. */
  lines: string[];
  last: string;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** Reads CRLF (or bare LF) reply lines; remembers unread bytes. */
class ReplyReader {
  #wire: Wire;
  #buf = new Uint8Array(0);
  #timeoutMs: number;

  constructor(wire: Wire, timeoutMs: number) {
    this.#wire = wire;
    this.#timeoutMs = timeoutMs;
  }

  /** Bytes received but not consumed; non-zero before a TLS upgrade means an injection. */
  get buffered(): number {
    return this.#buf.length;
  }

  async #line(command: string, timeoutMs: number): Promise<string> {
    for (;;) {
      const lf = this.#buf.indexOf(0x0a);
      if (lf >= 0) {
        const end = lf > 0 && this.#buf[lf - 1] === 0x0d ? lf - 1 : lf;
        const line = decoder.decode(this.#buf.subarray(0, end));
        this.#buf = this.#buf.subarray(lf + 1);
        return line;
      }
      if (this.#buf.length > MAX_REPLY_LINE_OCTETS) {
        throw new SendError(0, `reply line longer than ${MAX_REPLY_LINE_OCTETS} bytes`, command);
      }
      const chunk = new Uint8Array(READ_CHUNK);
      const n = await withTimeout(this.#wire, this.#wire.read(chunk), timeoutMs, command);
      if (n === null) {
        throw new SendError(0, `server closed the connection${after(command)}`, command);
      }
      const joined = new Uint8Array(this.#buf.length + n);
      joined.set(this.#buf);
      joined.set(chunk.subarray(0, n), this.#buf.length);
      this.#buf = joined;
    }
  }

  /** RFC 5321 §4.2.1: `NNN-text` lines continue, `NNN text` (or `NNN`) ends the reply. */
  async read(command: string, timeoutMs = this.#timeoutMs): Promise<Reply> {
    const lines: string[] = [];
    for (let i = 0; i < MAX_REPLY_LINES; i++) {
      const line = await this.#line(command, timeoutMs);
      const match = /^([2-5]\d\d)([ -]|$)(.*)$/.exec(line);
      if (!match) {
        throw new SendError(0, `bad reply from server${after(command)}: ${JSON.stringify(line)}`);
      }
      lines.push(match[3]!);
      if (match[2] !== "-") return { code: Number(match[1]), lines, last: line };
    }
    throw new SendError(0, `reply longer than ${MAX_REPLY_LINES} lines${after(command)}`, command);
  }
}

/** The phases `withTimeout` names that are no command. */
const HANDSHAKE = "TLS handshake";
const STARTTLS_HANDSHAKE = "TLS handshake after STARTTLS";

/** Names the step in an error: a command by its verb only (its arguments may hold secrets). */
function after(command: string): string {
  if (command === "") return " before its greeting";
  if (command === HANDSHAKE || command === STARTTLS_HANDSHAKE) return ` in the ${command}`;
  return ` after ${command === END_OF_DATA ? command : command.split(" ")[0]}`;
}

/**
 * Races `op` against a timer that closes the wire, which also ends the
 * pending read: with an error (Deno) or as end of stream (node:net).
 */
async function withTimeout<T>(wire: Wire, op: Promise<T>, ms: number, command: string): Promise<T> {
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    wire.close();
  }, ms);
  const expired = () =>
    new SendError(0, `timed out after ${ms / 1000}s waiting for the server${after(command)}`);
  try {
    const result = await op;
    if (timedOut) throw expired();
    return result;
  } catch (e: unknown) {
    throw timedOut ? expired() : e;
  } finally {
    clearTimeout(timer);
  }
}

async function writeAll(wire: Wire, bytes: Uint8Array): Promise<void> {
  for (let off = 0; off < bytes.length;) off += await wire.write(bytes.subarray(off));
}

async function* chunks(message: SendOptions["message"]): AsyncIterable<Uint8Array> {
  if (typeof message === "string") yield encoder.encode(message);
  else if (message instanceof Uint8Array) yield message;
  else yield* message;
}

/**
 * What may not appear in an address sent as `<address>` on a command line:
 * CR or LF would end the command and start another (command injection), `<`
 * or `>` end the path, and a space or other control ends it for the server.
 */
const UNSAFE_ADDRESS_REGEXP = /[\p{Cc}\s<>]/u;

/**
 * Whether `address` can be sent as `<address>` (see {@linkcode sendMail}).
 *
 * @param address A mailbox without angle brackets (`""` for the null path).
 * @returns False when it holds a space, a control character, `<` or `>`.
 */
export function isSendableAddress(address: string): boolean {
  return !UNSAFE_ADDRESS_REGEXP.test(address);
}

/**
 * Whether `name` can follow `EHLO`: no space or control character, since
 * CR LF would start a command of the caller's making and a space would add
 * an argument.
 *
 * @param name The EHLO/HELO name.
 * @returns False for a name `sendMail` refuses.
 */
export function isSendableHelo(name: string): boolean {
  return !/[\s\p{Cc}]/u.test(name);
}

function reversePath(address: string): string {
  return address === "" || address === "<>" ? "<>" : `<${address}>`;
}

function base64(text: string): string {
  let binary = "";
  for (const b of encoder.encode(text)) binary += String.fromCharCode(b);
  return btoa(binary);
}

/** EHLO keywords (upper case) → their parameters. */
function extensions(reply: Reply): Map<string, string[]> {
  const map = new Map<string, string[]>();
  for (const line of reply.lines.slice(1)) {
    const [keyword, ...params] = line.trim().split(/\s+/);
    if (!keyword) continue;
    // Old servers write `AUTH=PLAIN LOGIN` (pre-RFC 4954 syntax).
    const [name, first] = keyword.toUpperCase().split("=", 2);
    map.set(name!, first ? [first, ...params] : params);
  }
  return map;
}

/**
 * Sends one message over SMTP and resolves with the server's final reply.
 *
 * @param options Server, envelope, message and TLS/AUTH settings.
 * @returns The reply to the end of data and the queue id it names.
 * @throws {SendError} On any non-2xx reply, or a connection/TLS failure or time-out.
 *
 * @example Send a short message
 * ```ts ignore
 * import { sendMail } from "./client.ts";
 * const { reply } = await sendMail({
 *   host: "127.0.0.1",
 *   port: 1025,
 *   from: "alice@example.com",
 *   to: ["bob@example.com"],
 *   message: "Subject: hi\r\n\r\nHello\r\n",
 * });
 * ```
 */
export async function sendMail(options: SendOptions): Promise<SendResult> {
  if (options.to.length === 0) throw new SendError(0, "no recipients");
  if (options.tls && options.starttls) throw new SendError(0, "choose tls or starttls, not both");
  for (const address of [options.from === "<>" ? "" : options.from, ...options.to]) {
    if (!isSendableAddress(address)) {
      throw new SendError(
        0,
        `Cannot use address ${
          JSON.stringify(address)
        }: it holds a space, a control character, < or >`,
      );
    }
  }
  if (options.helo !== undefined && !isSendableHelo(options.helo)) {
    throw new SendError(
      0,
      `Cannot use helo ${JSON.stringify(options.helo)}: it holds a space or a control character`,
    );
  }
  // Timers overflow past 2^31-1 ms (and fire at once): a longer limit is "never".
  const timeoutMs = timerDelay(options.timeoutMs ?? DEFAULT_SEND_TIMEOUT_MS);
  const label = `${
    options.host.includes(":") ? `[${options.host}]` : options.host
  }:${options.port}`;
  const chat = new Chat(await connect(options, timeoutMs, label), timeoutMs);
  try {
    chat.expect(await chat.reader.read(""), "", (code) => code === 220);
    let ext = await hello(chat, options.helo ?? "localhost");
    if (options.starttls) {
      if (!ext.has("STARTTLS")) throw new SendError(0, `${label} does not offer STARTTLS`);
      chat.expect(await chat.command("STARTTLS"), "STARTTLS");
      // CVE-2011-0411 class: bytes after the 220 came before TLS; never act on them.
      if (chat.reader.buffered > 0) throw new SendError(0, "unexpected data after STARTTLS reply");
      chat.upgraded(await upgrade(chat.wire, options, timeoutMs, label));
      ext = await hello(chat, options.helo ?? "localhost");
    }
    // RFC 1870 §4: do not send what the server said it will refuse.
    const maxSize = Number(ext.get("SIZE")?.[0] ?? 0);
    if (options.size !== undefined && maxSize > 0 && options.size > maxSize) {
      // Our own refusal, not a reply: it must not read like one (code 0).
      const text =
        `the message is ${options.size} bytes; the server accepts at most ${maxSize} (SIZE)`;
      throw new SendError(0, text, "EHLO");
    }
    if (options.auth) await authenticate(chat, ext.get("AUTH"), options.auth, label);

    const params: string[] = [];
    if (options.size !== undefined && ext.has("SIZE")) params.push(`SIZE=${options.size}`);
    if (options.eightBit && ext.has("8BITMIME")) params.push("BODY=8BITMIME");
    // RFC 6531 §3.4: non-ASCII addresses need SMTPUTF8 on MAIL.
    if (/\P{ASCII}/u.test([options.from, ...options.to].join("")) && ext.has("SMTPUTF8")) {
      params.push("SMTPUTF8");
    }
    const mail = [`MAIL FROM:${reversePath(options.from)}`, ...params].join(" ");
    chat.expect(await chat.command(mail), mail);

    // Like sendmail: refused recipients are reported, the others still get the message.
    const rejected: SendResult["rejected"] = [];
    let refusal: SendError | null = null;
    for (const address of options.to) {
      const line = `RCPT TO:<${address}>`;
      const reply = await chat.command(line);
      if (isPositive(reply.code)) continue;
      rejected.push({ address, code: reply.code, text: reply.lines.join(" ") });
      refusal = new SendError(reply.code, reply.lines.join(" "), line);
    }
    if (refusal && rejected.length === options.to.length) throw refusal;

    chat.expect(await chat.command("DATA"), "DATA", (code) => code === 354);
    chat.inData = true;
    const stuffer = new DotStuffer();
    for await (const chunk of chunks(options.message)) {
      const bytes = stuffer.push(chunk);
      if (bytes.length > 0) await writeAll(chat.wire, bytes);
    }
    await writeAll(chat.wire, stuffer.end());
    const final = await chat.reader.read(END_OF_DATA);
    chat.inData = false;
    const done = chat.expect(final, END_OF_DATA);
    const id = /queued as\s+<?([^\s>]+)/i.exec(done.last)?.[1];
    return { reply: done.last, ...(id ? { id } : {}), rejected };
  } finally {
    await chat.quit();
  }
}

/** One connection's command/reply exchange. */
class Chat {
  wire: Wire;
  reader: ReplyReader;
  /** Between 354 and the final reply: QUIT would be message content then. */
  inData = false;
  #timeoutMs: number;

  constructor(wire: Wire, timeoutMs: number) {
    this.wire = wire;
    this.#timeoutMs = timeoutMs;
    this.reader = new ReplyReader(wire, timeoutMs);
  }

  upgraded(wire: Wire): void {
    this.wire = wire;
    this.reader = new ReplyReader(wire, this.#timeoutMs);
  }

  /** Sends one command line; `shown` replaces it in errors (AUTH secrets). */
  async command(line: string, shown = line): Promise<Reply> {
    await writeAll(this.wire, encoder.encode(line + "\r\n"));
    return await this.reader.read(shown);
  }

  expect(reply: Reply, shown: string, ok = isPositive): Reply {
    if (!ok(reply.code)) throw new SendError(reply.code, reply.lines.join(" "), shown);
    return reply;
  }

  /** RFC 5321 §4.1.1.10 QUIT when the session is in a state to take it, then close. */
  async quit(): Promise<void> {
    try {
      if (!this.inData) {
        await writeAll(this.wire, encoder.encode("QUIT\r\n"));
        await this.reader.read("QUIT", QUIT_TIMEOUT_MS);
      }
    } catch {
      // The server may be gone already; QUIT is a courtesy.
    }
    try {
      this.wire.close();
    } catch {
      // Closed by a time-out or the peer.
    }
  }
}

/** SPEC §2: `send` fails "on any non-2xx reply"; a 3xx where none belongs is no success either. */
function isPositive(code: number): boolean {
  return code >= 200 && code < 300;
}

async function hello(chat: Chat, name: string): Promise<Map<string, string[]>> {
  const ehlo = await chat.command(`EHLO ${name}`);
  if (ehlo.code === 250) return extensions(ehlo);
  // RFC 5321 §3.2: a server that does not know EHLO answers 5xx; then HELO.
  if (ehlo.code < 500) chat.expect(ehlo, "EHLO");
  chat.expect(await chat.command(`HELO ${name}`), "HELO");
  return new Map();
}

async function authenticate(
  chat: Chat,
  mechanisms: string[] | undefined,
  auth: { user: string; pass: string },
  label: string,
): Promise<void> {
  if (mechanisms === undefined) throw new SendError(0, `${label} does not offer AUTH`);
  const offered = mechanisms.map((m) => m.toUpperCase());
  const ok = (code: number) => code === 235;
  if (offered.includes("PLAIN") || !offered.includes("LOGIN")) {
    // RFC 4954 §4 initial response (saves a round trip) carrying an RFC 4616 message.
    const secret = base64(`\0${auth.user}\0${auth.pass}`);
    chat.expect(await chat.command(`AUTH PLAIN ${secret}`, "AUTH PLAIN"), "AUTH PLAIN", ok);
    return;
  }
  const more = (code: number) => code === 334;
  chat.expect(await chat.command("AUTH LOGIN"), "AUTH LOGIN", more);
  chat.expect(await chat.command(base64(auth.user), "AUTH LOGIN"), "AUTH LOGIN", more);
  chat.expect(await chat.command(base64(auth.pass), "AUTH LOGIN"), "AUTH LOGIN", ok);
}

async function connect(options: SendOptions, timeoutMs: number, label: string): Promise<Wire> {
  const signal = AbortSignal.timeout(timeoutMs);
  let conn: Deno.TlsConn;
  try {
    if (options.insecure) return await nodeConnect(options, signal);
    if (!options.tls) {
      return await Deno.connect({ hostname: options.host, port: options.port, signal });
    }
    conn = await Deno.connectTls({
      hostname: options.host,
      port: options.port,
      ...(options.caCerts ? { caCerts: options.caCerts } : {}),
    });
  } catch (e: unknown) {
    if (signal.aborted) throw new SendError(0, `cannot connect to ${label}: timed out`);
    throw new SendError(0, `cannot connect to ${label}: ${reason(e)}`);
  }
  try {
    // Deno's handshake is lazy; doing it now reports a bad certificate as such.
    await withTimeout(conn, conn.handshake(), timeoutMs, HANDSHAKE);
    return conn;
  } catch (e: unknown) {
    if (e instanceof SendError) throw e;
    conn.close();
    throw new SendError(0, `TLS with ${label} failed: ${tlsReason(e)}`);
  }
}

async function upgrade(
  wire: Wire,
  options: SendOptions,
  timeoutMs: number,
  label: string,
): Promise<Wire> {
  try {
    if (wire instanceof NodeWire) {
      return await withTimeout(
        wire,
        nodeStartTls(wire, options.host),
        timeoutMs,
        STARTTLS_HANDSHAKE,
      );
    }
    const conn = await Deno.startTls(wire as Deno.TcpConn, {
      hostname: options.host,
      ...(options.caCerts ? { caCerts: options.caCerts } : {}),
    });
    await withTimeout(conn, conn.handshake(), timeoutMs, STARTTLS_HANDSHAKE);
    return conn;
  } catch (e: unknown) {
    if (e instanceof SendError) throw e;
    throw new SendError(0, `TLS with ${label} failed: ${tlsReason(e)}`, "STARTTLS");
  }
}

function reason(e: unknown): string {
  const text = e instanceof Error ? e.message : String(e);
  return text.split("\n")[0]!;
}

/** rustls's verdicts on a server certificate, in words (other clients accept some of them). */
const CERTIFICATE_ERRORS: [RegExp, string][] = [
  [
    /CaUsedAsEndEntity/,
    "the server's certificate is a CA certificate (basicConstraints CA:TRUE, which `openssl req " +
    "-x509` sets by default), and Deno's TLS refuses one as a server's own; use --insecure, or a " +
    "certificate made with -addext basicConstraints=critical,CA:FALSE",
  ],
  [
    /UnknownIssuer/,
    "the server's certificate is signed by no CA trusted here (give it with --ca, or use --insecure)",
  ],
  [/NotValidForName/, "the server's certificate is not valid for the name given to --server"],
  [/\bExpired/, "the server's certificate has expired"],
];

function tlsReason(e: unknown): string {
  const text = reason(e);
  const known = CERTIFICATE_ERRORS.find(([pattern]) => pattern.test(text));
  return known ? `${known[1]} (${text})` : text;
}
