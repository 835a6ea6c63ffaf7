/**
 * Binds `--listen` / `--listen-tls` addresses and hands every accepted socket
 * to the server: with `node:net` where TLS may be needed (the server side of
 * STARTTLS upgrades only a `node:net` socket; `Deno.startTls` is client-only),
 * with `Deno.listen` otherwise (`native_socket.ts`: less CPU per reply, one
 * reused read buffer).
 *
 * @module
 */

import { createServer, type Server, type Socket } from "node:net";
import { NativeSocket } from "./native_socket.ts";
import type { WireSocket } from "./wire_socket.ts";

export interface ListenSpec {
  host: string;
  port: number;
  /** Implicit TLS (SMTPS): the server wraps each socket before the greeting. */
  tls: boolean;
}

export interface BindOptions {
  /**
   * Accept with `Deno.listen` (a `NativeSocket`) instead of `node:net`. Only
   * for a plain listener of a server without TLS: such sockets cannot be
   * upgraded.
   */
  native?: boolean;
  /**
   * Bind a native listener with `SO_REUSEPORT` (Linux, `--unstable-net`), so
   * that a second thread of the same server can bind the same port and the
   * kernel spreads new connections over both. `"first"`: the port must be
   * free (a plain bind probes it, so another server's port is never
   * joined); `"join"`: the second thread, binding the port the first got.
   */
  reusePort?: "first" | "join";
  /**
   * An accept that failed for the listener, not for one connection (out of
   * descriptors: EMFILE, ENFILE; out of memory): the connections it could
   * not take wait in the backlog. Called for every such failure.
   */
  onAcceptError?: (e: unknown, listener: BoundListener) => void;
}

export interface BoundListener {
  /** Address actually bound, numeric (`localhost` → `127.0.0.1`; IPv6 without brackets). */
  address: string;
  /** Port actually bound (the chosen one for port 0). */
  port: number;
  tls: boolean;
  /** Stops accepting; open connections are left to the server. */
  close(): Promise<void>;
}

/** A listener could not be bound; `message` is one line for the user. */
export class ListenError extends Error {
  override name = "ListenError";
}

const BIND_REASONS: Record<string, string> = {
  EADDRINUSE: "address already in use",
  EACCES: "permission denied (ports below 1024 need privileges)",
  EADDRNOTAVAIL: "address not available on this machine",
  EAFNOSUPPORT: "address family not supported",
};

/** The same errors as Deno names them. */
const DENO_CODES: Record<string, string> = {
  AddrInUse: "EADDRINUSE",
  PermissionDenied: "EACCES",
  AddrNotAvailable: "EADDRNOTAVAIL",
};

/** After a failed accept (EMFILE and the like), wait this long before the next. */
const ACCEPT_RETRY_MS = 50;

/**
 * accept(2) errors of the one pending connection, not of the listener: a
 * client that reset before it was taken (Deno then fails on its peer
 * address: ENOTCONN), and the network errors Linux passes on from the new
 * socket. Waiting after those let a port scanner or a health check that
 * resets (SO_LINGER 0) hold back every greeting: 20 such connections a
 * second filled the backlog.
 */
const CONNECTION_ERRORS: ReadonlySet<string> = new Set([
  "ENOTCONN",
  "ECONNABORTED",
  "ECONNRESET",
  "EPROTO",
  "ENETDOWN",
  "ENETUNREACH",
  "ENONET",
  "ENOPROTOOPT",
  "EHOSTDOWN",
  "EHOSTUNREACH",
  "EOPNOTSUPP",
  "EINTR",
]);

/** Whether a failed accept concerned only the connection it tried to take. */
function failedAlone(e: unknown): boolean {
  if (e instanceof Deno.errors.NotConnected || e instanceof Deno.errors.ConnectionAborted) {
    return true;
  }
  if (e instanceof Deno.errors.ConnectionReset) return true;
  const code = (e as { code?: unknown } | null)?.code;
  return typeof code === "string" && CONNECTION_ERRORS.has(code);
}

type OnSocket = (socket: WireSocket, listener: BoundListener) => void;

/** Binds one listener; resolves once it accepts connections. */
export function bindListener(
  spec: ListenSpec,
  onSocket: OnSocket,
  options: BindOptions = {},
): Promise<BoundListener> {
  const acceptFailed = options.onAcceptError ?? (() => {});
  return options.native && !spec.tls
    ? bindNative(spec, onSocket, acceptFailed, options.reusePort)
    : bindNode(spec, onSocket, acceptFailed);
}

/** `host:port`, with an IPv6 host in brackets (the `--listen` form). */
export function hostPort(host: string, port: number): string {
  return host.includes(":") ? `[${host}]:${port}` : `${host}:${port}`;
}

function labelOf(spec: ListenSpec): string {
  return hostPort(spec.host, spec.port);
}

function listenError(spec: ListenSpec, e: unknown): ListenError {
  const error = e as { code?: string; name?: string };
  const code = error.code ?? DENO_CODES[error.name ?? ""] ?? "";
  const reason = BIND_REASONS[code] ?? (e instanceof Error ? e.message : String(e));
  return new ListenError(`cannot listen on ${labelOf(spec)}: ${reason}`);
}

/**
 * Whether `Deno.listen` takes `reusePort` here: Linux (elsewhere the option
 * does not spread connections) and a runtime started with `--unstable-net`.
 */
export function reusePortAvailable(): boolean {
  // A gated unstable API ends the process instead of throwing, so the flag
  // is detected by an API that exists only under it.
  return Deno.build.os === "linux" && "listenDatagram" in Deno;
}

function reusePortOptions(spec: ListenSpec, reusePort: boolean): Deno.TcpListenOptions {
  const options = { hostname: spec.host, port: spec.port, transport: "tcp" as const };
  // `reusePort` is typed only under the unstable-net type library.
  return reusePort ? { ...options, reusePort: true } as Deno.TcpListenOptions : options;
}

function listenNative(spec: ListenSpec, reusePort: "first" | "join" | undefined): Deno.TcpListener {
  if (reusePort === "first" && spec.port !== 0) {
    // SO_REUSEPORT would let this bind join another server's port (say, a
    // second smtpd started by mistake): a plain bind must succeed first.
    Deno.listen(reusePortOptions(spec, false)).close();
  }
  return Deno.listen(reusePortOptions(spec, reusePort !== undefined));
}

type OnAcceptError = NonNullable<BindOptions["onAcceptError"]>;

function bindNative(
  spec: ListenSpec,
  onSocket: OnSocket,
  acceptFailed: OnAcceptError,
  reusePort: "first" | "join" | undefined,
): Promise<BoundListener> {
  let socket: Deno.TcpListener;
  try {
    socket = listenNative(spec, reusePort);
  } catch (e: unknown) {
    return Promise.reject(listenError(spec, e));
  }
  let closed = false;
  const listener: BoundListener = {
    // The numeric address, not the name given: what a client connects to.
    address: socket.addr.hostname,
    port: socket.addr.port,
    tls: false,
    close: () => {
      closed = true;
      try {
        socket.close();
      } catch {
        // Already closed.
      }
      return accepting;
    },
  };
  const accepting = (async () => {
    while (!closed) {
      let conn: Deno.TcpConn;
      try {
        conn = await socket.accept();
      } catch (e: unknown) {
        if (closed) return;
        // One connection's own failure: the next is taken at once. Otherwise
        // (out of descriptors and the like) the server must live on, and wait.
        if (failedAlone(e)) continue;
        acceptFailed(e, listener);
        await new Promise((r) => setTimeout(r, ACCEPT_RETRY_MS));
        continue;
      }
      onSocket(new NativeSocket(conn), listener);
    }
  })();
  return Promise.resolve(listener);
}

function bindNode(
  spec: ListenSpec,
  onSocket: OnSocket,
  acceptFailed: OnAcceptError,
): Promise<BoundListener> {
  const server: Server = createServer({ allowHalfOpen: true });
  return new Promise((resolve, reject) => {
    const onError = (e: unknown) => reject(listenError(spec, e));
    server.once("error", onError);
    server.listen({ host: spec.host, port: spec.port, exclusive: true }, () => {
      server.off("error", onError);
      const bound = server.address();
      const port = typeof bound === "object" && bound ? bound.port : spec.port;
      const listener: BoundListener = {
        // The numeric address, not the name given: what a client connects to.
        address: typeof bound === "object" && bound ? bound.address : spec.host,
        port,
        tls: spec.tls,
        close: () => new Promise<void>((done) => server.close(() => done())),
      };
      // Accept errors (EMFILE and the like) must not kill the process.
      server.on("error", (e: unknown) => {
        if (!failedAlone(e)) acceptFailed(e, listener);
      });
      server.on("connection", (socket: Socket) => onSocket(socket, listener));
      resolve(listener);
    });
  });
}
