/**
 * `serve()`: listeners + connection driver + spool + callbacks + hooks +
 * faults, and the life cycle around them (ready file, `--exit-after`,
 * signals, graceful drain of SPEC §4's last bullet).
 *
 * @module
 */

import { errorReason } from "../os_error.ts";
import { Socket } from "node:net";
import { join, resolve } from "node:path";
import {
  fileSink,
  flushStderr,
  type LogFormat,
  Logger,
  type LogLevel,
  type LogSink,
} from "../log.ts";
import { Connection, EXPIRE_GRACE_MS } from "../net/connection.ts";
import { bindListener, type BoundListener, hostPort, ListenError } from "../net/listener.ts";
import type { WireSocket } from "../net/wire_socket.ts";
import { HANDSHAKE_TIMEOUT_MS, tlsInfo, upgradeServerSocket } from "../net/starttls.ts";
import { certificateProblem } from "../net/tls_context.ts";
import { formatReply, REPLY_TIMEOUT, REPLY_TOO_MANY_CONNECTIONS } from "../smtp/reply.ts";
import type { Reply, SessionConfig } from "../smtp/events.ts";
import { SpoolError, SpoolWriter } from "../spool/writer.ts";
import { timerDelay } from "../units.ts";
import { noteNodeRead } from "../native_memory.ts";
import type { Meta } from "../spool/meta.ts";
import { cidrContains } from "./cidr.ts";
import type { ServerContext } from "./context.ts";
import { HookRunner, rcptVariable } from "./hooks.ts";
import { DEFAULTS, type ServeOptions } from "./options.ts";
import { greetingRefusal, replyFrom, SessionHandler, toDecision } from "./session_handler.ts";
import { type Setup, setup, StartupError } from "./setup.ts";
import { guardUncaught } from "./uncaught.ts";
import {
  ConnectionCounters,
  helperObstacle,
  HelperThread,
  newSharedState,
  type SharedState,
} from "./threads.ts";

/** How long SIGTERM lets transfers in flight finish (SPEC §4). */
const DRAIN_DEADLINE_MS = 10_000;

/** A bound, running server. */
export interface ServerHandle {
  /** Every listener, with the real port when 0 was asked for. */
  addresses: { address: string; port: number; tls: boolean }[];
  /** Graceful stop: stop accepting, `421 4.3.2` idle sessions, finish transfers (≤ 10 s). */
  close(): Promise<void>;
  /** Resolves when the server has stopped (close, signal, `--exit-after`). */
  finished: Promise<void>;
}

function clientOf(socket: WireSocket): { address: string; port: number } {
  return { address: plainAddress(socket.remoteAddress), port: socket.remotePort ?? 0 };
}

/** `::ffff:127.0.0.1` → `127.0.0.1`: the metadata records what the client really is. */
function plainAddress(address: string | undefined): string {
  if (!address) return "";
  return address.startsWith("::ffff:") && address.includes(".") ? address.slice(7) : address;
}

/**
 * How long the last log lines may take to reach stderr at exit: 1 s for both
 * threads together, and no longer than 100 ms after a second signal.
 */
const PRIMARY_FLUSH_MS = 700;
const HELPER_FLUSH_MS = 300;
const ABORT_FLUSH_MS = 100;

/** At most one "cannot accept" warning this often. */
const ACCEPT_WARN_MS = 10_000;

/** Which thread a `Server` is (threads.ts). */
interface Thread {
  shared: SharedState;
  /** The helper logs no life-cycle lines: the primary speaks for the server. */
  role: "primary" | "helper";
  /** How the native listeners bind (listener.ts); none without a helper. */
  reusePort?: "first" | "join";
}

export class Server {
  #options: ServeOptions;
  #setup: Setup;
  #ctx: ServerContext;
  #spool: SpoolWriter;
  #logger: Logger;
  #hooks: HookRunner | null;
  #listeners: BoundListener[] = [];
  #connections = new Set<Connection>();
  /** Implicit-TLS sockets still in their handshake: no session yet, no 421 to send. */
  #handshaking = new Set<WireSocket>();
  #thread: Thread;
  #counters: ConnectionCounters;
  #helper: HelperThread | null = null;
  #storedCount = 0;
  /** When the last "cannot accept" warning was logged, and failures since. */
  #acceptWarnedAt = -Infinity;
  #acceptFailures = 0;
  #stopping: Promise<void> | null = null;
  /** When a second signal came (abort()); null before. */
  #abortedAt: number | null = null;
  #resolveFinished!: () => void;
  readonly finished: Promise<void>;

  constructor(
    options: ServeOptions,
    s: Setup,
    spool: SpoolWriter,
    logger: Logger,
    thread: Thread,
  ) {
    this.#options = options;
    this.#thread = thread;
    this.#counters = new ConnectionCounters(thread.shared, thread.role === "primary" ? 0 : 1);
    this.#setup = s;
    this.#spool = spool;
    this.#logger = logger;
    this.finished = new Promise((done) => (this.#resolveFinished = done));
    this.#hooks = options.onMessageCommand
      ? new HookRunner(options.onMessageCommand, s.maxConnections, logger)
      : null;
    this.#ctx = {
      options,
      logger,
      spool,
      faults: s.faults,
      credentials: s.credentials,
      emlPath: (id) => join(spool.dir, `${id}.eml`),
      withdraw: (id) => spool.remove(id),
      stored: (meta, emlPath) => this.#stored(meta, emlPath),
      reachesExitAfter: () =>
        options.exitAfter !== undefined && this.#storedCount + 1 >= options.exitAfter,
      released: () => this.#counters.release(),
    };
  }

  get listeners(): BoundListener[] {
    return this.#listeners;
  }

  async bind(): Promise<void> {
    try {
      for (const spec of this.#setup.listeners) {
        // Without TLS no socket is ever upgraded: Deno.listen's are cheaper.
        const native = this.#setup.tls === null;
        const accept = (socket: WireSocket, l: BoundListener) => this.#accept(socket, l);
        const reusePort = this.#thread.reusePort;
        const onAcceptError = (e: unknown, l: BoundListener) => this.#acceptFailed(e, l);
        this.#listeners.push(
          await bindListener(spec, accept, {
            native,
            onAcceptError,
            ...(reusePort ? { reusePort } : {}),
          }),
        );
      }
    } catch (e: unknown) {
      await Promise.all(this.#listeners.map((l) => l.close()));
      if (e instanceof ListenError) throw new StartupError(e.message);
      throw e;
    }
  }

  /**
   * Out of descriptors (EMFILE) or the like: new connections wait in the
   * kernel's backlog, unanswered, until a connection ends. Said at most once
   * every ACCEPT_WARN_MS, with the count of failures since, not 20 a second.
   */
  #acceptFailed(e: unknown, listener: BoundListener): void {
    this.#acceptFailures++;
    const now = performance.now();
    if (now - this.#acceptWarnedAt < ACCEPT_WARN_MS) return;
    this.#logger.warn("cannot accept connections: they wait unanswered", {
      listener: hostPort(listener.address, listener.port),
      error: errorReason(e),
      failures: this.#acceptFailures,
      connections: this.#connections.size,
    });
    this.#acceptWarnedAt = now;
    this.#acceptFailures = 0;
  }

  /** The primary's helper thread, drained and stopped with it. */
  adopt(helper: HelperThread): void {
    if (this.#stopping) {
      // A signal came while the helper started: the drain did not see it.
      helper.stop();
      return;
    }
    this.#helper = helper;
  }

  #stored(meta: Meta, emlPath: string): void {
    this.#storedCount++;
    this.#hooks?.run({
      SMTPD_ID: meta.id,
      SMTPD_EML: emlPath,
      SMTPD_META: join(this.#spool.dir, `${meta.id}.json`),
      SMTPD_FROM: meta.mailFrom,
      SMTPD_RCPT: rcptVariable(meta.rcptTo),
    });
    const limit = this.#options.exitAfter;
    // Said once: messages already under way when it was reached are stored too.
    if (limit !== undefined && this.#storedCount >= limit && this.#stopping === null) {
      this.#logger.info("exit-after reached", { stored: this.#storedCount });
      void this.close();
    }
  }

  async #accept(socket: WireSocket, listener: BoundListener): Promise<void> {
    socket.on("error", () => socket.destroy());
    if (this.#stopping) {
      socket.destroy();
      return;
    }
    const client = clientOf(socket);
    const server = { address: plainAddress(socket.localAddress), port: socket.localPort ?? 0 };
    const conn = this.#counters.nextNumber();
    const active = this.#counters.admit();
    const opened = Date.now();
    let released = false;
    /** Ends a connection that never reached a session, with the same closing line (SPEC §5). */
    const closeEarly = (reason: string) => {
      if (!released) this.#counters.release();
      released = true;
      this.#logger.info("connection closed", {
        conn,
        client: client.address,
        reason,
        ms: Date.now() - opened,
      });
    };
    // Every connection gets its opened and closed line, refused ones included.
    this.#logger.info("connection opened", {
      conn,
      client: client.address,
      port: client.port,
      listener: hostPort(listener.address, listener.port),
      tls: listener.tls,
      // Which thread serves it, when there are two.
      ...(this.#thread.role === "helper" ? { thread: 2 } : this.#helper ? { thread: 1 } : {}),
    });
    let stream: WireSocket = socket;
    let tls = null;
    if (listener.tls) {
      try {
        // TLS listeners are node:net ones (listener.ts).
        if (!(socket instanceof Socket)) throw new Error("TLS needs a node:net socket");
        this.#handshaking.add(socket);
        const secure = await upgradeServerSocket(
          socket,
          this.#setup.tls!.secureContext,
          Math.min(HANDSHAKE_TIMEOUT_MS, this.#setup.timeoutMs),
        ).finally(() => this.#handshaking.delete(socket));
        stream = secure;
        tls = tlsInfo(secure);
      } catch (e: unknown) {
        this.#logger.info("tls handshake failed", {
          conn,
          client: client.address,
          error: e instanceof Error ? e.message : String(e),
        });
        closeEarly("tls handshake failed");
        return;
      }
    }
    if (active > this.#setup.maxConnections) {
      this.#refuse(stream, REPLY_TOO_MANY_CONNECTIONS(this.#setup.hostname), conn, client.address);
      closeEarly("too many connections");
      return;
    }
    // A shutdown drains the connect stage like a handshake (no session yet, no 421 owed).
    this.#handshaking.add(stream);
    // Copies: what onConnect edits is not what the session records (README).
    const refusal = await this.#connectStage(
      { client: { ...client }, server: { ...server }, tls: listener.tls },
      conn,
    );
    this.#handshaking.delete(stream);
    if (refusal === "timeout") {
      this.#refuse(stream, REPLY_TIMEOUT(this.#setup.hostname), conn, client.address);
      closeEarly("timeout");
      return;
    }
    if (refusal === "disconnect") {
      stream.destroy();
      closeEarly("fault");
      return;
    }
    if (refusal?.code === 421) {
      this.#refuse(stream, refusal, conn, client.address);
      closeEarly("refused");
      return;
    }
    // Any other refusal replaces the greeting and the session waits for QUIT.
    if (refusal) this.#logReply(refusal, conn, client.address);
    // The client may have left during a connect delay or an async onConnect:
    // no Connection would ever see its "close" and free the slot.
    if (stream.destroyed || stream.readableEnded === true) {
      stream.destroy();
      closeEarly("closed");
      return;
    }
    released = true; // from here the handler's closed() releases the slot
    const handler = new SessionHandler(
      this.#ctx,
      { client, server, tls: listener.tls },
      conn,
      tls,
      opened,
    );
    const config = this.#sessionConfig(listener, client.address);
    const connection = new Connection(stream, {
      config: refusal ? { ...config, refusedGreeting: refusal } : config,
      handler,
      timeoutMs: this.#setup.timeoutMs,
      ...(this.#setup.tls ? { secureContext: this.#setup.tls.secureContext } : {}),
      // Deno's own sockets reuse their read buffers; node:net's and TLS's do not.
      ...(stream instanceof Socket ? { onRead: noteNodeRead } : {}),
    });
    this.#connections.add(connection);
    stream.once("close", () => this.#connections.delete(connection));
    connection.start();
    if (this.#stopping) connection.shutdown();
  }

  /**
   * The `connect` stage: `--fault connect …`, then `onConnect`, before the
   * greeting. An onConnect that never settles holds its connection slot no
   * longer than `--timeout` ("timeout"); a fault's delay is served in full
   * (SPEC §8: "then carry on normally"), as at every other stage.
   */
  async #connectStage(
    info: {
      client: { address: string; port: number };
      server: { address: string; port: number };
      tls: boolean;
    },
    conn: number,
  ): Promise<Reply | "disconnect" | "timeout" | null> {
    const action = this.#setup.faults.match("connect", info.client.address);
    if (action?.type === "disconnect") return "disconnect";
    if (action?.type === "reply") return action.reply;
    if (action?.type === "delay") {
      // Clamped: a longer delay would overflow the timer and not delay at all.
      await new Promise((r) => setTimeout(r, timerDelay(action.ms)));
    }
    const onConnect = this.#options.onConnect;
    if (!onConnect) return null;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timedOut = new Promise<"timeout">((resolve) => {
      timer = setTimeout(() => resolve("timeout"), timerDelay(this.#setup.timeoutMs));
    });
    try {
      const answer = await Promise.race([onConnect(info), timedOut]);
      if (answer === "timeout") return answer;
      const decision = toDecision(answer, {
        code: 554,
        enhanced: "5.7.1",
        lines: ["Not allowed"],
      });
      return decision && greetingRefusal(decision);
    } catch (e: unknown) {
      this.#logger.error("onConnect callback failed", {
        conn,
        error: e instanceof Error ? (e.stack ?? e.message) : String(e),
      });
      return replyFrom({ code: 421, enhanced: "4.3.0", text: "Temporary server error" });
    } finally {
      clearTimeout(timer);
    }
  }

  /** Answers `421` instead of the greeting and closes (RFC 5321 §3.8). */
  #refuse(socket: WireSocket, reply: Reply, conn: number, client: string): void {
    this.#logReply(reply, conn, client);
    socket.end(formatReply(reply));
    setTimeout(() => socket.destroy(), 2000);
  }

  /** A reply sent instead of the greeting: logged at info, like a fault's. */
  #logReply(reply: Reply, conn: number, client: string): void {
    this.#logger.info("reply", {
      conn,
      client,
      code: reply.code,
      enhanced: reply.enhanced,
      text: reply.lines.join(" / "),
    });
  }

  #sessionConfig(listener: BoundListener, clientAddress: string): SessionConfig {
    const s = this.#setup;
    const hostname = s.hostname;
    return {
      hostname,
      maxSize: s.maxSize,
      maxRecipients: s.maxRecipients,
      starttls: s.tls !== null && !listener.tls,
      tlsActive: listener.tls,
      requireTls: this.#options.requireTls === true,
      requireAuth: this.#options.requireAuth === true,
      authMechanisms: s.authMechanisms,
      trustedProxy: cidrContains(s.trustProxy, clientAddress),
      acceptRcpt: s.acceptRcpt,
      cramChallenge: () => `<${crypto.randomUUID()}.${Date.now()}@${hostname}>`,
      transcript: this.#logger.enabled("debug"),
    };
  }

  /** Graceful stop; calling it again returns the same promise. */
  close(): Promise<void> {
    this.#stopping ??= this.#drain();
    return this.#stopping;
  }

  /** Start-up failed after binding: release connections, listeners and spool without a log line. */
  async abandon(): Promise<void> {
    // A client still in its handshake or onConnect gets 421 when it gets through (#accept).
    this.#stopping ??= Promise.resolve();
    for (const c of this.#connections) c.destroy("start-up failed");
    for (const s of this.#handshaking) s.destroy();
    await Promise.all(this.#listeners.map((l) => l.close()));
    await this.#spool.close();
    this.#helper?.stop();
  }

  /** Second signal: drop everything now. */
  abort(): void {
    this.#abortedAt ??= Date.now();
    this.#helper?.abort();
    for (const c of this.#connections) c.destroy("shutdown");
    for (const s of this.#handshaking) s.destroy();
    this.#hooks?.cancel();
    void this.close();
  }

  async #drain(): Promise<void> {
    const primary = this.#thread.role === "primary";
    const helperStored = this.#helper?.close(DRAIN_DEADLINE_MS) ?? Promise.resolve(0);
    if (primary) this.#logger.info("shutting down", { connections: this.#connections.size });
    // node:net's close() calls back only once every connection has ended: do
    // not wait for it before telling the sessions to finish.
    const listenersClosed = Promise.all(this.#listeners.map((l) => l.close()));
    for (const c of this.#connections) c.shutdown();
    const deadline = Date.now() + DRAIN_DEADLINE_MS;
    // A handshake that completes in time gets its session and, at once, 421.
    while ((this.#connections.size > 0 || this.#handshaking.size > 0) && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 25));
    }
    for (const s of this.#handshaking) s.destroy();
    // Sessions still busy are told 421 4.3.2; each socket is destroyed at the
    // latest EXPIRE_GRACE_MS later (the race only guards against a socket
    // that never says it closed).
    const expired = Promise.all([...this.#connections].map((c) => c.expire()));
    let grace: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([expired, new Promise((r) => grace = setTimeout(r, 2 * EXPIRE_GRACE_MS))]);
    clearTimeout(grace);
    await listenersClosed;
    // Hooks get what is left of the drain deadline, then are cancelled.
    if (this.#hooks) {
      const left = Math.max(0, deadline - Date.now());
      await Promise.race([this.#hooks.idle(), new Promise((r) => setTimeout(r, left))]);
      this.#hooks.cancel();
    }
    const stored = this.#storedCount + await helperStored;
    await this.#spool.close();
    this.#helper?.stop();
    if (primary) this.#logger.info("stopped", { stored });
    // The last lines out before the process exits; not for long when nobody
    // reads the stderr pipe, and at most ABORT_FLUSH_MS after a second signal.
    // The helper's share comes first: the primary waits for it to stop.
    await flushStderr(
      primary ? PRIMARY_FLUSH_MS : HELPER_FLUSH_MS,
      () => this.#abortedAt !== null && Date.now() - this.#abortedAt >= ABORT_FLUSH_MS,
    );
    this.#resolveFinished();
  }

  /** Messages this thread stored. */
  get stored(): number {
    return this.#storedCount;
  }
}

function makeLogger(options: ServeOptions): Logger {
  let sink: LogSink | undefined;
  if (options.logFile !== undefined) {
    try {
      sink = fileSink(options.logFile);
    } catch (e: unknown) {
      throw new StartupError(`cannot open log file ${options.logFile}: ${errorReason(e)}`);
    }
  }
  return new Logger({ ...loggerLevels(options), ...(sink ? { sink } : {}) });
}

/** The level and format `options` ask for, defaults filled in. */
function loggerLevels(options: ServeOptions): { level: LogLevel; format: LogFormat } {
  return {
    level: options.logLevel ?? DEFAULTS.logLevel,
    format: options.logFormat ?? DEFAULTS.logFormat,
  };
}

/**
 * Writes `content` to `path` via a temporary file and a rename (readers
 * never see half). A failure leaves no temporary file behind.
 *
 * @throws {StartupError} One line naming `what`, the path and the OS reason.
 */
async function writeAtomically(what: string, path: string, content: string): Promise<void> {
  const tmp = `${path}.${Deno.pid}.tmp`;
  try {
    await Deno.writeTextFile(tmp, content);
    await Deno.rename(tmp, path);
  } catch (e: unknown) {
    await Deno.remove(tmp).catch(() => {});
    throw new StartupError(`cannot write ${what} ${path}: ${errorReason(e)}`);
  }
}

/**
 * Removes a ready file left by an earlier run. A directory is left alone
 * (writing the ready file then fails, naming it); anything else that is not
 * a regular file (`/dev/stdout`, a FIFO, a device, a symlink) is refused:
 * the ready file replaces what is at its path, and that is not ours to remove.
 *
 * @throws {StartupError} When it exists and cannot or must not be removed.
 */
async function removeStaleReadyFile(path: string): Promise<void> {
  let info: Deno.FileInfo;
  try {
    info = await Deno.lstat(path);
  } catch (e: unknown) {
    if (e instanceof Deno.errors.NotFound) return;
    throw new StartupError(`cannot use the ready file ${path}: ${errorReason(e)}`);
  }
  if (info.isDirectory) return;
  if (!info.isFile) {
    const what = info.isSymlink ? "a symbolic link" : "not a regular file";
    throw new StartupError(`cannot use the ready file ${path}: ${what}`);
  }
  try {
    await Deno.remove(path);
  } catch (e: unknown) {
    if (e instanceof Deno.errors.NotFound) return;
    throw new StartupError(`cannot remove the old ready file ${path}: ${errorReason(e)}`);
  }
}

async function openSpool(
  dir: string,
  options: ServeOptions,
  logger: Logger,
  shared: SharedState,
  recover: boolean,
): Promise<SpoolWriter> {
  try {
    return await SpoolWriter.open({
      dir,
      fsync: options.noFsync !== true,
      idState: shared.ids,
      recover,
      onHashWorkerFailure: (reason) =>
        logger.warn("hash worker unavailable: large messages hashed on the main thread", {
          error: reason,
        }),
    });
  } catch (e: unknown) {
    if (e instanceof SpoolError) throw new StartupError(e.message);
    throw e;
  }
}

/**
 * The helper thread's server (helper_worker.ts): the primary's options on
 * the ports the primary bound, sharing its counters and IDs, without
 * start-up clean-up, ready file or signals.
 */
export async function serveHelper(
  options: ServeOptions,
  shared: SharedState,
  hashPort: MessagePort,
): Promise<Server> {
  const s = await setup(options);
  const logger = makeLogger(options);
  const spool = await openSpool(
    resolve(options.spool ?? DEFAULTS.spool),
    options,
    logger,
    shared,
    false,
  );
  spool.hashOn(hashPort);
  const server = new Server(options, s, spool, logger, {
    shared,
    role: "helper",
    reusePort: "join",
  });
  try {
    await server.bind();
  } catch (e: unknown) {
    await spool.close();
    throw e;
  }
  // The worker's scope is ours whoever called serve(): its uncaught errors too.
  const unguard = guardUncaught(logger);
  void server.finished.then(unguard);
  return server;
}

/**
 * The signals the server stops on, and those it listens to only to ignore.
 * Windows delivers only SIGINT and SIGBREAK to Deno (SPEC §7). SIGHUP (the
 * terminal closed) drains like SIGTERM instead of killing transfers mid-way,
 * unless the server was started under nohup: then it stays ignored. A file-
 * size limit (`ulimit -f`) kills with SIGXFSZ by default; ignored, the write
 * fails with EFBIG instead and that message gets `452 4.3.1`.
 */
interface SignalSets {
  stop: Deno.Signal[];
  ignored: Deno.Signal[];
}

let signalSets: SignalSets | undefined;

/**
 * Worked out on first use, before any listener exists: Deno's first signal
 * listener of any kind catches SIGHUP too (and a caught SIGHUP nobody listens
 * to ends the process, nohup or not), after which `SigIgn` no longer tells.
 */
function signals(): SignalSets {
  if (signalSets) return signalSets;
  if (Deno.build.os === "windows") {
    return signalSets = { stop: ["SIGINT", "SIGBREAK"], ignored: [] };
  }
  const nohup = Deno.build.os === "linux" && hangupIgnored();
  return signalSets = {
    stop: ["SIGINT", "SIGTERM", ...(nohup ? [] : ["SIGHUP" as const])],
    ignored: ["SIGXFSZ", ...(nohup ? ["SIGHUP" as const] : [])],
  };
}

/** Started to ignore SIGHUP (`nohup`): bit 0 of `SigIgn` in Linux's `/proc/self/status`. */
function hangupIgnored(): boolean {
  try {
    const status = Deno.readTextFileSync("/proc/self/status");
    const mask = /^SigIgn:\s*([0-9a-f]+)$/m.exec(status)?.[1];
    return mask !== undefined && (parseInt(mask.slice(-1), 16) & 1) === 1;
  } catch {
    return false;
  }
}

/**
 * Counts the stop signals that arrive while the server starts (parsing,
 * certificate, spool, bind), which would otherwise end the process with
 * the signal's default action (exit 143) instead of SPEC §2's exit 0.
 */
function holdSignals(): { received: () => number; release: () => void } {
  let received = 0;
  const release = onStopSignals(() => received++);
  return { received: () => received, release };
}

/** Listens to every stop signal (and ignores the others); returns what removes the listeners. */
function onStopSignals(listener: () => void): () => void {
  const { stop, ignored } = signals();
  const ignore = () => {};
  for (const s of ignored) Deno.addSignalListener(s, ignore);
  for (const s of stop) Deno.addSignalListener(s, listener);
  return () => {
    for (const s of stop) Deno.removeSignalListener(s, listener);
    for (const s of ignored) Deno.removeSignalListener(s, ignore);
  };
}

/** The stop signals' handlers; `replay` acts on signals that came during start-up. */
interface SignalHandlers {
  uninstall: () => void;
  replay: (count: number) => void;
}

function installSignals(server: Server, logger: Logger): SignalHandlers {
  let received = 0;
  const onSignal = () => {
    received++;
    if (received === 1) {
      logger.info("signal received: draining (send again to stop at once)");
      void server.close();
    } else {
      logger.warn("second signal: stopping at once");
      server.abort();
    }
  };
  return {
    uninstall: onStopSignals(onSignal),
    replay: (count) => {
      for (let i = 0; i < Math.min(count, 2); i++) onSignal();
    },
  };
}

/**
 * Starts the server; resolves once every listener is bound (and the ready
 * file written). Rejects with `OptionError` (bad option) or `StartupError`.
 */
export async function serve(options: ServeOptions = {}): Promise<ServerHandle> {
  options ??= {}; // serve(null) from JavaScript
  const held = options.handleSignals ? holdSignals() : null;
  try {
    return await start(options, held?.received ?? (() => 0));
  } catch (e: unknown) {
    if (e instanceof StartupError) logStartupFailure(options, e);
    // Lines logged before the failure come before the caller's one-line error.
    await flushStderr();
    throw e;
  } finally {
    held?.release();
  }
}

/**
 * A start-up failure is an error event of SPEC §5: with `--log-file` it is
 * written there too (the caller still prints its one line on stderr).
 * Best effort: the log file may be the very thing that failed.
 */
function logStartupFailure(options: ServeOptions, e: StartupError): void {
  if (options.logFile === undefined) return;
  const lines: string[] = [];
  new Logger({ ...loggerLevels(options), sink: (line) => lines.push(line) })
    .error("start-up failed", { error: e.message });
  try {
    Deno.writeTextFileSync(options.logFile, lines.map((l) => l + "\n").join(""), { append: true });
  } catch {
    // The log file cannot be written: stderr has the reason.
  }
}

async function start(options: ServeOptions, earlySignals: () => number): Promise<ServerHandle> {
  // First: whatever fails below, a poller must not take an earlier run's file for this one.
  if (options.readyFile !== undefined) await removeStaleReadyFile(options.readyFile);
  const s = await setup(options);
  const logger = makeLogger(options);
  const spoolDir = resolve(options.spool ?? DEFAULTS.spool);
  const shared = newSharedState();
  const obstacle = helperObstacle(options, s);
  const spool = await openSpool(spoolDir, options, logger, shared, true);
  const { recovery } = spool;
  if (recovery.skipped) {
    logger.info("spool shared with a running server: start-up clean-up left to it", {
      spool: spool.dir,
    });
  } else if (recovery.tmpRemoved + recovery.orphansRemoved > 0) {
    logger.info("spool recovered", { ...recovery, spool: spool.dir });
  }
  if (s.tls) {
    const dir = join(spoolDir, ".tls");
    try {
      await Deno.mkdir(dir, { recursive: true });
      await writeAtomically("the certificate", join(dir, "cert.pem"), s.tls.certPem);
    } catch (e: unknown) {
      await spool.close();
      if (e instanceof StartupError) throw e;
      throw new StartupError(`cannot create ${dir}: ${errorReason(e)}`);
    }
  }
  const server = new Server(options, s, spool, logger, {
    shared,
    role: "primary",
    ...(obstacle === null ? { reusePort: "first" as const } : {}),
  });
  try {
    await server.bind();
  } catch (e: unknown) {
    await spool.close();
    throw e;
  }
  const addresses = server.listeners.map((l) => ({ address: l.address, port: l.port, tls: l.tls }));
  // Before the helper starts: the listeners already accept, so a signal must drain.
  const signals = options.handleSignals ? installSignals(server, logger) : null;
  // Owning the process (the CLI), the server also owns its uncaught errors.
  const unguard = options.handleSignals ? guardUncaught(logger) : null;
  const uninstall = () => {
    signals?.uninstall();
    unguard?.();
  };
  // Counted now: from here on the installed handlers see every new signal too.
  const early = earlySignals();
  void server.finished.then(uninstall);
  let helper: HelperThread | null = null;
  try {
    if (obstacle === null) {
      helper = await HelperThread.start(options, shared, addresses, logger, spool);
    }
  } catch (e: unknown) {
    uninstall();
    await server.abandon(); // a failed serve() leaves nothing listening
    throw e;
  }
  if (helper) server.adopt(helper);
  if (options.readyFile !== undefined) {
    try {
      await writeAtomically(
        "the ready file",
        options.readyFile,
        JSON.stringify({ pid: Deno.pid, listeners: addresses }),
      );
    } catch (e: unknown) {
      uninstall();
      await server.abandon(); // unbinds the listeners a library caller would otherwise keep
      throw e;
    }
  }
  // Served all the same: testing how a client meets a bad certificate is a use of a sink.
  const problem = s.tls ? certificateProblem(s.tls, new Date()) : null;
  if (problem) {
    logger.warn("tls certificate not valid now", { cert: s.tls?.certPath ?? "", reason: problem });
  }
  logger.info("listening", {
    listeners: addresses.map((a) => `${hostPort(a.address, a.port)}${a.tls ? "/tls" : ""}`)
      .join(","),
    spool: spool.dir,
    tls: s.tls
      ? (options.tlsSelfSigned ? `self-signed sha256=${s.tls.fingerprint256}` : "certificate")
      : "off",
    auth: options.onAuth ? "callback" : s.credentials ? "auth-file" : "any credentials",
    fsync: options.noFsync !== true,
    threads: helper ? 2 : 1,
  });
  // Acted on once the server is fully up, so the log and the ready file read in order.
  signals?.replay(early);
  return { addresses, close: () => server.close(), finished: server.finished };
}
