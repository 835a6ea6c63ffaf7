/**
 * Shared by `tls_test.ts` and `auth_test.ts`: a server with TLS on both kinds
 * of listener, certificates made with the openssl CLI, an SMTP client that can
 * upgrade its own socket (the raw client's background read loop cannot hand
 * its socket to `Deno.startTls`), and runners for tools `clients.ts` does not
 * wrap (openssl, msmtp with TLS and AUTH).
 *
 * @module
 */

import {
  findOnPath,
  runProgram,
  type ToolName,
  toolPath,
  type ToolResult,
} from "../helpers/clients.ts";
import { type ServerProc, type StartOptions, startServer } from "../helpers/launcher.ts";
import { type ReplyRead, visible } from "../helpers/raw_client.ts";

/** `--hostname` of every TLS server here; the self-signed certificate names it (and 127.0.0.1). */
export const HOSTNAME = "mail.test";
/** Same bound as a raw-client read. */
export const READ_TIMEOUT_MS = 10_000;

const encoder = new TextEncoder();
const latin1 = new TextDecoder("latin1");

/** A server with `--tls-self-signed`, a plain listener (STARTTLS) and an implicit-TLS one. */
export interface TlsServer extends AsyncDisposable {
  server: ServerProc;
  /** The plain listener (STARTTLS offered). */
  plainPort: number;
  /** The `--listen-tls` listener. */
  tlsPort: number;
  /** `<spool>/.tls/cert.pem`, published by the server. */
  certPath: string;
  certPem: string;
}

/** The port of the ready file's listener with `"tls": tls`. */
export function listenerPort(server: ServerProc, tls: boolean): number {
  const l = server.ready.listeners.find((x) => x.tls === tls);
  if (!l) throw new Error(`No listener with tls=${tls} in ${JSON.stringify(server.ready)}`);
  return l.port;
}

/**
 * Starts a self-signed TLS server on `127.0.0.1:0` (plain) and
 * `127.0.0.1:0` (implicit TLS); `args` add flags.
 */
export async function startTlsServer(
  args: string[] = [],
  opts: StartOptions = {},
): Promise<TlsServer> {
  const server = await startServer([
    "--listen",
    "127.0.0.1:0",
    "--listen-tls",
    "127.0.0.1:0",
    "--tls-self-signed",
    "--hostname",
    HOSTNAME,
    ...args,
  ], opts);
  try {
    const certPath = `${server.spool}/.tls/cert.pem`;
    const certPem = await Deno.readTextFile(certPath);
    return {
      server,
      plainPort: listenerPort(server, false),
      tlsPort: listenerPort(server, true),
      certPath,
      certPem,
      [Symbol.asyncDispose]: () => server[Symbol.asyncDispose](),
    };
  } catch (e: unknown) {
    await server[Symbol.asyncDispose]();
    throw e;
  }
}

/** Writes an `--auth-file` with `user:password` lines into `dir`; returns its path. */
export async function writeAuthFile(dir: string, users: Record<string, string>): Promise<string> {
  const path = `${dir}/users.txt`;
  const text = Object.entries(users).map(([u, p]) => `${u}:${p}\n`).join("");
  await Deno.writeTextFile(path, "# test users\n" + text);
  return path;
}

/** Standard base64 of a UTF-8 string. */
export function b64(text: string): string {
  return btoa(Array.from(encoder.encode(text), (b) => String.fromCharCode(b)).join(""));
}

/** `openssl args…`; throws when openssl is missing (tests gate on {@linkcode binTest}). */
export function openssl(args: string[], stdin?: string): Promise<ToolResult> {
  const path = findOnPath("openssl");
  if (!path) throw new Error("Cannot run openssl: not installed");
  return runProgram(path, args, stdin === undefined ? {} : { stdin });
}

/** `msmtp` with no configuration file (a developer's ~/.msmtprc stays out), message on stdin. */
export function msmtpRun(args: string[], message: string): Promise<ToolResult> {
  const path = toolPath("msmtp");
  if (!path) throw new Error("Cannot run msmtp: not installed");
  return runProgram(path, ["--file=/dev/null", ...args], { stdin: message });
}

/**
 * `Deno.test` skipped, with a printed reason, when one of `tools` (known to
 * `clients.ts`) or `bins` (looked up on PATH) is missing.
 */
export function binTest(
  name: string,
  tools: ToolName[],
  bins: string[],
  fn: () => Promise<void>,
): void {
  const missing = [
    ...tools.filter((t) => toolPath(t) === null),
    ...bins.filter((b) => findOnPath(b) === null),
  ];
  if (missing.length > 0) {
    Deno.stderr.writeSync(
      encoder.encode(`skip "${name}": ${missing.join(", ")} not installed (.ci/run installs it)\n`),
    );
  }
  Deno.test({ name, ignore: missing.length > 0, fn });
}

/** A certificate and key made by `openssl req`, ECDSA P-256, for `127.0.0.1` and {@linkcode HOSTNAME}. */
export interface CertPair {
  cert: string;
  key: string;
}

/** Generates a self-signed certificate pair into `dir` with the openssl CLI. */
export async function makeCertPair(dir: string, name: string): Promise<CertPair> {
  const cert = `${dir}/${name}.crt`;
  const key = `${dir}/${name}.key`;
  const r = await openssl([
    "req",
    "-x509",
    "-newkey",
    "ec",
    "-pkeyopt",
    "ec_paramgen_curve:prime256v1",
    "-nodes",
    "-keyout",
    key,
    "-out",
    cert,
    "-days",
    "2",
    "-subj",
    `/CN=${HOSTNAME}`,
    "-addext",
    `subjectAltName=DNS:${HOSTNAME},IP:127.0.0.1`,
    "-addext",
    "basicConstraints=critical,CA:FALSE",
    "-addext",
    "extendedKeyUsage=serverAuth",
  ]);
  if (r.code !== 0) throw new Error(`openssl req failed: ${r.stderr}`);
  return { cert, key };
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length);
  out.set(a, 0);
  out.set(b, a.length);
  return out;
}

/**
 * An SMTP client that reads only when asked (so `Deno.startTls` can take its
 * socket after a reply), with every read bounded by a deadline.
 */
export class SmtpConn implements AsyncDisposable {
  #conn: Deno.Conn;
  #buf: Uint8Array = new Uint8Array(0);
  #chunk = new Uint8Array(64 * 1024);
  #pending: Promise<number | null> | null = null;
  #eof = false;
  #closed = false;
  #transcript = "";
  #tls: boolean;

  private constructor(conn: Deno.Conn, tls: boolean) {
    this.#conn = conn;
    this.#tls = tls;
  }

  /** Plain TCP to 127.0.0.1:`port`. */
  static async connect(port: number): Promise<SmtpConn> {
    return new SmtpConn(await Deno.connect({ hostname: "127.0.0.1", port }), false);
  }

  /** Implicit TLS to 127.0.0.1:`port`, verifying the server against `caCerts` only. */
  static async connectTls(port: number, caCerts: string[]): Promise<SmtpConn> {
    const conn = await Deno.connectTls({ hostname: "127.0.0.1", port, caCerts });
    await conn.handshake();
    return new SmtpConn(conn, true);
  }

  /** Everything received so far (latin1), for failure messages. */
  get transcript(): string {
    return this.#transcript;
  }

  /** Received and not yet consumed by a read. */
  get unread(): string {
    return latin1.decode(this.#buf);
  }

  get isTls(): boolean {
    return this.#tls;
  }

  async send(data: string): Promise<void> {
    let bytes = encoder.encode(data);
    while (bytes.length > 0) bytes = bytes.subarray(await this.#conn.write(bytes));
  }

  /**
   * Writes `data` over and over for `ms` without reading anything, as a
   * client that never reads its replies (`data` must divide into its units). Returns the bytes written before
   * the deadline, and the write still blocked then (it completes once the
   * server reads again, or yields 0 when the connection closes).
   */
  async pushFor(data: string, ms: number): Promise<{ sent: number; late: Promise<number> }> {
    const bytes = encoder.encode(data);
    const deadline = Date.now() + ms;
    let sent = 0;
    while (Date.now() < deadline) {
      // A short write resumes mid-`data`: the stream stays `data` repeated.
      const write = this.#conn.write(bytes.subarray(sent % bytes.length)).catch(() => 0);
      let timer: ReturnType<typeof setTimeout> | undefined;
      const late = new Promise<"late">((
        r,
      ) => (timer = setTimeout(r, deadline - Date.now(), "late")));
      const n = await Promise.race([write, late]);
      clearTimeout(timer);
      if (n === "late") return { sent, late: write };
      sent += n;
    }
    return { sent, late: Promise.resolve(0) };
  }

  /** Reads more bytes; false on EOF or when the deadline passes (the read then stays pending). */
  async #fill(deadline: number): Promise<boolean> {
    if (this.#eof) return false;
    const left = deadline - Date.now();
    if (left <= 0) return false;
    this.#pending ??= this.#conn.read(this.#chunk).catch(() => null);
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<"timeout">((r) => (timer = setTimeout(r, left, "timeout")));
    const n = await Promise.race([this.#pending, timeout]);
    clearTimeout(timer);
    if (n === "timeout") return false;
    this.#pending = null;
    if (n === null) {
      this.#eof = true;
      return false;
    }
    const got = this.#chunk.slice(0, n);
    this.#buf = concat(this.#buf, got);
    this.#transcript += latin1.decode(got);
    return true;
  }

  async readLine(timeoutMs = READ_TIMEOUT_MS): Promise<string> {
    const deadline = Date.now() + timeoutMs;
    while (!this.#buf.includes(0x0a)) {
      if (!(await this.#fill(deadline))) {
        const why = this.#eof ? "connection closed" : `no line within ${timeoutMs} ms`;
        throw new Error(`Cannot read a line: ${why}; transcript ${visible(this.#transcript)}`);
      }
    }
    const end = this.#buf.indexOf(0x0a);
    let line = latin1.decode(this.#buf.subarray(0, end));
    this.#buf = this.#buf.subarray(end + 1);
    if (line.endsWith("\r")) line = line.slice(0, -1);
    return line;
  }

  async readReply(timeoutMs = READ_TIMEOUT_MS): Promise<ReplyRead> {
    const deadline = Date.now() + timeoutMs;
    const lines: string[] = [];
    let raw = "";
    while (true) {
      const line = await this.readLine(Math.max(1, deadline - Date.now()));
      raw += line + "\r\n";
      const m = /^(\d{3})([ -]|$)(.*)$/s.exec(line);
      if (!m) throw new Error(`Cannot parse reply line ${visible(line)} after ${visible(raw)}`);
      lines.push(m[3] ?? "");
      if (m[2] !== "-") return { code: Number(m[1]), lines, raw };
    }
  }

  async command(line: string, timeoutMs = READ_TIMEOUT_MS): Promise<ReplyRead> {
    await this.send(line + "\r\n");
    return await this.readReply(timeoutMs);
  }

  /**
   * Upgrades after the server's `220` to STARTTLS: fails if any byte beyond
   * that reply already arrived in plaintext; bytes that arrive later are fed
   * to the handshake, which then fails.
   */
  async startTls(caCerts: string[]): Promise<void> {
    if (this.#pending) throw new Error("Cannot start TLS with a read pending");
    if (this.#buf.length > 0) {
      throw new Error(`Plaintext bytes after the STARTTLS 220: ${visible(this.unread)}`);
    }
    const tls = await Deno.startTls(this.#conn as Deno.TcpConn, {
      hostname: "127.0.0.1",
      caCerts,
    });
    this.#conn = tls;
    await tls.handshake();
    this.#tls = true;
  }

  /** Reads until the server closes (bounded); returns what arrived meanwhile. */
  async readUntilClosed(timeoutMs = READ_TIMEOUT_MS): Promise<string> {
    const deadline = Date.now() + timeoutMs;
    while (!this.#eof) {
      if (!(await this.#fill(deadline)) && !this.#eof) {
        throw new Error(
          `Connection still open after ${timeoutMs} ms; transcript ${visible(this.#transcript)}`,
        );
      }
    }
    const rest = this.unread;
    this.#buf = new Uint8Array(0);
    return rest;
  }

  /** Closes the connection and settles any pending read. Idempotent. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    try {
      this.#conn.close();
    } catch {
      // Already closed by the peer.
    }
    if (this.#pending) await this.#pending;
    this.#pending = null;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}

/** Reads the greeting and sends EHLO; both must succeed. Returns the EHLO reply. */
export async function greetAndEhlo(c: SmtpConn, name = "client.example"): Promise<ReplyRead> {
  const greeting = await c.readReply();
  if (greeting.code !== 220) throw new Error(`Expected 220 greeting, got ${visible(greeting.raw)}`);
  const ehlo = await c.command(`EHLO ${name}`);
  if (ehlo.code !== 250) throw new Error(`Expected 250 to EHLO, got ${visible(ehlo.raw)}`);
  return ehlo;
}

/** Extension keywords of an EHLO reply (first line, the greeting, left out). */
export function extensions(ehlo: ReplyRead): string[] {
  return ehlo.lines.slice(1);
}

/** Sends MAIL/RCPT/DATA and `message` (must need no dot-stuffing); returns the final reply. */
export async function sendMessage(
  c: SmtpConn,
  from: string,
  to: string,
  message: string,
): Promise<ReplyRead> {
  for (const [line, code] of [[`MAIL FROM:<${from}>`, 250], [`RCPT TO:<${to}>`, 250]] as const) {
    const r = await c.command(line);
    if (r.code !== code) throw new Error(`${line} → expected ${code}, got ${visible(r.raw)}`);
  }
  const d = await c.command("DATA");
  if (d.code !== 354) throw new Error(`DATA → expected 354, got ${visible(d.raw)}`);
  if (/(^|\r\n)\./.test(message)) throw new Error("sendMessage: message needs dot-stuffing");
  await c.send(message + ".\r\n");
  return await c.readReply();
}
