/**
 * Binds `--listen` / `--listen-tls` addresses with `node:net` (needed for the
 * server side of STARTTLS: `Deno.startTls` is client-only) and hands every
 * accepted socket to the server.
 *
 * @module
 */

import { createServer, type Server, type Socket } from "node:net";

export interface ListenSpec {
  host: string;
  port: number;
  /** Implicit TLS (SMTPS): the server wraps each socket before the greeting. */
  tls: boolean;
}

export interface BoundListener {
  /** Address actually bound (IPv6 without brackets). */
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

/** Binds one listener; resolves once it accepts connections. */
export function bindListener(
  spec: ListenSpec,
  onSocket: (socket: Socket, listener: BoundListener) => void,
): Promise<BoundListener> {
  const server: Server = createServer({ allowHalfOpen: false });
  const label = spec.host.includes(":")
    ? `[${spec.host}]:${spec.port}`
    : `${spec.host}:${spec.port}`;
  return new Promise((resolve, reject) => {
    const onError = (e: unknown) => {
      const code = (e as { code?: string }).code ?? "";
      const reason = BIND_REASONS[code] ?? (e instanceof Error ? e.message : String(e));
      reject(new ListenError(`cannot listen on ${label}: ${reason}`));
    };
    server.once("error", onError);
    server.listen({ host: spec.host, port: spec.port, exclusive: true }, () => {
      server.off("error", onError);
      // Accept errors (EMFILE and the like) must not kill the process.
      server.on("error", () => {});
      const bound = server.address();
      const port = typeof bound === "object" && bound ? bound.port : spec.port;
      const listener: BoundListener = {
        address: spec.host,
        port,
        tls: spec.tls,
        close: () => new Promise<void>((done) => server.close(() => done())),
      };
      server.on("connection", (socket: Socket) => onSocket(socket, listener));
      resolve(listener);
    });
  });
}
