/**
 * Options of `serve()`: the SPEC §2 flags in camelCase plus the SPEC §6
 * callbacks. The CLI builds exactly this object from flags and `SMTPD_*`.
 *
 * @module
 */

import type { Meta } from "../spool/meta.ts";
import type { LogFormat, LogLevel } from "../log.ts";

/** A reply a callback returns to reject: `{ code: 550, enhanced: "5.1.1", text: "No such user" }`. */
export interface RejectReply {
  code: number;
  enhanced?: string;
  text?: string;
}

/** What a callback may return: nothing/true accepts, a reply rejects. */
export type CallbackResult = void | undefined | boolean | RejectReply;

/** Facts about one connection, given to `onConnect`. */
export interface ConnectionInfo {
  client: { address: string; port: number };
  server: { address: string; port: number };
  tls: boolean;
}

export interface ServeOptions {
  /** `HOST:PORT` plain listeners (STARTTLS when TLS is configured). Default `127.0.0.1:1025` when no listener given. */
  listen?: string[];
  /** `HOST:PORT` implicit-TLS listeners. */
  listenTls?: string[];
  /** Spool directory, created if missing. Default `./spool`. */
  spool?: string;
  /** Default: the OS host name. */
  hostname?: string;
  tlsCert?: string;
  tlsKey?: string;
  tlsSelfSigned?: boolean;
  requireTls?: boolean;
  /** Path of a `user:password` file. */
  authFile?: string;
  requireAuth?: boolean;
  /** Bytes, or a size as the flag takes it (`"10MB"`, `"1MiB"`); default 52428800; 0 sets no limit. */
  maxSize?: number | string;
  /** Default 1000. */
  maxRecipients?: number;
  /** Default 200. */
  maxConnections?: number;
  /** Idle limit in ms, or a duration as the flag takes it (`"30s"`, `"5m"`); default 300000. */
  timeout?: number | string;
  /** Shell command run after each stored message. */
  onMessageCommand?: string;
  /** Skip fsync (default false). */
  noFsync?: boolean;
  logLevel?: LogLevel;
  logFormat?: LogFormat;
  /** Log file path; default stderr. */
  logFile?: string;
  readyFile?: string;
  /** Stop (resolve `finished`) after N stored messages. */
  exitAfter?: number;
  /** Recipient allow-list (JavaScript RegExp sources). */
  acceptRcpt?: string[];
  /** `--fault` rules as written on the command line. */
  faults?: string[];
  /** `--trust-proxy` CIDRs. */
  trustProxy?: string[];
  /**
   * Own the process: install SIGINT/SIGTERM/SIGHUP handlers (SIGHUP stays
   * ignored under nohup on Linux), ignore SIGXFSZ (a file-size limit then
   * fails the write, `452`), and log an uncaught error as `internal error`
   * instead of dying of it (the CLI sets this; library users usually don't).
   */
  handleSignals?: boolean;
  /**
   * Serving threads, 1 or 2; unset: 2 with `noFsync` on a machine of two
   * or more CPUs, else 1 (threads.ts). With 2, on Linux under
   * `--unstable-net`, a second thread serves the same ports and spool when
   * nothing needs one thread (no TLS, `exitAfter`, `faults`,
   * `onMessageCommand` or callbacks); otherwise one thread serves. More
   * than 2 counts as 2. `--threads` on the command line.
   */
  threads?: number;

  onConnect?: (info: ConnectionInfo) => CallbackResult | Promise<CallbackResult>;
  /** Return true to accept the credentials (replaces `--auth-file`). */
  onAuth?: (
    user: string,
    pass: string,
    mechanism: string,
  ) => boolean | RejectReply | Promise<boolean | RejectReply>;
  onMailFrom?: (
    address: string,
    params: Record<string, string | true>,
  ) => CallbackResult | Promise<CallbackResult>;
  onRcptTo?: (
    address: string,
    params: Record<string, string | true>,
  ) => CallbackResult | Promise<CallbackResult>;
  /**
   * Once `<id>.eml` is complete, before `<id>.json` takes its name and before
   * the reply: a rejection or a throw withdraws the message, unseen by any
   * reader, and the client gets that reply (or `451 4.3.0`).
   */
  onMessage?: (meta: Meta, emlPath: string) => void | Promise<void>;
}

/** Defaults of SPEC §2, in one place. */
export const DEFAULTS = {
  listen: "127.0.0.1:1025",
  spool: "./spool",
  maxSize: 52_428_800,
  maxRecipients: 1000,
  maxConnections: 200,
  timeoutMs: 5 * 60_000,
  logLevel: "info",
  logFormat: "text",
} as const;
