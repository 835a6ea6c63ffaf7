/**
 * The vocabulary between the pure SMTP core (`session.ts`) and the socket
 * driver (`lib/net/connection.ts`): configuration in, events out, decisions
 * back. Nothing here does I/O.
 *
 * Driver loop (sketch):
 *
 * ```ts
 * session.receive(chunk);
 * for (let ev = session.next(); ev.type !== "need-data"; ev = session.next()) {
 *   switch (ev.type) { ... }
 * }
 * ```
 *
 * Events marked "pauses" leave the session paused: `next()` returns
 * `{ type: "paused" }` until the driver calls the matching `resume…` method.
 * While paused, later bytes stay buffered (`pending()`), unparsed.
 *
 * @module
 */

/** An SMTP reply: `code` 3 digits, `enhanced` RFC 3463 ("2.1.0") or "" for none. */
export interface Reply {
  code: number;
  enhanced: string;
  /** One entry per reply line, without CRLF; at least one (may be ""). */
  lines: string[];
}

/** Parameters of MAIL or RCPT: names upper case, a value-less parameter is `true`. */
export type Params = Record<string, string | true>;

/** SASL mechanisms the core speaks (RFC 4954 PLAIN, LOGIN; RFC 2195 CRAM-MD5). */
export type AuthMechanism = "PLAIN" | "LOGIN" | "CRAM-MD5";

/** How a session got its identity: AUTH, or XCLIENT LOGIN (Postfix names that method "XCLIENT"). */
export type AuthMethod = AuthMechanism | "XCLIENT";

/** Fixed for one connection; the driver builds it from the server options. */
export interface SessionConfig {
  /** Name in the greeting and in the EHLO reply. */
  hostname: string;
  /** Advertised in `SIZE`; bigger messages get `552 5.3.4`. `Infinity`: no limit, `SIZE 0`. */
  maxSize: number;
  /** More RCPTs get `452 4.5.3`. */
  maxRecipients: number;
  /** STARTTLS is offered (TLS configured and this listener is plain). */
  starttls: boolean;
  /** The connection is already TLS (implicit-TLS listener). */
  tlsActive: boolean;
  /** MAIL and AUTH before TLS get `530 5.7.0`; AUTH is advertised only under TLS. */
  requireTls: boolean;
  /** MAIL before a successful AUTH gets `530 5.7.0`. */
  requireAuth: boolean;
  /** Mechanisms offered, in order ("CRAM-MD5" only where passwords are known). */
  authMechanisms: AuthMechanism[];
  /** The client is in a `--trust-proxy` network: XCLIENT/XFORWARD offered and allowed. */
  trustedProxy: boolean;
  /** `--accept-rcpt` patterns; empty means every recipient is acceptable. */
  acceptRcpt: RegExp[];
  /** CRAM-MD5 challenge, e.g. `<1896.697170952@host>`; injected so the core stays pure. */
  cramChallenge: () => string;
  /** Emit `transcript` events for every received line (log level debug). */
  transcript: boolean;
  /**
   * Sent instead of the 220 greeting (a `connect` fault or an `onConnect`
   * refusal other than 421): the session then answers every command with
   * `503 5.5.1` until QUIT (RFC 5321 §3.1).
   */
  refusedGreeting?: Reply;
}

/** What the client told us, as recorded in the spool metadata. */
export interface ClientIdentity {
  /** HELO/EHLO argument, or the XCLIENT HELO value; null before HELO. */
  helo: string | null;
  /** Set by XCLIENT (NAME ADDR PORT PROTO HELO LOGIN), upper-case keys, xtext-decoded. */
  xclient: Record<string, string>;
}

/** A completed (or completing) transaction, handed over with `message-end`. */
export interface Envelope {
  /** "" for the null reverse-path `<>`. */
  mailFrom: string;
  mailParams: Params;
  rcptTo: string[];
  /** Same length and order as `rcptTo`. */
  rcptParams: Params[];
  helo: string | null;
  /** true after EHLO, false after HELO (RFC 3848 SMTP vs ESMTP). */
  esmtp: boolean;
  tls: boolean;
  auth: { mechanism: AuthMethod; username: string } | null;
  /** SMTPUTF8 was given on MAIL (RFC 6531: protocol UTF8SMTP…). */
  smtputf8: boolean;
  /** XFORWARD attributes sent before this transaction (upper-case names, xtext-decoded). */
  xforward: Record<string, string>;
  /** XCLIENT attributes in force (upper-case names, xtext-decoded). */
  xclient: Record<string, string>;
  /** "DATA" or "BDAT" — how the body came. */
  via: "DATA" | "BDAT";
}

/** Decision for a pausing event: `null` accepts, a `Reply` rejects with that reply. */
export type Decision = Reply | null;

export type SessionEvent =
  /** Nothing more can be done until `receive()` gets more bytes. */
  | { type: "need-data" }
  /** A paused event awaits `resume…`. */
  | { type: "paused" }
  /** Write these bytes to the client (one or more complete reply lines). */
  | { type: "reply"; reply: Reply; bytes: Uint8Array }
  /** Close the connection after flushing what was written (after 221 or 421). */
  | { type: "close" }
  /** A received command line for the debug log; AUTH secrets already replaced by `***`. */
  | { type: "transcript"; line: string }
  /** pauses → `resumeHelo(decision)`. HELO or EHLO with its domain (fault stage `helo`). */
  | { type: "helo"; verb: "HELO" | "EHLO"; domain: string }
  /** pauses → `resumeMail(decision)`. A syntactically valid MAIL FROM. */
  | { type: "mail"; reversePath: string; params: Params }
  /** pauses → `resumeRcpt(decision)`. A syntactically valid RCPT TO (after the allow-list). */
  | { type: "rcpt"; forwardPath: string; params: Params }
  /**
   * pauses → `resumeAuth(decision)`; `null` means success (`235 2.7.0`).
   * PLAIN/LOGIN carry `password`; CRAM-MD5 carries `challenge` and hex `digest`.
   */
  | {
    type: "auth";
    mechanism: AuthMechanism;
    username: string;
    /** PLAIN's authzid when the client gave one (RFC 4616 §2). */
    authzid?: string;
    password?: string;
    challenge?: string;
    digest?: string;
  }
  /**
   * pauses → `resumeMessageStart(decision)`: open the sink. On DATA, `null`
   * sends `354`; on the first BDAT chunk `null` lets the bytes flow. A reply
   * (e.g. `451 4.3.0` spool not writable) fails the transaction; BDAT bytes
   * are still consumed so the stream stays in sync.
   */
  | { type: "message-start"; via: "DATA" | "BDAT" }
  /** Body bytes, unstuffed, in order. Only between message-start and message-end/abort. */
  | { type: "message-data"; bytes: Uint8Array }
  /**
   * pauses → `resumeChunkEnd(decision)`: a BDAT chunk without LAST is in.
   * `null` sends `250 2.0.0 Ok: <size> octets received`; a reply (e.g.
   * `452 4.3.1`, the spool filled up) is sent instead and fails the
   * transaction (RFC 3030 §2: the client sends no more chunks; RSET).
   */
  | { type: "chunk-end"; size: number }
  /**
   * pauses → `resumeMessageEnd(reply)`: the body is complete (CRLF.CRLF or
   * BDAT LAST). Commit it and answer with `250 2.0.0 Ok: queued as <id>` or
   * the error. The session replies with exactly what it is given.
   */
  | { type: "message-end"; envelope: Envelope; size: number }
  /**
   * The body will not be stored (over `maxSize`, or a failed BDAT chunk):
   * discard the sink. The session sends its own reply. No resume needed.
   */
  | { type: "message-abort"; reason: "size" | "rejected" | "reset" }
  /** `220 2.0.0` was sent: upgrade the socket, then `resumeTls()`. Pauses. */
  | { type: "starttls" }
  /** XCLIENT accepted: the recorded identity changed (the session already sent the new 220). */
  | { type: "xclient"; attributes: Record<string, string> };

/** Public surface of `Session` (implemented in `session.ts`). */
export interface SessionApi {
  /** The greeting event bytes (`220 <hostname> ESMTP …`); call once at connect. */
  greeting(): Uint8Array;
  /** Hand over received bytes; never throws. */
  receive(bytes: Uint8Array): void;
  /** The next event; never throws. */
  next(): SessionEvent;
  resumeHelo(decision: Decision): void;
  resumeMail(decision: Decision): void;
  resumeRcpt(decision: Decision): void;
  resumeAuth(decision: Decision): void;
  resumeMessageStart(decision: Decision): void;
  resumeChunkEnd(decision: Decision): void;
  resumeMessageEnd(reply: Reply): void;
  /** TLS is up: the session resets to the greeted state and drops bytes pipelined after STARTTLS. */
  resumeTls(): void;
  /** Bytes received but not yet parsed (held while paused). */
  pending(): Uint8Array;
  /** True while waiting for a command with no open transaction (safe to send 421 and close). */
  idle(): boolean;
  /** True while a body (DATA or BDAT chunk) is being received. */
  inBody(): boolean;
}
