/**
 * The driver of one SMTP connection: socket bytes into the pure `Session`,
 * its events out to the socket and to a `ConnectionHandler` (the server's
 * policy: callbacks, faults, spool). It owns framing of writes, back-pressure,
 * the idle timeout, the STARTTLS upgrade and closing; it decides nothing.
 *
 * @module
 */

import { Socket } from "node:net";
import type { SecureContext, TLSSocket } from "node:tls";
import { concatBytes } from "../bytes.ts";
import { timerDelay } from "../units.ts";
import { Session } from "../smtp/session.ts";
import { formatReply, REPLY_SHUTDOWN, REPLY_TIMEOUT } from "../smtp/reply.ts";
import type {
  AuthMechanism,
  Decision,
  Envelope,
  Params,
  Reply,
  SessionConfig,
} from "../smtp/events.ts";
import { HANDSHAKE_TIMEOUT_MS, tlsInfo, upgradeServerSocket } from "./starttls.ts";
import type { WireSocket } from "./wire_socket.ts";

/** A handler's answer to a pausing event: accept (`null`), reject (a reply) or drop the connection. */
export type Verdict = Decision | "disconnect";
type MaybePromise<T> = T | Promise<T>;

/** What the handler answers at the end of a message: the reply and what to run once it is sent. */
export interface MessageOutcome {
  reply: Reply;
  /** Runs after the reply has been handed to the socket (hooks, `--exit-after`). */
  after?: () => void;
  /**
   * Runs instead of `after` when the connection closes before the reply was
   * handed to the socket (a client that stopped reading, then timed out):
   * the reply never left, so what it promised is undone.
   */
  unsent?: () => void;
  /** The session ends with `421 4.3.2` after this reply (`--exit-after` reached). */
  last?: boolean;
}

export interface AuthRequest {
  mechanism: AuthMechanism;
  username: string;
  /** PLAIN's authzid when the client gave one (RFC 4616 §2). */
  authzid?: string;
  password?: string;
  challenge?: string;
  digest?: string;
}

/** Negotiated TLS parameters as recorded in the spool metadata. */
export interface TlsParams {
  protocol: string;
  cipher: string;
}

/** The server's side of one connection; every method may be sync or async. */
export interface ConnectionHandler {
  helo(verb: "HELO" | "EHLO", domain: string): MaybePromise<Verdict>;
  mail(reversePath: string, params: Params): MaybePromise<Verdict>;
  rcpt(forwardPath: string, params: Params): MaybePromise<Verdict>;
  auth(request: AuthRequest): MaybePromise<Verdict>;
  messageStart(via: "DATA" | "BDAT"): MaybePromise<Decision>;
  messageData(bytes: Uint8Array): MaybePromise<void>;
  /** A BDAT chunk without LAST is in: `null` acknowledges it, a reply fails the transaction. */
  chunkEnd(): MaybePromise<Decision>;
  messageEnd(envelope: Envelope, size: number): MaybePromise<MessageOutcome | "disconnect">;
  messageAbort(reason: string): MaybePromise<void>;
  secured(params: TlsParams): void;
  /** A STARTTLS handshake failed (the connection then closes): the one-line reason. */
  tlsFailed(error: string): void;
  xclient(attributes: Record<string, string>): void;
  /** A received line (`<`) or a sent reply (`>`), for the debug transcript. */
  transcript(direction: "<" | ">", line: string): void;
  /** Every reply written (the server logs the 4xx/5xx ones). */
  replied(reply: Reply): void;
  /** The connection is gone; release whatever is open. */
  closed(reason: string): void;
}

export interface ConnectionOptions {
  config: SessionConfig;
  handler: ConnectionHandler;
  /** Idle limit for a command or a body chunk (SPEC §2 `--timeout`). */
  timeoutMs: number;
  /** Present when STARTTLS may be offered. */
  secureContext?: SecureContext;
  /** Told each received chunk's size (the server paces GCs for node:net sockets by it). */
  onRead?: (bytes: number) => void;
}

/** Above this many unparsed bytes the socket is paused until the session catches up. */
const READ_HIGH_WATER = 256 * 1024;
/**
 * Replies queued past this are written before more input is parsed: 256 KiB
 * of pipelined `HELP` lines would otherwise become MBs of replies at once.
 */
const REPLY_HIGH_WATER = 64 * 1024;
/** How long a closing socket may linger before it is destroyed. */
const CLOSE_GRACE_MS = 2000;
/** How long {@linkcode Connection.expire}'s last 421 gets before the socket is destroyed. */
export const EXPIRE_GRACE_MS = 250;

export class Connection {
  #socket: WireSocket;
  #session: Session;
  #options: ConnectionOptions;
  #out: Uint8Array[] = [];
  #outBytes = 0;
  #busy = false;
  #backlog = 0;
  #paused = false;
  #closing = false;
  #closed = false;
  #draining = false;
  /** Between STARTTLS's 220 and the end of the handshake. */
  #upgrading = false;
  #awaitingDrain = false;
  #lingerTimer: ReturnType<typeof setTimeout> | undefined;
  /** Outcomes whose reply waits in `#out`: `after` once it is handed over, `unsent` if never. */
  #afterFlush: Pick<MessageOutcome, "after" | "unsent">[] = [];
  #onData = (chunk: Uint8Array) => this.#receive(chunk);
  #onClose = () => this.#finish(this.#closeReason);
  /** Why the socket closed, once this side started closing it (the log's `reason`). */
  #closeReason = "closed";
  #onEnd = () => this.#peerEnd();
  /** The client closed its sending side: answer what it sent, then close. */
  #peerEnded = false;
  /** The last replies are flushing, then the socket ends. */
  #ending = false;
  /** A `disconnect` fault: the replies owed are flushing, then the close; no more commands. */
  #dropping = false;

  constructor(socket: WireSocket, options: ConnectionOptions) {
    this.#socket = socket;
    this.#options = options;
    this.#session = new Session(options.config);
  }

  /** Sends the greeting and starts reading. */
  start(): void {
    this.#attach(this.#socket);
    this.#socket.write(this.#session.greeting());
  }

  /** True while no transaction is open and no command is being processed. */
  get idle(): boolean {
    return !this.#busy && this.#session.idle();
  }

  /** SIGTERM: idle sessions get `421 4.3.2` now, busy ones when their transaction ends. */
  shutdown(): void {
    this.#draining = true;
    // Mid-handshake a plaintext 421 would land inside TLS: it comes over TLS after.
    if (this.idle && !this.#upgrading) {
      this.#closeWith(REPLY_SHUTDOWN(this.#options.config.hostname));
    }
  }

  /**
   * The drain deadline passed with this session still busy: a last
   * `421 4.3.2` (RFC 5321 §3.8: a server shut down SHOULD send 421 first),
   * unless the client stopped reading. The session ends now (a commit that
   * completes later is withdrawn: it never got its 250); the socket closes
   * once the reply is flushed.
   *
   * @returns Resolves when the socket has closed.
   */
  expire(): Promise<void> {
    if (this.#closed) return Promise.resolve();
    const socket = this.#socket;
    const gone = socket.destroyed
      ? Promise.resolve()
      : new Promise<void>((resolve) => socket.once("close", () => resolve()));
    // RFC 3207: after the 220 to STARTTLS only TLS may follow, not a plaintext 421.
    if (this.#closing || this.#awaitingDrain || this.#upgrading) socket.destroy();
    else this.#closeWith(REPLY_SHUTDOWN(this.#options.config.hostname));
    // #finish clears the linger timer, and a 421 not yet flushed would end
    // the socket only after a drain that a client not reading never gives.
    const deadline = setTimeout(() => socket.destroy(), EXPIRE_GRACE_MS);
    void gone.then(() => clearTimeout(deadline));
    this.#finish("shutdown deadline");
    return gone;
  }

  /** Drops the connection without a word (second signal, `disconnect` fault, drain deadline). */
  destroy(reason = "destroyed"): void {
    if (this.#closed) return;
    this.#closing = true;
    this.#socket.destroy();
    this.#finish(reason);
  }

  #attach(socket: WireSocket): void {
    socket.on("data", this.#onData);
    socket.on("error", () => this.destroy("socket error"));
    socket.on("close", this.#onClose);
    socket.on("end", this.#onEnd);
    socket.setNoDelay(true);
    // A `--timeout` past 2^31-1 ms would overflow the timer and fire at once.
    socket.setTimeout(timerDelay(this.#options.timeoutMs), () => this.#timeout());
  }

  #receive(chunk: Uint8Array): void {
    if (this.#closing) return;
    this.#options.onRead?.(chunk.length);
    this.#session.receive(chunk);
    if (!this.#busy) {
      this.#run();
      return;
    }
    // A handler is still working: the session holds the bytes until it is done.
    this.#backlog += chunk.length;
    if (this.#backlog > READ_HIGH_WATER) this.#pauseReading();
  }

  /** Stops reading until #run has parsed everything received (it resumes then). */
  #pauseReading(): void {
    if (this.#paused) return;
    this.#paused = true;
    this.#socket.pause();
  }

  /**
   * Drives the session synchronously for as long as every handler answers
   * synchronously, and goes asynchronous only for a real wait (a callback, a
   * commit, a drain). Deno settles several socket reads in one tick: an
   * `await` per chunk would let the next chunk arrive while this one is
   * still unparsed, and the session would have to copy it.
   */
  #run(): void {
    let step: Promise<void> | "need-data" | "closed";
    try {
      step = this.#drive();
      if (step === "need-data" && this.#peerEnded) {
        // Nothing more will come: what was received is answered, then the end.
        this.#flushThenEnd();
        return;
      }
      if (step === "need-data") {
        // Everything received is parsed: only now may the socket read again,
        // so a client pipelining through slow commits cannot grow memory.
        this.#backlog = 0;
        this.#socket.consumed?.();
        if (this.#paused && !this.#closing) {
          this.#paused = false;
          this.#socket.resume();
        }
        const drain = this.#flush();
        if (drain) step = drain;
        else if (this.#draining && this.#session.idle()) {
          this.#closeWith(REPLY_SHUTDOWN(this.#options.config.hostname));
        }
      } else if (step !== "closed") {
        // Replies already earned go out before a wait (a commit, a callback).
        const drain = this.#flush();
        if (drain) step = Promise.all([step, drain]).then(() => {});
      }
    } catch (e: unknown) {
      this.#internalError(e);
      return;
    }
    if (typeof step === "string") return;
    this.#busy = true;
    step.then(
      () => {
        this.#busy = false;
        if (!this.#closing) this.#run();
      },
      (e: unknown) => {
        this.#busy = false;
        this.#internalError(e);
      },
    );
  }

  /** A handler bug must cost one connection, never the server. */
  #internalError(e: unknown): void {
    this.#options.handler.transcript(">", `internal error: ${e instanceof Error ? e.stack : e}`);
    this.destroy("internal error");
  }

  /**
   * Runs session events until the session needs data (`"need-data"`), the
   * connection is over (`"closed"`), or a handler's answer is pending (a
   * promise that resumes the session when it settles).
   */
  #drive(): Promise<void> | "need-data" | "closed" {
    const session = this.#session;
    const handler = this.#options.handler;
    for (;;) {
      if (this.#closing || this.#dropping) return "closed";
      const ev = session.next();
      let pending: Promise<void> | null = null;
      switch (ev.type) {
        case "need-data":
          return "need-data";
        case "paused":
          throw new Error("Session paused without a pending decision");
        case "reply":
          this.#out.push(ev.bytes);
          this.#outBytes += ev.bytes.length;
          handler.replied(ev.reply);
          if (this.#options.config.transcript) {
            for (const line of new TextDecoder().decode(ev.bytes).split("\r\n")) {
              if (line) handler.transcript(">", line);
            }
          }
          if (ev.reply.code === 421) {
            // RFC 5321 §3.8: 421 means the channel closes after the reply.
            this.#flushThenEnd();
            return "closed";
          }
          if (this.#draining && session.idle()) {
            // The transaction in flight is over: commands pipelined behind
            // it must not start another one (SIGTERM, `--exit-after`).
            this.#closeWith(REPLY_SHUTDOWN(this.#options.config.hostname));
            return "closed";
          }
          if (this.#outBytes >= REPLY_HIGH_WATER) pending = this.#flush() ?? null;
          break;
        case "close":
          this.#flushThenEnd();
          return "closed";
        case "transcript":
          handler.transcript("<", ev.line);
          break;
        case "helo":
          pending = settle(
            handler.helo(ev.verb, ev.domain),
            (v) => this.#verdict(v, (d) => session.resumeHelo(d)),
          );
          break;
        case "mail":
          pending = settle(
            handler.mail(ev.reversePath, ev.params),
            (v) => this.#verdict(v, (d) => session.resumeMail(d)),
          );
          break;
        case "rcpt":
          pending = settle(
            handler.rcpt(ev.forwardPath, ev.params),
            (v) => this.#verdict(v, (d) => session.resumeRcpt(d)),
          );
          break;
        case "auth": {
          const { type: _type, ...request } = ev;
          pending = settle(
            handler.auth(request),
            (v) => this.#verdict(v, (d) => session.resumeAuth(d)),
          );
          break;
        }
        case "message-start":
          pending = settle(handler.messageStart(ev.via), (d) => session.resumeMessageStart(d));
          break;
        case "message-data":
          pending = settle(handler.messageData(ev.bytes), () => {});
          break;
        case "chunk-end":
          pending = settle(handler.chunkEnd(), (d) => session.resumeChunkEnd(d));
          break;
        case "message-end":
          pending = settle(handler.messageEnd(ev.envelope, ev.size), (outcome) => {
            if (outcome === "disconnect") return this.#drop();
            // The client left in the same tick as the commit ended: its 250 is never sent.
            if (this.#closed) return void outcome.unsent?.();
            if (outcome.after || outcome.unsent) this.#afterFlush.push(outcome);
            if (outcome.last) this.#draining = true;
            session.resumeMessageEnd(outcome.reply);
          });
          break;
        case "message-abort":
          pending = settle(handler.messageAbort(ev.reason), () => {});
          break;
        case "starttls":
          return this.#startTls();
        case "xclient":
          handler.xclient(ev.attributes);
          break;
        default: {
          const unhandled: never = ev;
          throw new Error(`Unhandled session event ${JSON.stringify(unhandled)}`);
        }
      }
      if (pending) return pending;
    }
  }

  /** Applies a handler's verdict: resume the session, or drop the connection. */
  #verdict(v: Verdict, resume: (d: Decision) => void): void {
    if (v === "disconnect") this.#drop();
    else resume(v);
  }

  async #startTls(): Promise<void> {
    const plain = this.#socket;
    const context = this.#options.secureContext;
    // Plain listeners use node:net whenever TLS is configured (listener.ts).
    if (!(plain instanceof Socket)) throw new Error("STARTTLS needs a node:net socket");
    // CVE-2011-0411: nothing read after STARTTLS may reach the session. The
    // session dropped what it had; stop reading plaintext before the 220 goes out.
    plain.removeListener("data", this.#onData);
    plain.removeListener("end", this.#onEnd);
    plain.pause();
    const queued = this.#out;
    this.#out = [];
    this.#outBytes = 0;
    // The 220 must be out before the handshake starts reading the socket.
    await new Promise<void>((done) => plain.write(concatBytes(queued), () => done()));
    if (!context) throw new Error("STARTTLS offered without a TLS context");
    plain.setTimeout(0);
    let secure: TLSSocket;
    this.#upgrading = true;
    try {
      secure = await upgradeServerSocket(
        plain,
        context,
        Math.min(HANDSHAKE_TIMEOUT_MS, this.#options.timeoutMs),
      );
    } catch (e: unknown) {
      this.#upgrading = false;
      this.#options.handler.tlsFailed(e instanceof Error ? e.message : String(e));
      // The same reason as a failed implicit-TLS handshake (server.ts).
      this.destroy("tls handshake failed");
      return;
    }
    this.#upgrading = false;
    // Only our own listener: the server's bookkeeping listens for "close" too.
    plain.removeListener("close", this.#onClose);
    this.#socket = secure;
    this.#attach(secure);
    this.#options.handler.secured(tlsInfo(secure));
    this.#session.resumeTls();
  }

  /**
   * Writes everything queued. Returns a promise only when the client is not
   * reading fast enough: reading then waits for "drain" (bounded memory).
   */
  #flush(): Promise<void> | undefined {
    if (this.#out.length === 0 || this.#closed) return undefined;
    const chunks = this.#out;
    this.#out = [];
    this.#outBytes = 0;
    const socket = this.#socket;
    const drained = socket.write(concatBytes(chunks));
    const after = this.#afterFlush;
    this.#afterFlush = [];
    for (const outcome of after) outcome.after?.();
    if (drained || this.#closed) return undefined;
    this.#awaitingDrain = true;
    // A client that does not read its replies gets no more of its commands
    // read either (#run resumes reading once all received is answered).
    this.#pauseReading();
    return new Promise<void>((resolve) => {
      const done = () => {
        this.#awaitingDrain = false;
        socket.off("drain", done);
        socket.off("close", done);
        resolve();
      };
      socket.on("drain", done);
      socket.on("close", done);
    });
  }

  #flushThenEnd(): void {
    this.#ending = true;
    const drain = this.#flush();
    if (drain) void drain.then(() => this.#end());
    else this.#end();
  }

  #closeWith(reply: Reply): void {
    // Once the end is under way (a 421 or 221 flushing), no second last word.
    if (this.#closing || this.#ending) return;
    // Nothing the client sends after this reply may still be executed.
    this.#socket.off("data", this.#onData);
    this.#out.push(formatReply(reply));
    this.#options.handler.replied(reply);
    this.#flushThenEnd();
  }

  /**
   * The client half-closed (`shutdown(SHUT_WR)`, `nc -N`). Commands it
   * pipelined before are still executed and answered (a message whose end
   * arrived gets its 250), as Postfix does. But a client that sent nothing
   * after a command still being processed (the end of data, a delay, a
   * callback) is taken as gone: a FIN looks the same whether it half-closed
   * or left, and a message must not be stored for a client that never sees
   * its 250 (SPEC §3).
   */
  #peerEnd(): void {
    if (this.#closing) return;
    this.#peerEnded = true;
    if (this.#busy && this.#session.pending().length > 0) return; // #run ends after them
    this.#flushThenEnd();
  }

  #timeout(): void {
    if (this.#closing) return;
    // A client that stopped reading our replies cannot be told anything.
    if (this.#awaitingDrain) return this.destroy("write timeout");
    // The server itself is slow (fsync, a callback): not the client's fault.
    if (this.#busy) return;
    this.#closeWith(REPLY_TIMEOUT(this.#options.config.hostname));
  }

  /**
   * A `disconnect` fault: no reply to the faulted command, and nothing after
   * it is executed, but the replies to commands pipelined before it are owed
   * in order (SPEC §4), so they are flushed before the close.
   */
  #drop(): void {
    if (this.#closing || this.#dropping) return;
    this.#dropping = true;
    this.#socket.off("data", this.#onData);
    // Finished by the socket's close, not here: #finish clears #end's linger
    // timer, the one thing that closes a socket whose client stopped reading.
    const close = () => {
      this.#closeReason = "disconnect fault";
      this.#end();
    };
    const drain = this.#flush();
    if (drain) void drain.then(close);
    else close();
  }

  #end(): void {
    if (this.#closing) return;
    this.#closing = true;
    const socket = this.#socket;
    if (socket.destroyed) return;
    // After 221/421 nothing more is read (RFC 5321 §4.1.1.10): close as soon
    // as our last reply is flushed instead of waiting for the client's FIN.
    // Clients that reset after QUIT (smtp-source does) then cost no read error.
    if (socket.writableLength === 0) {
      // The kernel has every byte: close(2) still delivers them, then FIN.
      socket.destroy();
      return;
    }
    socket.end(() => socket.destroy());
    this.#lingerTimer = setTimeout(() => socket.destroy(), CLOSE_GRACE_MS);
  }

  #finish(reason: string): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#closing = true;
    clearTimeout(this.#lingerTimer);
    const unsent = this.#afterFlush;
    this.#afterFlush = [];
    for (const outcome of unsent) outcome.unsent?.();
    this.#options.handler.closed(reason);
  }
}

/** Applies `value` now when it is ready; otherwise a promise that applies it when it is. */
function settle<T>(value: T | Promise<T>, apply: (v: T) => void): Promise<void> | null {
  if (value instanceof Promise) return value.then(apply);
  apply(value);
  return null;
}
