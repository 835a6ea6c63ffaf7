/**
 * The SMTP server state machine, sans I/O (h11's design): bytes in through
 * `receive`, events out of `next`, decisions back through `resume…`. Framing,
 * grammar and body decoding live in their own files; the state and its
 * transitions in `_session_state.ts`, the command handlers in
 * `_session_commands.ts`; this one drives them.
 *
 * @module
 */

import type { Decision, Reply, SessionApi, SessionConfig, SessionEvent } from "./events.ts";
import { LineFramer } from "./line_framer.ts";
import { DotDecoder } from "./dot_decoder.ts";
import { SessionState } from "./_session_state.ts";
import { runCommand, saslStep } from "./_session_commands.ts";
import { decodeLine } from "./_utf8.ts";
import * as R from "./reply.ts";

const NEED_DATA: SessionEvent = Object.freeze({ type: "need-data" });
const PAUSED: SessionEvent = Object.freeze({ type: "paused" });

/**
 * One SMTP server session (SPEC §4). Never throws from `receive` or `next`;
 * a `resume…` call that does not match the pause throws (a driver bug).
 *
 * `receive` keeps a reference to the given bytes (no copy) until `next()`
 * returns `need-data` (bytes still unparsed then, a partial line, are copied),
 * and `message-data` events are subarrays of them: do not modify a chunk
 * before that `need-data`.
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
  readonly #s: SessionState;
  readonly #framer = new LineFramer();
  readonly #dot = new DotDecoder();
  readonly #onBody = (bytes: Uint8Array): void => this.#body(bytes);

  /**
   * Creates a session in the just-connected state; send `greeting()` first.
   *
   * @param config fixed for the connection
   */
  constructor(config: SessionConfig) {
    this.#s = new SessionState(config);
  }

  /** The `220` greeting bytes (or `config.refusedGreeting`); send once at connect. */
  greeting(): Uint8Array {
    const config = this.#s.config;
    return R.formatReply(config.refusedGreeting ?? R.greetingReply(config.hostname));
  }

  /** Hands over received bytes (kept by reference until parsed); never throws. */
  receive(bytes: Uint8Array): void {
    if (this.#s.mode === "closed" || bytes.length === 0) return;
    this.#s.input.receive(bytes);
  }

  /** The next event; never throws. */
  next(): SessionEvent {
    const s = this.#s;
    for (;;) {
      if (s.head < s.events.length) {
        const event = s.events[s.head++]!;
        if (s.head === s.events.length) {
          s.events = [];
          s.head = 0;
        }
        return event;
      }
      if (s.pause !== null) return PAUSED;
      if (!this.#step()) {
        // After need-data the driver may reuse its read buffer: hold no view of it.
        if (s.input.empty()) s.input.drop();
        else s.input.keep();
        return NEED_DATA;
      }
    }
  }

  /** Received bytes not yet parsed (a view; held while paused). */
  pending(): Uint8Array {
    return this.#s.input.pending();
  }

  /** True while waiting for a command with no transaction open. */
  idle(): boolean {
    return this.#s.mode === "command" && this.#s.pause === null && this.#s.txn === null;
  }

  /** True while a DATA body or a BDAT chunk is being received. */
  inBody(): boolean {
    return this.#s.mode === "data" || this.#s.mode === "bdat";
  }

  /** Answers `helo`: `null` sends the HELO/EHLO reply and records the name. */
  resumeHelo(decision: Decision): void {
    const s = this.#s;
    s.resume("helo");
    const { verb, domain } = s.pendingHelo!;
    s.pendingHelo = null;
    if (decision) return s.reply(decision);
    s.helo = domain;
    s.esmtp = verb === "EHLO";
    s.reply(
      s.esmtp ? R.ehloReply(s.config, domain, { tls: s.tls }) : R.heloReply(s.config.hostname),
    );
  }

  /** Answers `mail`: `null` opens the transaction (`250 2.1.0`). */
  resumeMail(decision: Decision): void {
    const s = this.#s;
    s.resume("mail");
    const mail = s.pendingMail!;
    s.pendingMail = null;
    if (decision) return s.reply(decision);
    s.txn = { mail, rcptTo: [], rcptParams: [], via: null, failed: false };
    s.reply(R.REPLY_MAIL_OK);
  }

  /** Answers `rcpt`: `null` adds the recipient (`250 2.1.5`). */
  resumeRcpt(decision: Decision): void {
    const s = this.#s;
    s.resume("rcpt");
    const rcpt = s.pendingRcpt!;
    s.pendingRcpt = null;
    if (decision) return s.reply(decision);
    s.txn!.rcptTo.push(rcpt.forwardPath);
    s.txn!.rcptParams.push(rcpt.params);
    s.reply(R.REPLY_RCPT_OK);
  }

  /** Answers `auth`: `null` means the credentials are good (`235 2.7.0`). */
  resumeAuth(decision: Decision): void {
    const s = this.#s;
    s.resume("auth");
    const auth = s.pendingAuth!;
    s.pendingAuth = null;
    if (decision) return s.reply(decision);
    s.auth = auth;
    s.reply(R.REPLY_AUTH_OK);
  }

  /** Answers `message-start`: `null` opens the body (`354` for DATA). */
  resumeMessageStart(decision: Decision): void {
    const s = this.#s;
    s.resume("message-start");
    const start = s.pendingStart!;
    s.pendingStart = null;
    const txn = s.txn!;
    if (start === "DATA") {
      if (decision) {
        s.finishTransaction();
        return s.reply(decision);
      }
      s.openSink("DATA");
      this.#dot.reset();
      s.mode = "data";
      return s.reply(R.REPLY_START_DATA);
    }
    if (decision) {
      // RFC 5321 §3.8: after 421 the channel closes; no point reading the chunk.
      if (decision.code === 421) return s.reply(decision);
      if (start.last) s.finishTransaction();
      else txn.failed = true;
      return s.startChunk(start, decision);
    }
    s.openSink("BDAT");
    s.startChunk(start, null);
  }

  /** Answers `chunk-end`: `null` acknowledges the chunk, a reply fails the transaction. */
  resumeChunkEnd(decision: Decision): void {
    const s = this.#s;
    s.resume("chunk-end");
    if (decision === null) return s.reply(R.bdatChunkReply(s.pendingChunkSize));
    s.closeSink("rejected");
    s.txn!.failed = true;
    s.reply(decision);
  }

  /** Answers `message-end` with the reply to send; the transaction ends. */
  resumeMessageEnd(reply: Reply): void {
    this.#s.resume("message-end");
    this.#s.finishTransaction();
    this.#s.reply(reply);
  }

  /** TLS is up: back to the connected state; bytes pipelined after STARTTLS are dropped. */
  resumeTls(): void {
    const s = this.#s;
    s.resume("starttls");
    // CVE-2011-0411: bytes pipelined after STARTTLS came in plaintext; never execute them.
    s.input.drop();
    this.#framer.reset();
    s.tls = true;
    // RFC 3207 §4.2: the server discards all knowledge obtained from the client.
    s.helo = null;
    s.esmtp = false;
    s.auth = null;
    s.finishTransaction();
  }

  /** Parses what it can; false when nothing more happens without new bytes. */
  #step(): boolean {
    switch (this.#s.mode) {
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
        const unknown: never = this.#s.mode;
        throw new Error(`Unhandled mode ${unknown}`);
      }
    }
  }

  #stepLine(): boolean {
    const s = this.#s;
    const input = s.input;
    if (input.empty()) return false;
    this.#framer.sasl = s.mode === "sasl";
    const frame = this.#framer.frame(input.bytes, input.pos, input.end);
    input.pos += frame.consumed;
    switch (frame.type) {
      case "need-data":
        return false;
      case "skipped":
        return true;
      case "too-long":
        // RFC 4954 §4: a line the server cannot take fails the AUTH exchange.
        if (s.mode === "sasl") s.endSasl();
        s.reply(frame.auth ? R.REPLY_AUTH_LINE_TOO_LONG : R.REPLY_LINE_TOO_LONG);
        return true;
      case "line": {
        // SMTPUTF8 addresses arrive raw (RFC 6531); malformed UTF-8 then fails the grammar.
        const line = decodeLine(input.bytes.subarray(frame.lineStart, frame.lineEnd));
        if (s.mode === "sasl") {
          if (s.config.transcript) s.emit({ type: "transcript", line: "***" });
          saslStep(s, s.sasl!.respond(line));
        } else {
          runCommand(s, line);
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
    const s = this.#s;
    if (s.input.empty()) return false;
    s.input.pos += this.#dot.decode(s.input.pending(), this.#onBody);
    if (this.#dot.done) {
      s.mode = "command";
      this.#endBody("DATA", true);
    }
    return true;
  }

  #stepChunk(): boolean {
    const s = this.#s;
    const chunk = s.chunk!;
    if (!s.bdat.done) {
      if (s.input.empty()) return false;
      const piece = s.bdat.take(s.input.pending());
      s.input.pos += piece.length;
      if (chunk.reply === null) this.#body(piece);
      if (!s.bdat.done) return true;
    }
    s.chunk = null;
    s.mode = "command";
    if (chunk.reply) s.reply(chunk.reply);
    else this.#endBody("BDAT", chunk.args.last, chunk.args.size);
    return true;
  }

  /** Counts body bytes; past `maxSize` they are dropped (SPEC §4: `552 5.3.4` at the end). */
  #body(bytes: Uint8Array): void {
    const s = this.#s;
    if (s.oversize || bytes.length === 0) return;
    s.size += bytes.length;
    if (s.size > s.config.maxSize) s.oversize = true;
    else s.emit({ type: "message-data", bytes });
  }

  #endBody(via: "DATA" | "BDAT", last: boolean, chunkSize = 0): void {
    const s = this.#s;
    if (s.oversize) {
      s.closeSink("size");
      s.finishTransaction();
      return s.reply(R.REPLY_MESSAGE_TOO_BIG);
    }
    if (!last) {
      s.pendingChunkSize = chunkSize;
      return s.pauseWith("chunk-end", { type: "chunk-end", size: chunkSize });
    }
    s.sinkOpen = false;
    s.pauseWith("message-end", { type: "message-end", envelope: s.envelope(via), size: s.size });
  }
}
