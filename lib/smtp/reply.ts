/**
 * Replies: `Reply` → wire bytes, and the catalogue of fixed replies, so every
 * text the server can send is written once. Enhanced codes per RFC 3463 /
 * RFC 2034 on every reply except the greeting, EHLO and HELO lines and `354`.
 *
 * @module
 */

import type { Reply, SessionConfig } from "./events.ts";
import { MAX_REPLY_LINE_OCTETS } from "./limits.ts";

const ENCODER = new TextEncoder();
/** Constant replies are frozen; their bytes are computed once. */
const FORMATTED = new WeakMap<Reply, Uint8Array>();
const LINE_BREAK_REGEXP = /[\r\n]/g;
// RFC 5321 §4.2: textstring = 1*(%d09 / %d32-126); one "?" per other code point.
const NOT_TEXT_REGEXP = /[^\t\x20-\x7e]/gu;

/**
 * Encodes a reply: one line per entry of `lines`, `250-` on all but the last,
 * the enhanced code after the code on every line when non-empty, CRLF endings
 * (RFC 5321 §4.2.1, RFC 2034 §4). Text echoed from the client must not break
 * the grammar: CR and LF become spaces (no forged reply lines), any other
 * character outside RFC 5321 `textstring` (NUL, non-ASCII) becomes `?`, and a
 * line is cut to `MAX_REPLY_LINE_OCTETS` (RFC 5321 §4.5.3.1.5).
 *
 * @example Usage
 * ```ts
 * import { formatReply } from "./reply.ts";
 * formatReply({ code: 250, enhanced: "2.0.0", lines: ["Ok"] }); // "250 2.0.0 Ok\r\n" as bytes
 * ```
 */
export function formatReply(reply: Reply): Uint8Array {
  const cached = FORMATTED.get(reply);
  if (cached) return cached;
  const lines = reply.lines.length === 0 ? [""] : reply.lines;
  const prefix = reply.enhanced === "" ? "" : `${reply.enhanced} `;
  let text = "";
  for (let i = 0; i < lines.length; i++) {
    const head = `${reply.code}${i === lines.length - 1 ? " " : "-"}${prefix}`;
    const line = lines[i]!.replace(LINE_BREAK_REGEXP, " ").replace(NOT_TEXT_REGEXP, "?");
    // Every character is ASCII now, so its length counts octets.
    text += `${head}${line.slice(0, Math.max(0, MAX_REPLY_LINE_OCTETS - 2 - head.length))}\r\n`;
  }
  const bytes = ENCODER.encode(text);
  if (Object.isFrozen(reply)) FORMATTED.set(reply, bytes);
  return bytes;
}

function fixed(code: number, enhanced: string, text: string): Reply {
  return Object.freeze({ code, enhanced, lines: Object.freeze([text]) as string[] });
}

/** Any reply of one line. */
export function reply(code: number, enhanced: string, text: string): Reply {
  return { code, enhanced, lines: [text] };
}

/** RFC 5321 §4.2: `220 <domain>` greeting; no enhanced code (RFC 2034 §3 covers replies to commands). */
export function greetingReply(hostname: string): Reply {
  return reply(220, "", `${hostname} ESMTP smtpd`);
}

/** SPEC §4: STARTTLS is offered when TLS is configured and not yet active. */
function offersStartTls(config: SessionConfig, state: { tls: boolean }): boolean {
  return config.starttls && !state.tls;
}

/** SPEC §4: AUTH is offered when there are mechanisms, with `--require-tls` only under TLS. */
function offersAuth(config: SessionConfig, state: { tls: boolean }): boolean {
  return config.authMechanisms.length > 0 && (state.tls || !config.requireTls);
}

/** SPEC §4 extension list, in the order clients and tests see it. */
export function ehloReply(
  config: SessionConfig,
  domain: string,
  state: { tls: boolean },
): Reply {
  const lines = [
    `${config.hostname} Hello ${domain}`,
    "PIPELINING",
    // RFC 1870 §4: 0 means no fixed maximum.
    `SIZE ${Number.isFinite(config.maxSize) ? config.maxSize : 0}`,
    "8BITMIME",
    "SMTPUTF8",
    "ENHANCEDSTATUSCODES",
    "CHUNKING",
    "BINARYMIME",
    "DSN",
  ];
  if (offersStartTls(config, state)) lines.push("STARTTLS");
  if (offersAuth(config, state)) lines.push(`AUTH ${config.authMechanisms.join(" ")}`);
  if (config.trustedProxy) {
    lines.push("XCLIENT NAME ADDR PORT PROTO HELO LOGIN");
    lines.push("XFORWARD NAME ADDR PORT PROTO HELO IDENT SOURCE");
  }
  return { code: 250, enhanced: "", lines };
}

/** RFC 2034 §3: the HELO reply carries no enhanced code. */
export function heloReply(hostname: string): Reply {
  return reply(250, "", hostname);
}

/** The one success reply for a stored message, sent after both spool files are in place. */
export function queuedReply(id: string): Reply {
  return reply(250, "2.0.0", `Ok: queued as ${id}`);
}

/** RFC 3030 §2: each non-LAST BDAT chunk is acknowledged on its own. */
export function bdatChunkReply(size: number): Reply {
  return reply(250, "2.0.0", `Ok: ${size} octets received`);
}

/** VRFY with `--accept-rcpt`: an address that would be accepted. */
export function vrfyOkReply(address: string): Reply {
  return reply(250, "2.1.5", `<${address}>`);
}

/** `--accept-rcpt` refused this address. */
export function recipientRejectedReply(address: string): Reply {
  return reply(550, "5.1.1", `<${address}>: Recipient address rejected`);
}

/** RFC 5321 §4.5.3.1 / RFC 3463 X.5.4: bad arguments, with a usage hint. */
export function syntaxReply(usage: string): Reply {
  return reply(501, "5.5.4", `Syntax: ${usage}`);
}

/** RFC 1869 §6 and RFC 5321 §4.1.1.11: an ESMTP parameter we do not implement. */
export function unknownParamReply(name: string): Reply {
  return reply(555, "5.5.4", `Unsupported option: ${name}`);
}

/** A known ESMTP parameter with a malformed value. */
export function badParamReply(name: string): Reply {
  return reply(501, "5.5.4", `Bad ${name} parameter syntax`);
}

/** The same ESMTP parameter twice (RFC 1869 §6: each keyword at most once). */
export function duplicateParamReply(name: string): Reply {
  return reply(501, "5.5.4", `Duplicate ${name} parameter`);
}

/** An XCLIENT/XFORWARD attribute that is unknown or malformed. */
export function badAttributeReply(verb: string, attribute: string): Reply {
  return reply(501, "5.5.4", `Bad ${verb} attribute: ${attribute}`);
}

/** Postfix `501 5.5.4 Bad … syntax`: an XCLIENT/XFORWARD value it checks (ADDR, PORT, PROTO). */
export function badAttributeValueReply(verb: string, attribute: string): Reply {
  return reply(501, "5.5.4", `Bad ${verb} attribute value: ${attribute}`);
}

/** RFC 4954 §4: a server challenge; `text` is already base64. */
export function challengeReply(text: string): Reply {
  return reply(334, "", text);
}

/** SPEC §4: sent after the 20th failed command's own reply, then the session closes. */
export function tooManyErrorsReply(hostname: string): Reply {
  return reply(421, "4.7.0", `${hostname} Error: too many errors`);
}

/** Sent by the driver when a client is silent for `--timeout` (RFC 5321 §4.5.3.2). */
export function REPLY_TIMEOUT(hostname: string): Reply {
  return reply(421, "4.4.2", `${hostname} Error: timeout exceeded`);
}

/** Sent by the server beyond `--max-connections`, then the connection is closed. */
export function REPLY_TOO_MANY_CONNECTIONS(hostname: string): Reply {
  return reply(421, "4.7.0", `${hostname} Error: too many connections`);
}

/** SPEC §4 shutdown: idle sessions hear this on SIGINT/SIGTERM (RFC 5321 §3.8). */
export function REPLY_SHUTDOWN(hostname: string): Reply {
  return reply(421, "4.3.2", `${hostname} Service shutting down, closing transmission channel`);
}

/** SPEC §4: server faults are temporary so the client keeps its mail. */
export const REPLY_SPOOL_UNWRITABLE: Reply = fixed(451, "4.3.0", "Error: queue file write error");
/** RFC 3463 X.3.1 "mail system full" (ENOSPC). */
export const REPLY_DISK_FULL: Reply = fixed(452, "4.3.1", "Error: insufficient system storage");
/** SPEC §6: a user callback threw. */
export const REPLY_CALLBACK_FAILED: Reply = fixed(
  451,
  "4.3.0",
  "Error: local error in processing",
);

/** Plain success of RSET, NOOP, XFORWARD. */
export const REPLY_OK: Reply = fixed(250, "2.0.0", "Ok");
/** RFC 3463 X.1.0: MAIL accepted. */
export const REPLY_MAIL_OK: Reply = fixed(250, "2.1.0", "Ok");
/** RFC 3463 X.1.5: RCPT accepted. */
export const REPLY_RCPT_OK: Reply = fixed(250, "2.1.5", "Ok");
/** RFC 5321 §4.1.1.4; no enhanced code on 354 (RFC 2034 §3, intermediate reply). */
export const REPLY_START_DATA: Reply = fixed(354, "", "End data with <CR><LF>.<CR><LF>");
/** RFC 5321 §4.1.1.10: QUIT, then the server closes. */
export const REPLY_BYE: Reply = fixed(221, "2.0.0", "Bye");
/** RFC 5321 §4.1.1.8: the commands; STARTTLS, AUTH, XCLIENT and XFORWARD only where EHLO offers them. */
export function helpReply(config: SessionConfig, state: { tls: boolean }): Reply {
  let commands = "EHLO HELO MAIL RCPT DATA BDAT RSET NOOP QUIT VRFY HELP";
  if (offersStartTls(config, state)) commands += " STARTTLS";
  if (offersAuth(config, state)) commands += " AUTH";
  if (config.trustedProxy) commands += " XCLIENT XFORWARD";
  return reply(214, "2.0.0", `Commands: ${commands}`);
}
/** RFC 5321 §3.5.3: VRFY may answer 252 when it cannot verify. */
export const REPLY_CANNOT_VRFY: Reply = fixed(
  252,
  "2.5.0",
  "Cannot VRFY user, but will accept message and attempt delivery",
);
/** EXPN, and STARTTLS where TLS is not configured (RFC 5321 §4.2.4). */
export const REPLY_NOT_IMPLEMENTED: Reply = fixed(502, "5.5.1", "Error: command not available");
/** RFC 5321 §4.2.4: unrecognised verb. */
export const REPLY_UNKNOWN_COMMAND: Reply = fixed(500, "5.5.2", "Error: command not recognized");
/** SPEC §4: a command line over `MAX_COMMAND_LINE_OCTETS`. */
export const REPLY_LINE_TOO_LONG: Reply = fixed(500, "5.5.2", "Error: line too long");
/** RFC 4954 §6: a line of an AUTH exchange over `MAX_AUTH_LINE_OCTETS`; the exchange fails. */
export const REPLY_AUTH_LINE_TOO_LONG: Reply = fixed(
  500,
  "5.5.6",
  "Authentication exchange line is too long",
);
/** RFC 5321 §4.1.4: MAIL (and AUTH, XFORWARD) need HELO/EHLO first. */
export const REPLY_NEED_HELO: Reply = fixed(503, "5.5.1", "Error: send HELO/EHLO first");
/** RFC 5321 §3.1: after a 554 (or other refusing) greeting, every command but QUIT. */
export const REPLY_REFUSED_SESSION: Reply = fixed(
  503,
  "5.5.1",
  "Error: this session was refused at connect, only QUIT is accepted",
);
/** RFC 5321 §4.1.4: MAIL inside a transaction. */
export const REPLY_NESTED_MAIL: Reply = fixed(503, "5.5.1", "Error: nested MAIL command");
/** RFC 5321 §4.1.4: RCPT, DATA or BDAT without MAIL. */
export const REPLY_NEED_MAIL: Reply = fixed(503, "5.5.1", "Error: need MAIL command");
/** RFC 5321 §3.3: DATA or BDAT without an accepted recipient. */
export const REPLY_NEED_RCPT: Reply = fixed(503, "5.5.1", "Error: need RCPT command");
/** STARTTLS, AUTH (RFC 4954 §4), XCLIENT, XFORWARD inside a transaction. */
export const REPLY_IN_TRANSACTION: Reply = fixed(
  503,
  "5.5.1",
  "Error: MAIL transaction in progress",
);
/** RFC 3030 §3: BODY=BINARYMIME content cannot travel through DATA. */
export const REPLY_BINARYMIME_NEEDS_BDAT: Reply = fixed(
  503,
  "5.5.1",
  "Error: BODY=BINARYMIME requires BDAT",
);
/** RFC 3030 §2: DATA and BDAT cannot be mixed in one transaction. */
export const REPLY_DATA_AFTER_BDAT: Reply = fixed(503, "5.5.1", "Error: DATA after BDAT");
/** RFC 3030 §2: recipients come before the first chunk. */
export const REPLY_RCPT_AFTER_BDAT: Reply = fixed(503, "5.5.1", "Error: RCPT after BDAT");
/** RFC 3030 §2: after a failed chunk the client must RSET. */
export const REPLY_TRANSACTION_FAILED: Reply = fixed(
  503,
  "5.5.1",
  "Error: transaction failed, send RSET",
);
/** SPEC §4 "bad arguments" (RFC 3463 X.1.7 would also fit): the reverse-path is not a mailbox. */
export const REPLY_BAD_SENDER: Reply = fixed(501, "5.5.4", "Bad sender address syntax");
/** SPEC §4 "bad arguments" (RFC 3463 X.1.3 would also fit): the forward-path is not a mailbox. */
export const REPLY_BAD_RECIPIENT: Reply = fixed(501, "5.5.4", "Bad recipient address syntax");
/** RFC 6531 §3.4: a non-ASCII address needs the SMTPUTF8 parameter. */
export const REPLY_NEED_SMTPUTF8: Reply = fixed(
  553,
  "5.6.7",
  "Must declare SMTPUTF8 to send unicode address",
);
/** RFC 1870 §6.1: a declared SIZE over the limit. */
export const REPLY_SIZE_EXCEEDED: Reply = fixed(552, "5.3.4", "Message size exceeds fixed limit");
/** SPEC §4: the received body went over `--max-size`. */
export const REPLY_MESSAGE_TOO_BIG: Reply = fixed(552, "5.3.4", "Error: message too big");
/** RFC 3463 X.5.3: too many recipients. */
export const REPLY_TOO_MANY_RECIPIENTS: Reply = fixed(452, "4.5.3", "Error: too many recipients");
/** RFC 3207 §4. */
export const REPLY_READY_TLS: Reply = fixed(220, "2.0.0", "Ready to start TLS");
/** RFC 3207 §4: STARTTLS on a TLS connection. */
export const REPLY_TLS_ACTIVE: Reply = fixed(503, "5.5.1", "Error: TLS already active");
/** RFC 3207 §4 / RFC 4954 §6 `530 5.7.0`. */
export const REPLY_TLS_REQUIRED: Reply = fixed(530, "5.7.0", "Must issue a STARTTLS command first");
/** RFC 4954 §6: `--require-auth` and MAIL before AUTH. */
export const REPLY_AUTH_REQUIRED: Reply = fixed(530, "5.7.0", "Authentication required");
/** RFC 4954 §4: AUTH after a successful AUTH. */
export const REPLY_ALREADY_AUTHENTICATED: Reply = fixed(
  503,
  "5.5.1",
  "Error: already authenticated",
);
/** RFC 4954 §4. */
export const REPLY_AUTH_OK: Reply = fixed(235, "2.7.0", "Authentication successful");
/** RFC 4954 §4: mechanism not offered. */
export const REPLY_AUTH_UNKNOWN_MECHANISM: Reply = fixed(
  504,
  "5.5.4",
  "Unrecognized authentication type",
);
/** RFC 4954 §4: the client sent `*`. */
export const REPLY_AUTH_CANCELLED: Reply = fixed(501, "5.0.0", "Authentication cancelled");
/** RFC 4954 §4: a response that is not base64. */
export const REPLY_AUTH_BAD_BASE64: Reply = fixed(501, "5.5.2", "Cannot decode response");
/** RFC 4954 §4: base64 that does not decode to what the mechanism needs. */
export const REPLY_AUTH_MALFORMED: Reply = fixed(501, "5.5.2", "Malformed authentication data");
/** XCLIENT/XFORWARD from a client outside `--trust-proxy` (Postfix wording). */
export const REPLY_NOT_AUTHORIZED: Reply = fixed(550, "5.7.0", "Error: insufficient authorization");
