/**
 * One handler per SMTP verb for `Session`: checks the command against the
 * session state, then queues a reply or pauses for the driver's decision.
 *
 * @module
 */

import { isAuthLine, parseCommand, redactCommand } from "./command.ts";
import { leadingChunkSize, parseBdatArgs } from "./bdat_decoder.ts";
import { isMechanism, SaslExchange, type SaslStep } from "./sasl.ts";
import {
  isRefusal,
  parseAttributes,
  parseMailArgs,
  parseRcptArgs,
  parseRecipient,
} from "./grammar.ts";
import type { SessionState } from "./_session_state.ts";
import { upperAscii } from "./_utf8.ts";
import * as R from "./reply.ts";

const XCLIENT_ATTRIBUTES = ["NAME", "ADDR", "PORT", "PROTO", "HELO", "LOGIN"] as const;
const XFORWARD_ATTRIBUTES = ["NAME", "ADDR", "PORT", "PROTO", "HELO", "IDENT", "SOURCE"] as const;

/**
 * Runs one command line.
 *
 * @param s the session state
 * @param line the line without its CRLF
 */
export function runCommand(s: SessionState, line: string): void {
  const command = parseCommand(line);
  if (s.config.transcript) {
    s.emit({ type: "transcript", line: redactCommand(line, command, s.afterAuth) });
    s.afterAuth = isAuthLine(line, command) || (command === null && s.afterAuth);
  }
  // RFC 5321 §3.1: after a refusing greeting the server "MUST still wait for
  // the client to send a QUIT" and "SHOULD respond to any intervening
  // commands with 503". The failed-command limit still applies.
  if (s.config.refusedGreeting !== undefined && command?.verb !== "QUIT") {
    return s.reply(R.REPLY_REFUSED_SESSION);
  }
  if (!command) return s.reply(R.REPLY_UNKNOWN_COMMAND);
  const { verb, args } = command;
  switch (verb) {
    case "HELO":
    case "EHLO":
      if (args === "") return s.reply(R.syntaxReply(`${verb} hostname`));
      return helo(s, verb, args.toWellFormed());
    case "MAIL":
      return mail(s, args);
    case "RCPT":
      return rcpt(s, args);
    case "DATA":
      return data(s, args);
    case "BDAT":
      return bdat(s, args);
    case "RSET":
      if (args !== "") return s.reply(R.syntaxReply(verb));
      s.finishTransaction();
      return s.reply(R.REPLY_OK);
    case "NOOP":
      return s.reply(R.REPLY_OK);
    case "QUIT":
      if (args !== "") return s.reply(R.syntaxReply(verb));
      s.reply(R.REPLY_BYE);
      return s.close();
    case "VRFY":
      return vrfy(s, args);
    case "EXPN":
      return s.reply(R.REPLY_NOT_IMPLEMENTED);
    case "HELP":
      return s.reply(R.helpReply(s.config, { tls: s.tls }));
    case "STARTTLS":
      return starttls(s, args);
    case "AUTH":
      return auth(s, args);
    case "XCLIENT":
    case "XFORWARD":
      return proxy(s, verb, args);
    default: {
      const unknown: never = verb;
      throw new Error(`Unhandled verb ${unknown}`);
    }
  }
}

/**
 * Acts on one step of a SASL exchange: a challenge, a failure or credentials.
 *
 * @param s the session state
 * @param step what the exchange answered
 */
export function saslStep(s: SessionState, step: SaslStep): void {
  if (step.type === "challenge") {
    // RFC 4954 §4: the next line is a SASL response, never a command.
    s.mode = "sasl";
    return s.reply(step.reply);
  }
  s.endSasl();
  if (step.type === "failed") return s.reply(step.reply);
  const { mechanism, username } = step.credentials;
  s.pendingAuth = { mechanism, username };
  s.pauseWith("auth", { type: "auth", ...step.credentials });
}

/** HELO/EHLO; `domain` is recorded as sent, malformed UTF-8 as U+FFFD (it has no grammar here). */
function helo(s: SessionState, verb: "HELO" | "EHLO", domain: string): void {
  s.finishTransaction();
  s.pendingHelo = { verb, domain };
  s.pauseWith("helo", { type: "helo", verb, domain });
}

function mail(s: SessionState, args: string): void {
  if (s.helo === null) return s.reply(R.REPLY_NEED_HELO);
  if (s.txn) return s.reply(R.REPLY_NESTED_MAIL);
  if (s.config.requireTls && !s.tls) return s.reply(R.REPLY_TLS_REQUIRED);
  if (s.config.requireAuth && !s.auth) return s.reply(R.REPLY_AUTH_REQUIRED);
  const mail = parseMailArgs(args, s.config.maxSize);
  if (isRefusal(mail)) return s.reply(mail);
  s.pendingMail = mail;
  s.pauseWith("mail", { type: "mail", reversePath: mail.reversePath, params: mail.params });
}

function rcpt(s: SessionState, args: string): void {
  const txn = s.txn;
  if (!txn) return s.reply(R.REPLY_NEED_MAIL);
  if (txn.via !== null || txn.failed) return s.reply(R.REPLY_RCPT_AFTER_BDAT);
  const rcpt = parseRcptArgs(args, txn.mail.smtputf8);
  if (isRefusal(rcpt)) return s.reply(rcpt);
  if (!s.acceptable(rcpt.forwardPath)) {
    return s.reply(R.recipientRejectedReply(rcpt.forwardPath));
  }
  if (txn.rcptTo.length >= s.config.maxRecipients) {
    return s.reply(R.REPLY_TOO_MANY_RECIPIENTS);
  }
  s.pendingRcpt = rcpt;
  s.pauseWith("rcpt", { type: "rcpt", forwardPath: rcpt.forwardPath, params: rcpt.params });
}

function data(s: SessionState, args: string): void {
  if (args !== "") return s.reply(R.syntaxReply("DATA"));
  const txn = s.txn;
  if (!txn) return s.reply(R.REPLY_NEED_MAIL);
  if (txn.via === "BDAT" || txn.failed) return s.reply(R.REPLY_DATA_AFTER_BDAT);
  if (txn.rcptTo.length === 0) return s.reply(R.REPLY_NEED_RCPT);
  if (txn.mail.body === "BINARYMIME") return s.reply(R.REPLY_BINARYMIME_NEEDS_BDAT);
  s.pendingStart = "DATA";
  s.pauseWith("message-start", { type: "message-start", via: "DATA" });
}

function bdat(s: SessionState, args: string): void {
  const chunk = parseBdatArgs(args);
  const txn = s.txn;
  if (!chunk) {
    // A line that still gives a size (`BDAT 5 FOO`) is followed by that many
    // octets: they are consumed and dropped, never read as commands.
    const size = leadingChunkSize(args);
    // RFC 3030 §2: an error reply to a BDAT chunk fails the transaction.
    if (txn && (s.sinkOpen || size !== null)) {
      s.closeSink("rejected");
      txn.failed = true;
    }
    const syntax = R.syntaxReply("BDAT size [LAST]");
    return size === null ? s.reply(syntax) : s.startChunk({ size, last: false }, syntax);
  }
  // The chunk's octets always follow; they are consumed whatever the answer (stream sync).
  if (!txn) return s.startChunk(chunk, R.REPLY_NEED_MAIL);
  if (txn.rcptTo.length === 0) return s.startChunk(chunk, R.REPLY_NEED_RCPT);
  if (txn.failed) return s.startChunk(chunk, R.REPLY_TRANSACTION_FAILED);
  if (s.sinkOpen) return s.startChunk(chunk, null);
  s.pendingStart = chunk;
  s.pauseWith("message-start", { type: "message-start", via: "BDAT" });
}

function vrfy(s: SessionState, args: string): void {
  if (args === "") return s.reply(R.syntaxReply("VRFY address"));
  if (s.config.acceptRcpt.length === 0) return s.reply(R.REPLY_CANNOT_VRFY);
  // RFC 5321 §3.5.1: a user name or a mailbox. The allow-list judges what was
  // given (a mailbox without its brackets and source route), never its syntax.
  // RFC 6531 §3.7.4.2: VRFY may carry the SMTPUTF8 parameter; it is not part of the name.
  const name = args.replace(/ +SMTPUTF8$/i, "");
  const bare = name.startsWith("<") && name.endsWith(">") ? name.slice(1, -1) : name;
  const address = parseRecipient(bare) ?? bare;
  s.reply(s.acceptable(address) ? R.vrfyOkReply(address) : R.recipientRejectedReply(address));
}

function starttls(s: SessionState, args: string): void {
  // TLS already up, by STARTTLS or on an implicit-TLS listener: the same answer.
  if (s.tls) return s.reply(R.REPLY_TLS_ACTIVE);
  if (!s.config.starttls) return s.reply(R.REPLY_NOT_IMPLEMENTED);
  if (args !== "") return s.reply(R.syntaxReply("STARTTLS"));
  if (s.txn) return s.reply(R.REPLY_IN_TRANSACTION);
  s.reply(R.REPLY_READY_TLS);
  s.pauseWith("starttls", { type: "starttls" });
}

function auth(s: SessionState, args: string): void {
  if (s.helo === null) return s.reply(R.REPLY_NEED_HELO);
  if (s.config.requireTls && !s.tls) return s.reply(R.REPLY_TLS_REQUIRED);
  if (s.auth) return s.reply(R.REPLY_ALREADY_AUTHENTICATED);
  if (s.txn) return s.reply(R.REPLY_IN_TRANSACTION);
  const parts = args.split(" ").filter((p) => p !== "");
  if (parts.length === 0 || parts.length > 2) {
    return s.reply(R.syntaxReply("AUTH mechanism [initial-response]"));
  }
  const mechanism = upperAscii(parts[0]!);
  if (!isMechanism(mechanism) || !s.config.authMechanisms.includes(mechanism)) {
    return s.reply(R.REPLY_AUTH_UNKNOWN_MECHANISM);
  }
  s.sasl = new SaslExchange(mechanism, s.config.cramChallenge);
  saslStep(s, s.sasl.start(parts[1] ?? null));
}

/** Postfix XCLIENT / XFORWARD: only from `--trust-proxy` networks. */
function proxy(s: SessionState, verb: "XCLIENT" | "XFORWARD", args: string): void {
  if (!s.config.trustedProxy) return s.reply(R.REPLY_NOT_AUTHORIZED);
  // Postfix XFORWARD_README: XFORWARD is accepted only after HELO/EHLO.
  if (verb === "XFORWARD" && s.helo === null) return s.reply(R.REPLY_NEED_HELO);
  if (s.txn) return s.reply(R.REPLY_IN_TRANSACTION);
  const allowed = verb === "XCLIENT" ? XCLIENT_ATTRIBUTES : XFORWARD_ATTRIBUTES;
  const attributes = parseAttributes(verb, args, allowed);
  if (isRefusal(attributes)) return s.reply(attributes);
  const merged = { ...(verb === "XCLIENT" ? s.xclient : s.xforward) };
  for (const [name, value] of Object.entries(attributes)) {
    if (value === null) delete merged[name];
    else merged[name] = value;
  }
  if (verb === "XFORWARD") {
    s.xforward = merged;
    return s.reply(R.REPLY_OK);
  }
  // Postfix XCLIENT_README: the session restarts as if the proxied client had connected.
  s.xclient = merged;
  s.helo = merged["HELO"] ?? null;
  // PROTO is what the proxied client spoke: the RFC 3848 base until the next HELO/EHLO.
  s.esmtp = upperAscii(merged["PROTO"] ?? "") === "ESMTP";
  // LOGIN: the proxy authenticated the client; Postfix records the method as XCLIENT.
  const login = merged["LOGIN"];
  s.auth = login === undefined ? null : { mechanism: "XCLIENT", username: login };
  s.finishTransaction();
  s.emit({ type: "xclient", attributes: merged });
  s.reply(R.greetingReply(s.config.hostname));
}
