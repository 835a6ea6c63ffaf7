/**
 * The state `Session` and its command handlers share, and the few operations
 * every transition uses: queue a reply or event, pause, end the transaction,
 * close. Rule 1 of h11's `_state.py`: what changes the state lives here.
 *
 * @module
 */

import type { AuthMethod, Envelope, Reply, SessionConfig, SessionEvent } from "./events.ts";
import { InputBuffer } from "./_input_buffer.ts";
import { type BdatArgs, BdatDecoder } from "./bdat_decoder.ts";
import type { SaslExchange } from "./sasl.ts";
import { MAX_FAILED_COMMANDS } from "./limits.ts";
import type { MailArgs, RcptArgs } from "./grammar.ts";
import * as R from "./reply.ts";
import { lowerAscii } from "./_utf8.ts";

/** Where the session waits for the driver's `resume…` call. */
export type Pause =
  | "helo"
  | "mail"
  | "rcpt"
  | "auth"
  | "message-start"
  | "chunk-end"
  | "message-end"
  | "starttls";
/** What the next received bytes are: command lines, a SASL response, a DATA body, a BDAT chunk. */
export type Mode = "command" | "sasl" | "data" | "bdat" | "closed";

/** An open mail transaction (RFC 5321 §3.3), from an accepted MAIL to its end. */
export interface Transaction {
  mail: MailArgs;
  rcptTo: string[];
  rcptParams: Record<string, string | true>[];
  /** How the body is coming, once it started. */
  via: "DATA" | "BDAT" | null;
  /** RFC 3030 §2: a failed BDAT chunk leaves the transaction usable only for RSET. */
  failed: boolean;
}

/** One BDAT chunk being consumed; `reply` set means its bytes are discarded and that is the answer. */
export interface Chunk {
  args: BdatArgs;
  reply: Reply | null;
}

/** An authenticated (or about to be) identity. */
export interface AuthIdentity {
  mechanism: AuthMethod;
  username: string;
}

/** Everything one session knows; owned by `Session`, changed by it and `_session_commands.ts`. */
export class SessionState {
  readonly config: SessionConfig;
  readonly input = new InputBuffer();
  readonly bdat = new BdatDecoder();
  /** Queued events, `events[head…]` not yet returned by `next`. */
  events: SessionEvent[] = [];
  head = 0;
  mode: Mode = "command";
  pause: Pause | null = null;
  failures = 0;
  /** The last line was an AUTH (or looked like one) and no command came since: see `redactCommand`. */
  afterAuth = false;
  tls: boolean;
  helo: string | null = null;
  esmtp = false;
  auth: AuthIdentity | null = null;
  xclient: Record<string, string> = {};
  xforward: Record<string, string> = {};
  txn: Transaction | null = null;
  /** A body is streaming out as `message-data` events and has not ended or aborted. */
  sinkOpen = false;
  size = 0;
  oversize = false;
  chunk: Chunk | null = null;
  sasl: SaslExchange | null = null;
  /** What a pause is about, kept for its `resume…` call. */
  pendingHelo: { verb: "HELO" | "EHLO"; domain: string } | null = null;
  pendingMail: MailArgs | null = null;
  pendingRcpt: RcptArgs | null = null;
  pendingAuth: AuthIdentity | null = null;
  pendingStart: BdatArgs | "DATA" | null = null;
  /** The size of the chunk a `chunk-end` pause is about. */
  pendingChunkSize = 0;

  /** @param config fixed for the connection */
  constructor(config: SessionConfig) {
    this.config = config;
    this.tls = config.tlsActive;
  }

  emit(event: SessionEvent): void {
    this.events.push(event);
  }

  /**
   * Queues a reply. Every 5xx counts as a failed command; the 20th is still
   * answered with its own reply, then `421` follows and the session ends
   * before another command is read (Postfix `smtpd_hard_error_limit`).
   */
  reply(reply: Reply): void {
    this.emit({ type: "reply", reply, bytes: R.formatReply(reply) });
    // RFC 5321 §3.8: a 421 reply closes the transmission channel.
    if (reply.code === 421) return this.close();
    if (reply.code >= 500 && reply.code <= 599 && ++this.failures >= MAX_FAILED_COMMANDS) {
      const bye = R.tooManyErrorsReply(this.config.hostname);
      this.emit({ type: "reply", reply: bye, bytes: R.formatReply(bye) });
      this.close();
    }
  }

  pauseWith(pause: Pause, event: SessionEvent): void {
    this.emit(event);
    this.pause = pause;
  }

  resume(pause: Pause): void {
    if (this.pause !== pause) {
      const state = this.pause === null ? "not paused" : `paused at "${this.pause}"`;
      throw new Error(`Cannot resume "${pause}": the session is ${state}`);
    }
    this.pause = null;
  }

  close(): void {
    this.finishTransaction();
    this.emit({ type: "close" });
    this.mode = "closed";
    this.pause = null;
    this.input.drop();
  }

  /** Ends the transaction (stored, failed, RSET, HELO, QUIT); XFORWARD data goes with it. */
  finishTransaction(): void {
    this.closeSink("reset");
    this.txn = null;
    this.xforward = {};
  }

  openSink(via: "DATA" | "BDAT"): void {
    this.txn!.via = via;
    this.sinkOpen = true;
    this.size = 0;
    this.oversize = false;
  }

  closeSink(reason: "size" | "rejected" | "reset"): void {
    if (!this.sinkOpen) return;
    this.sinkOpen = false;
    this.emit({ type: "message-abort", reason });
  }

  startChunk(args: BdatArgs, reply: Reply | null): void {
    this.chunk = { args, reply };
    this.bdat.start(args.size);
    this.mode = "bdat";
  }

  endSasl(): void {
    this.sasl = null;
    this.mode = "command";
  }

  /**
   * Whether `--accept-rcpt` lets `address` through. Postmaster always passes
   * (RFC 5321 §4.5.1: a server MUST support it; SPEC §4): bare, or at this
   * server's host name, in any case.
   */
  acceptable(address: string): boolean {
    const patterns = this.config.acceptRcpt;
    if (patterns.length === 0) return true;
    const lower = lowerAscii(address);
    if (lower === "postmaster" || lower === `postmaster@${lowerAscii(this.config.hostname)}`) {
      return true;
    }
    return patterns.some((re) => {
      // A /g or /y pattern would carry lastIndex from one test to the next.
      re.lastIndex = 0;
      return re.test(address);
    });
  }

  envelope(via: "DATA" | "BDAT"): Envelope {
    const txn = this.txn!;
    return {
      mailFrom: txn.mail.reversePath,
      mailParams: txn.mail.params,
      rcptTo: txn.rcptTo,
      rcptParams: txn.rcptParams,
      helo: this.helo,
      esmtp: this.esmtp,
      tls: this.tls,
      auth: this.auth,
      smtputf8: txn.mail.smtputf8,
      xforward: this.xforward,
      xclient: this.xclient,
      via,
    };
  }
}
