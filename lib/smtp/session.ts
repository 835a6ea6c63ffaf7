/**
 * The SMTP server state machine, sans I/O (h11's design): bytes in through
 * `receive`, events out of `next`, decisions back through `resume…`. Framing,
 * grammar and body decoding live in their own files; this one owns the state.
 *
 * @module
 */

import type {
  AuthMechanism,
  Decision,
  Envelope,
  Reply,
  SessionApi,
  SessionConfig,
  SessionEvent,
} from "./events.ts";
import { parseCommand, redactCommand } from "./command.ts";
import { LineFramer } from "./line_framer.ts";
import { DotDecoder } from "./dot_decoder.ts";
import { type BdatArgs, BdatDecoder, parseBdatArgs } from "./bdat_decoder.ts";
import { isMechanism, SaslExchange, type SaslStep } from "./sasl.ts";
import { MAX_FAILED_COMMANDS } from "./limits.ts";
import {
  isRefusal,
  type MailArgs,
  parseAttributes,
  parseMailArgs,
  parseRcptArgs,
  parseRecipient,
  type RcptArgs,
} from "./grammar.ts";
import * as R from "./reply.ts";

type Pause = "helo" | "mail" | "rcpt" | "auth" | "message-start" | "message-end" | "starttls";
/** What the next received bytes are: command lines, a SASL response, a DATA body, a BDAT chunk. */
type Mode = "command" | "sasl" | "data" | "bdat" | "closed";

/** An open mail transaction (RFC 5321 §3.3), from an accepted MAIL to its end. */
interface Transaction {
  mail: MailArgs;
  rcptTo: string[];
  rcptParams: Record<string, string | true>[];
  /** How the body is coming, once it started. */
  via: "DATA" | "BDAT" | null;
  /** RFC 3030 §2: a failed BDAT chunk leaves the transaction usable only for RSET. */
  failed: boolean;
}

/** One BDAT chunk being consumed; `reply` set means its bytes are discarded and that is the answer. */
interface Chunk {
  args: BdatArgs;
  reply: Reply | null;
}

const EMPTY = new Uint8Array(0);
const NEED_DATA: SessionEvent = Object.freeze({ type: "need-data" });
const PAUSED: SessionEvent = Object.freeze({ type: "paused" });
/** UTF-8, not fatal: SMTPUTF8 addresses arrive raw (RFC 6531); junk only fails the grammar. */
const UTF8 = new TextDecoder();
/** Smallest own buffer when unparsed bytes must be joined with new ones. */
const MIN_STORE = 4096;
const XCLIENT_ATTRIBUTES = ["NAME", "ADDR", "PORT", "PROTO", "HELO", "LOGIN"] as const;
const XFORWARD_ATTRIBUTES = ["NAME", "ADDR", "PORT", "PROTO", "HELO", "IDENT", "SOURCE"] as const;

/**
 * One SMTP server session (SPEC §4). Never throws from `receive` or `next`;
 * a `resume…` call that does not match the pause throws (a driver bug).
 *
 * `receive` keeps a reference to the given bytes (no copy) until they are
 * parsed, and `message-data` events are subarrays of them: pass a fresh array
 * each time and do not modify it afterwards.
 *
 * @example Usage
 * ```ts
 * import { Session } from "./session.ts";
 * const session = new Session({
 *   hostname: "mx.test", maxSize: 1000, maxRecipients: 10, starttls: false,
 *   tlsActive: false, requireTls: false, requireAuth: false, authMechanisms: [],
 *   trustedProxy: false, acceptRcpt: [], cramChallenge: () => "", transcript: false,
 * });
 * session.receive(new TextEncoder().encode("NOOP\r\n"));
 * session.next(); // { type: "reply", reply: { code: 250, … }, bytes }
 * ```
 */
export class Session implements SessionApi {
  readonly #config: SessionConfig;
  readonly #framer = new LineFramer();
  readonly #dot = new DotDecoder();
  readonly #bdat = new BdatDecoder();
  readonly #onBody = (bytes: Uint8Array): void => this.#body(bytes);
  #buf: Uint8Array = EMPTY;
  #pos = 0;
  #end = 0;
  /** `#buf` was allocated here, so its bytes past `#end` may be written. */
  #own = false;
  #events: SessionEvent[] = [];
  #head = 0;
  #mode: Mode = "command";
  #pause: Pause | null = null;
  #failures = 0;
  #tls: boolean;
  #helo: string | null = null;
  #esmtp = false;
  #auth: { mechanism: AuthMechanism; username: string } | null = null;
  #xclient: Record<string, string> = {};
  #xforward: Record<string, string> = {};
  #txn: Transaction | null = null;
  #sinkOpen = false;
  #size = 0;
  #oversize = false;
  #chunk: Chunk | null = null;
  #sasl: SaslExchange | null = null;
  #pendingHelo: { verb: "HELO" | "EHLO"; domain: string } | null = null;
  #pendingMail: MailArgs | null = null;
  #pendingRcpt: RcptArgs | null = null;
  #pendingAuth: { mechanism: AuthMechanism; username: string } | null = null;
  #pendingStart: BdatArgs | "DATA" | null = null;

  /**
   * Creates a session in the just-connected state; send `greeting()` first.
   *
   * @param config fixed for the connection
   */
  constructor(config: SessionConfig) {
    this.#config = config;
    this.#tls = config.tlsActive;
  }

  /** The `220` greeting bytes; send once at connect. */
  greeting(): Uint8Array {
    return R.formatReply(R.greetingReply(this.#config.hostname));
  }

  /** Hands over received bytes (kept by reference until parsed); never throws. */
  receive(bytes: Uint8Array): void {
    if (this.#mode === "closed" || bytes.length === 0) return;
    const live = this.#end - this.#pos;
    if (live === 0) {
      this.#buf = bytes;
      this.#pos = 0;
      this.#end = bytes.length;
      this.#own = false;
    } else if (this.#own && this.#buf.length - this.#end >= bytes.length) {
      // Past `#end` nothing was ever handed out, so appending there is safe.
      this.#buf.set(bytes, this.#end);
      this.#end += bytes.length;
    } else {
      // Grow geometrically: a client that keeps sending while paused costs O(n).
      const store = new Uint8Array(Math.max(live + bytes.length, live * 2, MIN_STORE));
      store.set(this.#buf.subarray(this.#pos, this.#end));
      store.set(bytes, live);
      this.#buf = store;
      this.#pos = 0;
      this.#end = live + bytes.length;
      this.#own = true;
    }
  }

  /** The next event; never throws. */
  next(): SessionEvent {
    for (;;) {
      if (this.#head < this.#events.length) {
        const event = this.#events[this.#head++]!;
        if (this.#head === this.#events.length) {
          this.#events = [];
          this.#head = 0;
        }
        return event;
      }
      if (this.#pause !== null) return PAUSED;
      if (!this.#step()) {
        if (this.#pos === this.#end) this.#drop();
        return NEED_DATA;
      }
    }
  }

  /** Received bytes not yet parsed (a view; held while paused). */
  pending(): Uint8Array {
    return this.#buf.subarray(this.#pos, this.#end);
  }

  /** True while waiting for a command with no transaction open. */
  idle(): boolean {
    return this.#mode === "command" && this.#pause === null && this.#txn === null;
  }

  /** True while a DATA body or a BDAT chunk is being received. */
  inBody(): boolean {
    return this.#mode === "data" || this.#mode === "bdat";
  }

  /** Answers `helo`: `null` sends the HELO/EHLO reply and records the name. */
  resumeHelo(decision: Decision): void {
    this.#resume("helo");
    const { verb, domain } = this.#pendingHelo!;
    this.#pendingHelo = null;
    if (decision) return this.#reply(decision);
    this.#helo = domain;
    this.#esmtp = verb === "EHLO";
    this.#reply(
      this.#esmtp
        ? R.ehloReply(this.#config, domain, { tls: this.#tls })
        : R.heloReply(this.#config.hostname),
    );
  }

  /** Answers `mail`: `null` opens the transaction (`250 2.1.0`). */
  resumeMail(decision: Decision): void {
    this.#resume("mail");
    const mail = this.#pendingMail!;
    this.#pendingMail = null;
    if (decision) return this.#reply(decision);
    this.#txn = { mail, rcptTo: [], rcptParams: [], via: null, failed: false };
    this.#reply(R.REPLY_MAIL_OK);
  }

  /** Answers `rcpt`: `null` adds the recipient (`250 2.1.5`). */
  resumeRcpt(decision: Decision): void {
    this.#resume("rcpt");
    const rcpt = this.#pendingRcpt!;
    this.#pendingRcpt = null;
    if (decision) return this.#reply(decision);
    this.#txn!.rcptTo.push(rcpt.forwardPath);
    this.#txn!.rcptParams.push(rcpt.params);
    this.#reply(R.REPLY_RCPT_OK);
  }

  /** Answers `auth`: `null` means the credentials are good (`235 2.7.0`). */
  resumeAuth(decision: Decision): void {
    this.#resume("auth");
    const auth = this.#pendingAuth!;
    this.#pendingAuth = null;
    if (decision) return this.#reply(decision);
    this.#auth = auth;
    this.#reply(R.REPLY_AUTH_OK);
  }

  /** Answers `message-start`: `null` opens the body (`354` for DATA). */
  resumeMessageStart(decision: Decision): void {
    this.#resume("message-start");
    const start = this.#pendingStart!;
    this.#pendingStart = null;
    const txn = this.#txn!;
    if (start === "DATA") {
      if (decision) {
        this.#finishTransaction();
        return this.#reply(decision);
      }
      this.#openSink("DATA");
      this.#dot.reset();
      this.#mode = "data";
      return this.#reply(R.REPLY_START_DATA);
    }
    if (decision) {
      // RFC 5321 §3.8: after 421 the channel closes; no point reading the chunk.
      if (decision.code === 421) return this.#reply(decision);
      if (start.last) this.#finishTransaction();
      else txn.failed = true;
      return this.#startChunk(start, decision);
    }
    this.#openSink("BDAT");
    this.#startChunk(start, null);
  }

  /** Answers `message-end` with the reply to send; the transaction ends. */
  resumeMessageEnd(reply: Reply): void {
    this.#resume("message-end");
    this.#finishTransaction();
    this.#reply(reply);
  }

  /** TLS is up: back to the connected state; bytes pipelined after STARTTLS are dropped. */
  resumeTls(): void {
    this.#resume("starttls");
    // CVE-2011-0411: bytes pipelined after STARTTLS came in plaintext; never execute them.
    this.#drop();
    this.#framer.reset();
    this.#tls = true;
    // RFC 3207 §4.2: the server discards all knowledge obtained from the client.
    this.#helo = null;
    this.#esmtp = false;
    this.#auth = null;
    this.#finishTransaction();
  }

  /** Parses what it can; false when nothing more happens without new bytes. */
  #step(): boolean {
    switch (this.#mode) {
      case "command":
      case "sasl":
        return this.#stepLine();
      case "data":
        return this.#stepData();
      case "bdat":
        return this.#stepChunk();
      case "closed":
        return false;
      default: {
        const unknown: never = this.#mode;
        throw new Error(`Unhandled mode ${unknown}`);
      }
    }
  }

  #stepLine(): boolean {
    if (this.#pos === this.#end) return false;
    const frame = this.#framer.frame(this.#buf, this.#pos, this.#end);
    this.#pos += frame.consumed;
    switch (frame.type) {
      case "need-data":
        return false;
      case "skipped":
        return true;
      case "too-long":
        if (this.#mode === "sasl") this.#endSasl();
        this.#reply(R.REPLY_LINE_TOO_LONG);
        return true;
      case "line": {
        const line = UTF8.decode(this.#buf.subarray(frame.lineStart, frame.lineEnd));
        if (this.#mode === "sasl") {
          if (this.#config.transcript) this.#emit({ type: "transcript", line: "***" });
          this.#saslStep(this.#sasl!.respond(line));
        } else {
          this.#command(line);
        }
        return true;
      }
      default: {
        const unknown: never = frame;
        throw new Error(`Unhandled frame ${JSON.stringify(unknown)}`);
      }
    }
  }

  #stepData(): boolean {
    if (this.#pos === this.#end) return false;
    this.#pos += this.#dot.decode(this.#buf.subarray(this.#pos, this.#end), this.#onBody);
    if (this.#dot.done) {
      this.#mode = "command";
      this.#endBody("DATA", true);
    }
    return true;
  }

  #stepChunk(): boolean {
    const chunk = this.#chunk!;
    if (!this.#bdat.done) {
      if (this.#pos === this.#end) return false;
      const piece = this.#bdat.take(this.#buf.subarray(this.#pos, this.#end));
      this.#pos += piece.length;
      if (chunk.reply === null) this.#body(piece);
      if (!this.#bdat.done) return true;
    }
    this.#chunk = null;
    this.#mode = "command";
    if (chunk.reply) this.#reply(chunk.reply);
    else this.#endBody("BDAT", chunk.args.last, chunk.args.size);
    return true;
  }

  /** Counts body bytes; past `maxSize` they are dropped (SPEC §4: `552 5.3.4` at the end). */
  #body(bytes: Uint8Array): void {
    if (this.#oversize || bytes.length === 0) return;
    this.#size += bytes.length;
    if (this.#size > this.#config.maxSize) this.#oversize = true;
    else this.#emit({ type: "message-data", bytes });
  }

  #endBody(via: "DATA" | "BDAT", last: boolean, chunkSize = 0): void {
    if (this.#oversize) {
      this.#closeSink("size");
      this.#finishTransaction();
      return this.#reply(R.REPLY_MESSAGE_TOO_BIG);
    }
    if (!last) return this.#reply(R.bdatChunkReply(chunkSize));
    this.#sinkOpen = false;
    this.#pauseWith("message-end", {
      type: "message-end",
      envelope: this.#envelope(via),
      size: this.#size,
    });
  }

  #command(line: string): void {
    const command = parseCommand(line);
    if (this.#config.transcript) {
      this.#emit({ type: "transcript", line: redactCommand(line, command) });
    }
    if (!command) return this.#reply(R.REPLY_UNKNOWN_COMMAND);
    const { verb, args } = command;
    switch (verb) {
      case "HELO":
      case "EHLO":
        if (args === "") return this.#reply(R.syntaxReply(`${verb} hostname`));
        this.#finishTransaction();
        this.#pendingHelo = { verb, domain: args };
        return this.#pauseWith("helo", { type: "helo", verb, domain: args });
      case "MAIL":
        return this.#mail(args);
      case "RCPT":
        return this.#rcpt(args);
      case "DATA":
        return this.#data(args);
      case "BDAT":
        return this.#bdatCommand(args);
      case "RSET":
        if (args !== "") return this.#reply(R.syntaxReply(verb));
        this.#finishTransaction();
        return this.#reply(R.REPLY_OK);
      case "NOOP":
        return this.#reply(R.REPLY_OK);
      case "QUIT":
        if (args !== "") return this.#reply(R.syntaxReply(verb));
        this.#reply(R.REPLY_BYE);
        return this.#close();
      case "VRFY":
        return this.#vrfy(args);
      case "EXPN":
        return this.#reply(R.REPLY_NOT_IMPLEMENTED);
      case "HELP":
        return this.#reply(R.REPLY_HELP);
      case "STARTTLS":
        return this.#starttls(args);
      case "AUTH":
        return this.#authCommand(args);
      case "XCLIENT":
      case "XFORWARD":
        return this.#proxyCommand(verb, args);
      default: {
        const unknown: never = verb;
        throw new Error(`Unhandled verb ${unknown}`);
      }
    }
  }

  #mail(args: string): void {
    if (this.#helo === null) return this.#reply(R.REPLY_NEED_HELO);
    if (this.#txn) return this.#reply(R.REPLY_NESTED_MAIL);
    if (this.#config.requireTls && !this.#tls) return this.#reply(R.REPLY_TLS_REQUIRED);
    if (this.#config.requireAuth && !this.#auth) return this.#reply(R.REPLY_AUTH_REQUIRED);
    const mail = parseMailArgs(args, this.#config.maxSize);
    if (isRefusal(mail)) return this.#reply(mail);
    this.#pendingMail = mail;
    this.#pauseWith("mail", { type: "mail", reversePath: mail.reversePath, params: mail.params });
  }

  #rcpt(args: string): void {
    const txn = this.#txn;
    if (!txn) return this.#reply(R.REPLY_NEED_MAIL);
    if (txn.via !== null || txn.failed) return this.#reply(R.REPLY_RCPT_AFTER_BDAT);
    const rcpt = parseRcptArgs(args, txn.mail.smtputf8);
    if (isRefusal(rcpt)) return this.#reply(rcpt);
    if (!this.#acceptable(rcpt.forwardPath)) {
      return this.#reply(R.recipientRejectedReply(rcpt.forwardPath));
    }
    if (txn.rcptTo.length >= this.#config.maxRecipients) {
      return this.#reply(R.REPLY_TOO_MANY_RECIPIENTS);
    }
    this.#pendingRcpt = rcpt;
    this.#pauseWith("rcpt", { type: "rcpt", forwardPath: rcpt.forwardPath, params: rcpt.params });
  }

  #data(args: string): void {
    if (args !== "") return this.#reply(R.syntaxReply("DATA"));
    const txn = this.#txn;
    if (!txn) return this.#reply(R.REPLY_NEED_MAIL);
    if (txn.via === "BDAT" || txn.failed) return this.#reply(R.REPLY_DATA_AFTER_BDAT);
    if (txn.rcptTo.length === 0) return this.#reply(R.REPLY_NEED_RCPT);
    if (txn.mail.body === "BINARYMIME") return this.#reply(R.REPLY_BINARYMIME_NEEDS_BDAT);
    this.#pendingStart = "DATA";
    this.#pauseWith("message-start", { type: "message-start", via: "DATA" });
  }

  #bdatCommand(args: string): void {
    const chunk = parseBdatArgs(args);
    const txn = this.#txn;
    if (!chunk) {
      // RFC 3030 §2: an error reply to BDAT fails the transaction.
      if (txn && this.#sinkOpen) {
        this.#closeSink("rejected");
        txn.failed = true;
      }
      return this.#reply(R.syntaxReply("BDAT size [LAST]"));
    }
    // The chunk's octets always follow; they are consumed whatever the answer (stream sync).
    if (!txn) return this.#startChunk(chunk, R.REPLY_NEED_MAIL);
    if (txn.rcptTo.length === 0) return this.#startChunk(chunk, R.REPLY_NEED_RCPT);
    if (txn.failed) return this.#startChunk(chunk, R.REPLY_TRANSACTION_FAILED);
    if (this.#sinkOpen) return this.#startChunk(chunk, null);
    this.#pendingStart = chunk;
    this.#pauseWith("message-start", { type: "message-start", via: "BDAT" });
  }

  #startChunk(args: BdatArgs, reply: Reply | null): void {
    this.#chunk = { args, reply };
    this.#bdat.start(args.size);
    this.#mode = "bdat";
  }

  #vrfy(args: string): void {
    if (args === "") return this.#reply(R.syntaxReply("VRFY address"));
    if (this.#config.acceptRcpt.length === 0) return this.#reply(R.REPLY_CANNOT_VRFY);
    const bare = args.startsWith("<") && args.endsWith(">") ? args.slice(1, -1) : args;
    const address = parseRecipient(bare);
    if (address === null) return this.#reply(R.REPLY_BAD_RECIPIENT);
    this.#reply(
      this.#acceptable(address) ? R.vrfyOkReply(address) : R.recipientRejectedReply(address),
    );
  }

  #starttls(args: string): void {
    if (!this.#config.starttls) return this.#reply(R.REPLY_NOT_IMPLEMENTED);
    if (this.#tls) return this.#reply(R.REPLY_TLS_ACTIVE);
    if (args !== "") return this.#reply(R.syntaxReply("STARTTLS"));
    if (this.#txn) return this.#reply(R.REPLY_IN_TRANSACTION);
    this.#reply(R.REPLY_READY_TLS);
    this.#pauseWith("starttls", { type: "starttls" });
  }

  #authCommand(args: string): void {
    if (this.#helo === null) return this.#reply(R.REPLY_NEED_HELO);
    if (this.#config.requireTls && !this.#tls) return this.#reply(R.REPLY_TLS_REQUIRED);
    if (this.#auth) return this.#reply(R.REPLY_ALREADY_AUTHENTICATED);
    if (this.#txn) return this.#reply(R.REPLY_IN_TRANSACTION);
    const parts = args.split(" ").filter((p) => p !== "");
    if (parts.length === 0 || parts.length > 2) {
      return this.#reply(R.syntaxReply("AUTH mechanism [initial-response]"));
    }
    const mechanism = parts[0]!.toUpperCase();
    if (!isMechanism(mechanism) || !this.#config.authMechanisms.includes(mechanism)) {
      return this.#reply(R.REPLY_AUTH_UNKNOWN_MECHANISM);
    }
    this.#sasl = new SaslExchange(mechanism, this.#config.cramChallenge);
    this.#saslStep(this.#sasl.start(parts[1] ?? null));
  }

  #saslStep(step: SaslStep): void {
    if (step.type === "challenge") {
      // RFC 4954 §4: the next line is a SASL response, never a command.
      this.#mode = "sasl";
      return this.#reply(step.reply);
    }
    this.#endSasl();
    if (step.type === "failed") return this.#reply(step.reply);
    const { mechanism, username } = step.credentials;
    this.#pendingAuth = { mechanism, username };
    this.#pauseWith("auth", { type: "auth", ...step.credentials });
  }

  #endSasl(): void {
    this.#sasl = null;
    this.#mode = "command";
  }

  /** Postfix XCLIENT / XFORWARD: only from `--trust-proxy` networks. */
  #proxyCommand(verb: "XCLIENT" | "XFORWARD", args: string): void {
    if (!this.#config.trustedProxy) return this.#reply(R.REPLY_NOT_AUTHORIZED);
    // Postfix XFORWARD_README: XFORWARD is accepted only after HELO/EHLO.
    if (verb === "XFORWARD" && this.#helo === null) return this.#reply(R.REPLY_NEED_HELO);
    if (this.#txn) return this.#reply(R.REPLY_IN_TRANSACTION);
    const allowed = verb === "XCLIENT" ? XCLIENT_ATTRIBUTES : XFORWARD_ATTRIBUTES;
    const attributes = parseAttributes(verb, args, allowed);
    if (isRefusal(attributes)) return this.#reply(attributes);
    const merged = { ...(verb === "XCLIENT" ? this.#xclient : this.#xforward) };
    for (const [name, value] of Object.entries(attributes)) {
      if (value === null) delete merged[name];
      else merged[name] = value;
    }
    if (verb === "XFORWARD") {
      this.#xforward = merged;
      return this.#reply(R.REPLY_OK);
    }
    // Postfix XCLIENT_README: the session restarts as if the proxied client had connected.
    this.#xclient = merged;
    this.#helo = merged["HELO"] ?? null;
    this.#esmtp = false;
    this.#auth = null;
    this.#finishTransaction();
    this.#emit({ type: "xclient", attributes: merged });
    this.#reply(R.greetingReply(this.#config.hostname));
  }

  #acceptable(address: string): boolean {
    const patterns = this.#config.acceptRcpt;
    if (patterns.length === 0) return true;
    return patterns.some((re) => {
      // A /g or /y pattern would carry lastIndex from one test to the next.
      re.lastIndex = 0;
      return re.test(address);
    });
  }

  #envelope(via: "DATA" | "BDAT"): Envelope {
    const txn = this.#txn!;
    return {
      mailFrom: txn.mail.reversePath,
      mailParams: txn.mail.params,
      rcptTo: txn.rcptTo,
      rcptParams: txn.rcptParams,
      helo: this.#helo,
      esmtp: this.#esmtp,
      tls: this.#tls,
      auth: this.#auth,
      smtputf8: txn.mail.smtputf8,
      xforward: this.#xforward,
      xclient: this.#xclient,
      via,
    };
  }

  #openSink(via: "DATA" | "BDAT"): void {
    this.#txn!.via = via;
    this.#sinkOpen = true;
    this.#size = 0;
    this.#oversize = false;
  }

  #closeSink(reason: "size" | "rejected" | "reset"): void {
    if (!this.#sinkOpen) return;
    this.#sinkOpen = false;
    this.#emit({ type: "message-abort", reason });
  }

  /** Ends the transaction (stored, failed, RSET, HELO, QUIT); XFORWARD data goes with it. */
  #finishTransaction(): void {
    this.#closeSink("reset");
    this.#txn = null;
    this.#xforward = {};
  }

  /** Queues a reply; every 5xx counts as a failed command, the 20th ends the session. */
  #reply(reply: Reply): void {
    let sent = reply;
    if (reply.code >= 500 && reply.code <= 599) {
      this.#failures++;
      if (this.#failures >= MAX_FAILED_COMMANDS) sent = R.tooManyErrorsReply(this.#config.hostname);
    }
    this.#emit({ type: "reply", reply: sent, bytes: R.formatReply(sent) });
    // RFC 5321 §3.8: a 421 reply closes the transmission channel.
    if (sent.code === 421) this.#close();
  }

  #close(): void {
    this.#finishTransaction();
    this.#emit({ type: "close" });
    this.#mode = "closed";
    this.#pause = null;
    this.#drop();
  }

  #emit(event: SessionEvent): void {
    this.#events.push(event);
  }

  #pauseWith(pause: Pause, event: SessionEvent): void {
    this.#emit(event);
    this.#pause = pause;
  }

  #resume(pause: Pause): void {
    if (this.#pause !== pause) {
      const state = this.#pause === null ? "not paused" : `paused at "${this.#pause}"`;
      throw new Error(`Cannot resume "${pause}": the session is ${state}`);
    }
    this.#pause = null;
  }

  /** Forgets unparsed bytes (after STARTTLS or close) and releases the buffer. */
  #drop(): void {
    this.#buf = EMPTY;
    this.#pos = 0;
    this.#end = 0;
    this.#own = false;
  }
}
