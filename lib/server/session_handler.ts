/**
 * The server's policy for one connection: fault rules, user callbacks,
 * credentials and the spool sink, behind the driver's `ConnectionHandler`.
 * Order at each stage: fault rule first (it simulates the network or the
 * server), then the user's callback.
 *
 * @module
 */

import type {
  AuthRequest,
  ConnectionHandler,
  MessageOutcome,
  TlsParams,
  Verdict,
} from "../net/connection.ts";
import type { Decision, Envelope, Params, Reply } from "../smtp/events.ts";
import {
  queuedReply,
  REPLY_CALLBACK_FAILED,
  REPLY_DISK_FULL,
  REPLY_SPOOL_UNWRITABLE,
} from "../smtp/reply.ts";
import { type MessageSink, SpoolError } from "../spool/writer.ts";
import { type Meta, type MetaInput, protocolName } from "../spool/meta.ts";
import type { FaultStage } from "./faults.ts";
import { timerDelay } from "../units.ts";
import { clipForLog } from "../log.ts";
import type { CallbackResult, ConnectionInfo, RejectReply } from "./options.ts";
import type { ServerContext } from "./context.ts";

type MaybePromise<T> = T | Promise<T>;

const REPLY_AUTH_FAILED: Reply = {
  code: 535,
  enhanced: "5.7.8",
  lines: ["Authentication credentials invalid"],
};

/** Turns what a user callback returned into a decision (`null` accepts). */
export function toDecision(result: CallbackResult | boolean, rejected: Reply): Decision {
  if (result === undefined || result === null || result === true) return null;
  if (result === false) return rejected;
  return replyFrom(result);
}

/** A user's `{ code, enhanced, text }` as a wire reply; a bad code becomes 451 (their bug, our safety). */
export function replyFrom(r: RejectReply): Reply {
  const code = Number.isInteger(r.code) && r.code >= 400 && r.code <= 599 ? r.code : 451;
  const klass = Math.floor(code / 100);
  // A JavaScript caller may pass anything: a number, an object, null.
  const enhanced = typeof r.enhanced === "string" && /^[245]\.\d{1,3}\.\d{1,3}$/.test(r.enhanced) &&
      r.enhanced[0] === String(klass)
    ? r.enhanced
    : `${klass}.0.0`;
  const text = String(r.text ?? "Rejected").replace(/[\r\n]+/g, " ");
  return { code, enhanced, lines: [text] };
}

/**
 * RFC 5321 §3.1: a server that refuses a connection greets with 554 (or 421,
 * RFC 5321 §3.8, and closes); an `onConnect` reply of another code keeps its
 * class: 4xx becomes 421, 5xx 554.
 */
export function greetingRefusal(reply: Reply): Reply {
  if (reply.code === 421 || reply.code === 554) return reply;
  const code = reply.code < 500 ? 421 : 554;
  return { ...reply, code };
}

export class SessionHandler implements ConnectionHandler {
  #ctx: ServerContext;
  #info: ConnectionInfo;
  #conn: number;
  /** When the connection was accepted (Date.now()), for the closing line's `ms`. */
  readonly #opened: number;
  #tls: TlsParams | null = null;
  #sink: MessageSink | null = null;
  #sinkError: SpoolError | null = null;
  #messageStarted = 0;
  /** The connection is closed: no reply can reach the client any more. */
  #gone = false;

  constructor(
    ctx: ServerContext,
    info: ConnectionInfo,
    conn: number,
    tls: TlsParams | null,
    opened: number = Date.now(),
  ) {
    this.#opened = opened;
    this.#ctx = ctx;
    this.#info = info;
    this.#conn = conn;
    this.#tls = tls;
  }

  /**
   * A stage: the first matching `--fault` rule answers, or delays and then
   * lets `next` (the user's callback, or acceptance) decide. Synchronous when
   * nothing waits, so a plain session never pays a promise per command.
   */
  #stage(
    stage: FaultStage,
    argument: string,
    next: () => MaybePromise<Verdict>,
  ): MaybePromise<Verdict> {
    const action = this.#ctx.faults.match(stage, argument);
    if (!action) return next();
    switch (action.type) {
      case "reply":
        return action.reply;
      case "delay":
        // Clamped: a longer delay would overflow the timer and not delay at all.
        return new Promise((resolve) => setTimeout(resolve, timerDelay(action.ms))).then(next);
      case "disconnect":
        this.#ctx.logger.info("fault: disconnect", { conn: this.#conn, stage });
        return "disconnect";
    }
  }

  /** @param secret A password the callback got: an error that repeats it is logged without it. */
  async #callback(
    name: string,
    run: () => unknown,
    rejected: Reply,
    secret = "",
  ): Promise<Decision> {
    try {
      return toDecision((await run()) as CallbackResult, rejected);
    } catch (e: unknown) {
      const error = e instanceof Error ? (e.stack ?? e.message) : String(e);
      this.#ctx.logger.error(`${name} callback failed`, {
        conn: this.#conn,
        error: secret === "" ? error : error.replaceAll(secret, "***"),
      });
      return REPLY_CALLBACK_FAILED;
    }
  }

  helo(_verb: "HELO" | "EHLO", domain: string): MaybePromise<Verdict> {
    return this.#stage("helo", domain, () => null);
  }

  mail(reversePath: string, params: Params): MaybePromise<Verdict> {
    return this.#stage("mail", reversePath, () => {
      const cb = this.#ctx.options.onMailFrom;
      if (!cb) return null;
      // Copies: a callback that edits what it is given changes nothing stored.
      return this.#callback("onMailFrom", () => cb(reversePath, { ...params }), {
        code: 550,
        enhanced: "5.7.1",
        lines: ["Sender rejected"],
      });
    });
  }

  rcpt(forwardPath: string, params: Params): MaybePromise<Verdict> {
    return this.#stage("rcpt", forwardPath, () => {
      const cb = this.#ctx.options.onRcptTo;
      if (!cb) return null;
      return this.#callback("onRcptTo", () => cb(forwardPath, { ...params }), {
        code: 550,
        enhanced: "5.1.1",
        lines: [`<${forwardPath}>: Recipient address rejected`],
      });
    });
  }

  auth(request: AuthRequest): MaybePromise<Verdict> {
    return this.#stage("auth", request.username, () => {
      const { options, credentials } = this.#ctx;
      const onAuth = options.onAuth;
      // RFC 4616 §2: the server checks that the user may act as the authzid.
      // Users act as themselves only; with no users to check, anything goes.
      const checked = onAuth !== undefined || credentials !== null;
      if (checked && request.authzid !== undefined && request.authzid !== request.username) {
        return REPLY_AUTH_FAILED;
      }
      if (onAuth) {
        return this.#callback(
          "onAuth",
          // Only `true` accepts: a check that forgot its `return` must fail closed.
          async () => {
            const answer = await onAuth(
              request.username,
              request.password ?? "",
              request.mechanism,
            );
            return answer === undefined || answer === null ? false : answer;
          },
          REPLY_AUTH_FAILED,
          request.password ?? "",
        );
      }
      if (!credentials) return null; // SPEC §4: without --auth-file any credentials succeed
      const ok = request.mechanism === "CRAM-MD5"
        ? credentials.checkCramMd5(request.username, request.challenge ?? "", request.digest ?? "")
        : credentials.check(request.username, request.password ?? "");
      return ok ? null : REPLY_AUTH_FAILED;
    });
  }

  messageStart(_via: "DATA" | "BDAT"): Decision {
    this.#sinkError = null;
    this.#messageStarted = Date.now();
    try {
      this.#sink = this.#ctx.spool.begin();
      return null;
    } catch (e: unknown) {
      return this.#spoolFailure(e);
    }
  }

  messageData(bytes: Uint8Array): void {
    const sink = this.#sink;
    if (!sink || this.#sinkError) return;
    try {
      sink.write(bytes);
    } catch (e: unknown) {
      // Keep consuming the body; the failure is answered at its end, or at the
      // end of this BDAT chunk (SPEC §4: 451/452).
      this.#sinkError = e instanceof SpoolError ? e : new SpoolError("unwritable", String(e));
      sink.abort();
    }
  }

  /**
   * A failed spool write is told at the chunk it happened in, not at LAST
   * (RFC 3030 §2), so a client sending a large message in chunks stops early.
   */
  chunkEnd(): Decision {
    const error = this.#sinkError;
    return error ? this.#spoolFailure(error) : null;
  }

  async messageEnd(envelope: Envelope, size: number): Promise<MessageOutcome | "disconnect"> {
    const sink = this.#sink;
    this.#sink = null;
    if (!sink) return { reply: REPLY_SPOOL_UNWRITABLE };
    // The `data` stage's argument is the sender, so `data~^bounce@` can target one flow.
    const fault = await this.#stage("data", envelope.mailFrom, () => null);
    if (fault !== null) {
      sink.abort();
      return fault === "disconnect" ? fault : { reply: fault };
    }
    if (this.#sinkError) {
      sink.abort();
      return { reply: this.#spoolFailure(this.#sinkError) };
    }
    if (this.#gone) {
      // The client left (or the drain deadline ended the session) during a
      // `data` delay: nobody will get a 250, so nothing is stored.
      sink.abort();
      return { reply: REPLY_SPOOL_UNWRITABLE };
    }
    return await this.#commit(sink, envelope, size);
  }

  async #commit(sink: MessageSink, envelope: Envelope, size: number): Promise<MessageOutcome> {
    const onMessage = this.#ctx.options.onMessage;
    const refusal: { reply: Reply | null } = { reply: null };
    // SPEC §3: a message that got no 250 never appears with a .json. The
    // library's onMessage may still refuse it, so it is asked before the
    // .json takes its name, and no reader ever sees a message it refused.
    const gate = onMessage && (async (meta: Meta): Promise<boolean> => {
      if (this.#gone) return false;
      refusal.reply = await this.#callback(
        "onMessage",
        // A copy: an edited `id` must not become the one the client is told.
        () => onMessage(structuredClone(meta), this.#ctx.emlPath(meta.id)),
        { code: 554, enhanced: "5.7.1", lines: ["Message rejected"] },
      );
      return refusal.reply === null && !this.#gone;
    });
    let meta: Meta | null;
    try {
      meta = await sink.commit(this.#metaInput(envelope), gate);
    } catch (e: unknown) {
      sink.abort();
      return { reply: this.#spoolFailure(e) };
    }
    if (meta === null) return { reply: refusal.reply ?? REPLY_SPOOL_UNWRITABLE };
    // Also when its client left while it was being committed.
    if (this.#gone) {
      await this.#ctx.withdraw(meta.id);
      return { reply: REPLY_SPOOL_UNWRITABLE };
    }
    const emlPath = this.#ctx.emlPath(meta.id);
    const ms = Date.now() - this.#messageStarted;
    return {
      reply: queuedReply(meta.id),
      ...(this.#ctx.reachesExitAfter() ? { last: true } : {}),
      // SPEC §3: no 250, no .json — also when the 250 never left this server.
      unsent: () => void this.#ctx.withdraw(meta.id).catch(() => {}),
      after: () => {
        this.#ctx.logger.info("message stored", {
          conn: this.#conn,
          id: meta.id,
          from: clipForLog(meta.mailFrom) || "<>",
          rcpts: meta.rcptTo.length,
          size,
          ms,
        });
        this.#ctx.stored(meta, emlPath);
      },
    };
  }

  #metaInput(env: Envelope): MetaInput {
    const x = env.xclient;
    const port = x.PORT !== undefined && /^\d+$/.test(x.PORT) ? Number(x.PORT) : undefined;
    const input: MetaInput = {
      mailFrom: env.mailFrom,
      rcptTo: env.rcptTo,
      mailParams: env.mailParams,
      rcptParams: env.rcptParams,
      helo: env.helo,
      protocol: protocolName({
        esmtp: env.esmtp,
        tls: env.tls,
        auth: env.auth !== null,
        smtputf8: env.smtputf8,
      }),
      client: {
        // Postfix XCLIENT_README: an IPv6 ADDR is sent as "IPV6:2001:db8::1".
        address: x.ADDR?.replace(/^ipv6:/i, "") ?? this.#info.client.address,
        port: port ?? this.#info.client.port,
        ...(x.NAME === undefined ? {} : { name: x.NAME }),
      },
      server: this.#info.server,
      tls: this.#tls,
      auth: env.auth,
    };
    if (Object.keys(env.xforward).length > 0) input.xforward = env.xforward;
    return input;
  }

  #spoolFailure(e: unknown): Reply {
    const full = e instanceof SpoolError && e.kind === "full";
    this.#ctx.logger.error(full ? "spool full" : "spool not writable", {
      conn: this.#conn,
      error: e instanceof Error ? e.message : String(e),
    });
    if (!full) {
      void this.#ctx.spool.repair().then((recreated) => {
        if (recreated) this.#ctx.logger.warn("spool recreated", { spool: this.#ctx.spool.dir });
      }).catch(() => {}); // a repair that fails leaves the 451s as they are
    }
    return full ? REPLY_DISK_FULL : REPLY_SPOOL_UNWRITABLE;
  }

  messageAbort(_reason: string): void {
    const sink = this.#sink;
    this.#sink = null;
    sink?.abort();
  }

  secured(params: TlsParams): void {
    this.#tls = params;
    this.#ctx.logger.debug("tls established", { conn: this.#conn, ...params });
  }

  tlsFailed(error: string): void {
    // As for implicit TLS (server.ts): one info line with the reason.
    this.#ctx.logger.info("tls handshake failed", {
      conn: this.#conn,
      client: this.#info.client.address,
      error,
    });
  }

  xclient(attributes: Record<string, string>): void {
    const shown = Object.fromEntries(
      Object.entries(attributes).map(([name, value]) => [name, clipForLog(value)]),
    );
    this.#ctx.logger.info("xclient", { conn: this.#conn, ...shown });
  }

  transcript(direction: "<" | ">", line: string): void {
    this.#ctx.logger.debug(`${direction} ${clipForLog(line)}`, { conn: this.#conn });
  }

  replied(reply: Reply): void {
    if (reply.code < 400) return;
    this.#ctx.logger.info("reply", {
      conn: this.#conn,
      client: this.#info.client.address,
      code: reply.code,
      enhanced: reply.enhanced || undefined,
      // A reply may echo client text (VRFY, an --accept-rcpt refusal): cut like any.
      text: clipForLog(reply.lines.join(" / ")),
    });
  }

  closed(reason: string): void {
    this.#gone = true;
    const sink = this.#sink;
    this.#sink = null;
    sink?.abort();
    this.#ctx.logger.info("connection closed", {
      conn: this.#conn,
      client: this.#info.client.address,
      reason,
      ms: Date.now() - this.#opened,
    });
    this.#ctx.released();
  }
}
