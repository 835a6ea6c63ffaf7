/**
 * Small socket helpers shared by the TLS unit tests: a `node:net` server on
 * 127.0.0.1:0, line reading on Deno connections, and external-tool probes.
 *
 * @module
 */

import net from "node:net";

/** A listening `node:net` server and how to stop it. */
export interface TestServer {
  port: number;
  /** Closes the listener and destroys every accepted socket. */
  close(): Promise<void>;
}

/** Listens on 127.0.0.1:0 and hands each accepted socket to `onSocket`. */
export function listen(onSocket: (socket: net.Socket) => void): Promise<TestServer> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
    // A test that kills its client mid-way must not crash on ECONNRESET.
    socket.on("error", () => {});
    onSocket(socket);
  });
  return new Promise((resolve) => {
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as net.AddressInfo;
      resolve({
        port,
        close: () =>
          new Promise<void>((done) => {
            for (const socket of sockets) socket.destroy();
            server.close(() => done());
          }),
      });
    });
  });
}

const decoder = new TextDecoder();
const encoder = new TextEncoder();

/** Reads from `conn` until the text read so far ends with CRLF; at most 64 reads. */
export async function readLine(conn: Deno.Conn | Deno.TlsConn): Promise<string> {
  const buffer = new Uint8Array(4096);
  let text = "";
  for (let i = 0; i < 64 && !text.endsWith("\r\n"); i++) {
    const n = await conn.read(buffer);
    if (n === null) break;
    text += decoder.decode(buffer.subarray(0, n));
  }
  return text;
}

/** Writes all of `text` to `conn`. */
export async function writeText(conn: Deno.Conn | Deno.TlsConn, text: string): Promise<void> {
  const bytes = encoder.encode(text);
  let offset = 0;
  while (offset < bytes.length) offset += await conn.write(bytes.subarray(offset));
}

/** Writes to a plain socket and resolves once the bytes are handed to the OS. */
export function writeAndFlush(socket: net.Socket, text: string): Promise<void> {
  return new Promise((resolve, reject) => {
    socket.write(text, (error) => (error ? reject(error) : resolve()));
  });
}

/** True when `command` runs (`command -v` without a shell). */
export async function hasCommand(command: string, ...args: string[]): Promise<boolean> {
  try {
    const { success } = await new Deno.Command(command, { args, stdout: "null", stderr: "null" })
      .output();
    return success;
  } catch {
    return false;
  }
}

/** Runs a command with `input` on stdin; returns exit code and both outputs. */
export async function run(
  command: string,
  args: string[],
  input = "",
): Promise<{ code: number; stdout: string; stderr: string }> {
  const child = new Deno.Command(command, {
    args,
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const writer = child.stdin.getWriter();
  await writer.write(encoder.encode(input));
  await writer.close();
  const { code, stdout, stderr } = await child.output();
  return { code, stdout: decoder.decode(stdout), stderr: decoder.decode(stderr) };
}
