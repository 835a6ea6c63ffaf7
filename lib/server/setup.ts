/**
 * Turns `ServeOptions` into validated, parsed configuration before anything
 * is bound: a bad rule, pattern, CIDR or address is an `OptionError` naming
 * the flag (CLI exit 2); a missing or malformed file (certificate, auth file)
 * is a `StartupError` (exit 1).
 *
 * @module
 */

import { errorReason } from "../os_error.ts";
import { LOG_FORMATS, LOG_LEVELS } from "../log.ts";
import { type HostPort, parseDuration, parseHostPort, parseSize } from "../units.ts";
import { type Cidr, parseCidr } from "./cidr.ts";
import { FaultPlan, parseFaultRule } from "./faults.ts";
import { type Credentials, loadAuthFile } from "./auth_file.ts";
import { loadTlsContext, TlsConfigError, type TlsMaterial } from "../net/tls_context.ts";
import { DEFAULTS, type ServeOptions } from "./options.ts";
import type { AuthMechanism } from "../smtp/events.ts";

/** A bad option value: `flag` names it (`--fault`), `message` says what is wrong. */
export class OptionError extends Error {
  override name = "OptionError";
  readonly flag: string;
  constructor(flag: string, message: string) {
    super(message);
    this.flag = flag;
  }
}

/** The server cannot start (port in use, spool not writable, bad certificate): one line. */
export class StartupError extends Error {
  override name = "StartupError";
}

export interface Listen extends HostPort {
  tls: boolean;
}

export interface Setup {
  hostname: string;
  listeners: Listen[];
  faults: FaultPlan;
  acceptRcpt: RegExp[];
  trustProxy: Cidr[];
  credentials: Credentials | null;
  tls: TlsMaterial | null;
  authMechanisms: AuthMechanism[];
  maxSize: number;
  maxRecipients: number;
  maxConnections: number;
  timeoutMs: number;
}

function each<T>(
  flag: string,
  values: readonly string[] | undefined,
  parse: (v: string) => T,
): T[] {
  // A library caller's `listen: "127.0.0.1:0"` would otherwise fail deep inside.
  if (values !== undefined && !Array.isArray(values)) {
    throw new OptionError(flag, `expected a list of strings, found ${JSON.stringify(values)}`);
  }
  return (values ?? []).map((value) => {
    try {
      return parse(value);
    } catch (e: unknown) {
      throw new OptionError(flag, e instanceof Error ? e.message : String(e));
    }
  });
}

function oneOf(flag: string, value: string | undefined, allowed: readonly string[]): void {
  if (value !== undefined && !allowed.includes(value)) {
    throw new OptionError(flag, `Cannot use "${value}": expected ${allowed.join(", ")}`);
  }
}

/** A number as it is, a string as the flag's parser reads it (`"10MB"`, `"30s"`). */
function unitValue(
  flag: string,
  value: number | string | undefined,
  parse: (text: string) => number,
): number | undefined {
  if (typeof value !== "string") return value;
  try {
    return parse(value);
  } catch (e: unknown) {
    throw new OptionError(flag, e instanceof Error ? e.message : String(e));
  }
}

function positive(flag: string, value: number | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  if (!Number.isSafeInteger(value) || value < 1) {
    throw new OptionError(flag, `Cannot use "${value}": expected a positive whole number`);
  }
  return value;
}

function osHostname(): string {
  try {
    return Deno.hostname();
  } catch {
    return "localhost";
  }
}

/** Validates and loads everything `serve()` needs before binding. */
export async function setup(options: ServeOptions): Promise<Setup> {
  const hostname = options.hostname ?? osHostname();
  const maxSize = unitValue("--max-size", options.maxSize, parseSize);
  const timeout = unitValue("--timeout", options.timeout, parseDuration);
  // Printable ASCII, at most 255 octets (RFC 5321 §4.5.3.1.2), not an option-like "-x".
  if (!/^[\x21-\x2c\x2e-\x7e][\x21-\x7e]{0,254}$/.test(hostname)) {
    throw new OptionError("--hostname", `Cannot use "${hostname}": expected a host name`);
  }
  // The CLI checks these words; a library caller's typo would silence the log.
  oneOf("--log-level", options.logLevel, LOG_LEVELS);
  oneOf("--log-format", options.logFormat, LOG_FORMATS);
  const plain = each("--listen", options.listen, (v) => ({ ...parseHostPort(v), tls: false }));
  const implicit = each(
    "--listen-tls",
    options.listenTls,
    (v) => ({ ...parseHostPort(v), tls: true }),
  );
  const listeners = plain.length + implicit.length > 0
    ? [...plain, ...implicit]
    : [{ ...parseHostPort(DEFAULTS.listen), tls: false }];
  const faults = new FaultPlan(each("--fault", options.faults, parseFaultRule));
  const acceptRcpt = each("--accept-rcpt", options.acceptRcpt, (v) => new RegExp(v));
  const trustProxy = each("--trust-proxy", options.trustProxy, parseCidr);
  if (options.exitAfter !== undefined) positive("--exit-after", options.exitAfter, 1);
  // A JavaScript caller's "yes" must not switch a check off (or on) unseen.
  for (
    const [name, flag] of [
      ["requireAuth", "--require-auth"],
      ["requireTls", "--require-tls"],
      ["tlsSelfSigned", "--tls-self-signed"],
      ["noFsync", "--no-fsync"],
    ] as const
  ) {
    const value: unknown = options[name];
    if (value !== undefined && typeof value !== "boolean") {
      throw new OptionError(flag, `expected true or false, found ${JSON.stringify(value)}`);
    }
  }
  for (
    const [name, flag] of [["spool", "--spool"], ["onMessageCommand", "--on-message"]] as const
  ) {
    const value: unknown = options[name];
    if (value !== undefined && (typeof value !== "string" || value.trim() === "")) {
      throw new OptionError(flag, `expected a non-empty string, found ${JSON.stringify(value)}`);
    }
  }
  // A JavaScript caller's typo or wrong value must not surface at the first client.
  for (const name of ["onConnect", "onAuth", "onMailFrom", "onRcptTo", "onMessage"] as const) {
    const cb: unknown = options[name];
    if (cb !== undefined && typeof cb !== "function") {
      throw new OptionError(name, `expected a function, found ${typeof cb}`);
    }
  }
  if (options.onAuth !== undefined && options.authFile !== undefined) {
    throw new OptionError("--auth-file", "cannot be combined with onAuth: which one decides?");
  }

  if ((options.tlsCert === undefined) !== (options.tlsKey === undefined)) {
    throw new OptionError("--tls-cert", "--tls-cert and --tls-key go together");
  }
  // Both would leave it unclear which certificate is served (and logged).
  if (options.tlsSelfSigned === true && options.tlsCert !== undefined) {
    throw new OptionError("--tls-self-signed", "cannot be combined with --tls-cert/--tls-key");
  }
  const tlsWanted = options.tlsCert !== undefined || options.tlsSelfSigned === true;
  if (implicit.length > 0 && !tlsWanted) {
    throw new OptionError("--listen-tls", "needs --tls-cert/--tls-key or --tls-self-signed");
  }
  if (options.requireTls && !tlsWanted) {
    throw new OptionError("--require-tls", "needs --tls-cert/--tls-key or --tls-self-signed");
  }
  let tls: TlsMaterial | null = null;
  if (tlsWanted) {
    try {
      tls = await loadTlsContext({
        ...(options.tlsCert !== undefined ? { certFile: options.tlsCert } : {}),
        ...(options.tlsKey !== undefined ? { keyFile: options.tlsKey } : {}),
        selfSigned: options.tlsSelfSigned === true,
        hostname,
      });
    } catch (e: unknown) {
      if (e instanceof TlsConfigError) throw new StartupError(e.message);
      throw e;
    }
  }

  let credentials: Credentials | null = null;
  if (options.authFile !== undefined) {
    try {
      credentials = await loadAuthFile(options.authFile);
    } catch (e: unknown) {
      // A file whose contents are wrong, like a bad certificate: a run-time failure (SPEC §2).
      if (e instanceof SyntaxError) throw new StartupError(`bad auth file ${e.message}`);
      if (e instanceof Deno.errors.NotFound) {
        throw new StartupError(`cannot read auth file ${options.authFile}: not found`);
      }
      throw new StartupError(`cannot read auth file ${options.authFile}: ${errorReason(e)}`);
    }
  }
  // CRAM-MD5 needs the password on our side: not with an onAuth callback.
  const authMechanisms: AuthMechanism[] = options.onAuth
    ? ["PLAIN", "LOGIN"]
    : ["PLAIN", "LOGIN", "CRAM-MD5"];

  return {
    hostname,
    listeners,
    faults,
    acceptRcpt,
    trustProxy,
    credentials,
    tls,
    authMechanisms,
    // 0: no limit, as Postfix's message_size_limit = 0 and RFC 1870's SIZE 0.
    maxSize: maxSize === 0 ? Infinity : positive("--max-size", maxSize, DEFAULTS.maxSize),
    maxRecipients: positive("--max-recipients", options.maxRecipients, DEFAULTS.maxRecipients),
    maxConnections: positive("--max-connections", options.maxConnections, DEFAULTS.maxConnections),
    timeoutMs: positive("--timeout", timeout, DEFAULTS.timeoutMs),
  };
}
