import assert from "node:assert/strict";
import type net from "node:net";
import type tls from "node:tls";
import { loadTlsContext } from "../../../lib/net/tls_context.ts";
import { TlsHandshakeError, tlsInfo, upgradeServerSocket } from "../../../lib/net/starttls.ts";
import {
  hasCommand,
  listen,
  readLine,
  run,
  type TestServer,
  writeAndFlush,
  writeText,
} from "./_tls_helpers.ts";

const material = await loadTlsContext({ selfSigned: true, hostname: "localhost" });
const HANDSHAKE_TIMEOUT_MS = 5_000;

interface Upgraded {
  secure: tls.TLSSocket;
  /** Bytes that followed STARTTLS in the plain chunk and were dropped. */
  discarded: string;
  /** Everything the TLS side received, in order. */
  received: string[];
}

interface DriverHooks {
  /** Runs after the plain socket stopped reading, before the 220. */
  afterPause?: (socket: net.Socket) => Promise<void>;
  /** Answer EHLO with a STARTTLS offer (for openssl s_client -starttls smtp). */
  ehlo?: boolean;
}

/**
 * What the real driver has to do, in miniature: read plain lines until
 * STARTTLS, stop reading, drop what followed STARTTLS, reply 220, upgrade,
 * then echo every TLS chunk as `echo: …`.
 */
function miniDriver(socket: net.Socket, hooks: DriverHooks = {}): Promise<Upgraded> {
  const { promise, resolve, reject } = Promise.withResolvers<Upgraded>();
  socket.write(hooks.ehlo ? "220 localhost ESMTP test\r\n" : "220 x\r\n");
  let buffered = "";
  function onData(chunk: Uint8Array): void {
    buffered += new TextDecoder().decode(chunk);
    for (let end = buffered.indexOf("\r\n"); end >= 0; end = buffered.indexOf("\r\n")) {
      const line = buffered.slice(0, end);
      buffered = buffered.slice(end + 2);
      if (line.toUpperCase().startsWith("EHLO")) {
        socket.write("250-localhost\r\n250 STARTTLS\r\n");
      } else if (line.toUpperCase() === "STARTTLS") {
        socket.off("data", onData);
        socket.pause();
        // RFC 3207 §4.2 / CVE-2011-0411: what was pipelined after STARTTLS is dropped.
        upgrade(buffered).then(resolve, reject);
        return;
      } else {
        socket.write("500 5.5.2 unexpected\r\n");
      }
    }
  }
  async function upgrade(discarded: string): Promise<Upgraded> {
    await hooks.afterPause?.(socket);
    await writeAndFlush(socket, "220 2.0.0 go\r\n");
    const secure = await upgradeServerSocket(socket, material.secureContext, HANDSHAKE_TIMEOUT_MS);
    return { secure, discarded, received: echo(secure) };
  }
  socket.on("data", onData);
  return promise;
}

/** Echoes each chunk as `echo: …`, ends after a `QUIT` line; returns the log of chunks. */
function echo(secure: tls.TLSSocket): string[] {
  const received: string[] = [];
  secure.on("error", () => {});
  secure.on("data", (chunk: Uint8Array) => {
    const text = new TextDecoder().decode(chunk);
    received.push(text);
    secure.write(`echo: ${text}`);
    if (text.includes("QUIT")) secure.end();
  });
  return received;
}

/** Everything `conn` yields until end of file or a reset; at most 64 reads. */
async function readToEnd(conn: Deno.Conn): Promise<string> {
  const buffer = new Uint8Array(4096);
  let text = "";
  for (let i = 0; i < 64; i++) {
    const n = await conn.read(buffer).catch(() => null);
    if (n === null) break;
    text += new TextDecoder().decode(buffer.subarray(0, n));
  }
  return text;
}

/** Starts a server whose first accepted socket goes to `handle`; returns its outcome too. */
async function serveOnce<T>(
  handle: (socket: net.Socket) => Promise<T>,
): Promise<{ server: TestServer; outcome: Promise<T> }> {
  const { promise, resolve, reject } = Promise.withResolvers<T>();
  const server = await listen((socket) => void handle(socket).then(resolve, reject));
  // Tests await the outcome after the client side; until then a rejection is expected.
  promise.catch(() => {});
  return { server, outcome: promise };
}

Deno.test("upgradeServerSocket completes STARTTLS with a Deno.startTls client", async () => {
  const { server, outcome } = await serveOnce((socket) => miniDriver(socket));
  const conn = await Deno.connect({ hostname: "127.0.0.1", port: server.port });
  assert.equal(await readLine(conn), "220 x\r\n");
  await writeText(conn, "STARTTLS\r\n");
  assert.equal(await readLine(conn), "220 2.0.0 go\r\n");
  const secureConn = await Deno.startTls(conn, {
    caCerts: [material.certPem],
    hostname: "localhost",
  });
  await writeText(secureConn, "hello\r\n");
  assert.equal(await readLine(secureConn), "echo: hello\r\n");
  const { secure, discarded } = await outcome;
  assert.equal(discarded, "");
  const info = tlsInfo(secure);
  assert.equal(info.protocol, "TLSv1.3");
  assert.match(info.cipher, /^TLS_(AES_(128|256)_GCM_SHA(256|384)|CHACHA20_POLY1305_SHA256)$/);
  secureConn.close();
  await server.close();
});

Deno.test("upgradeServerSocket never delivers commands pipelined with STARTTLS in one write", async () => {
  const { server, outcome } = await serveOnce((socket) => miniDriver(socket));
  const conn = await Deno.connect({ hostname: "127.0.0.1", port: server.port });
  await readLine(conn);
  await writeText(conn, "STARTTLS\r\nMAIL FROM:<evil@example.com>\r\n");
  assert.equal(await readLine(conn), "220 2.0.0 go\r\n");
  const secureConn = await Deno.startTls(conn, {
    caCerts: [material.certPem],
    hostname: "localhost",
  });
  await writeText(secureConn, "hello\r\n");
  assert.equal(await readLine(secureConn), "echo: hello\r\n");
  const { discarded, received } = await outcome;
  // The driver held the pipelined command in its own buffer and dropped it.
  assert.equal(discarded, "MAIL FROM:<evil@example.com>\r\n");
  assert.deepEqual(received, ["hello\r\n"]);
  secureConn.close();
  await server.close();
});

Deno.test("upgradeServerSocket feeds plaintext buffered after STARTTLS to TLS, failing the handshake", async () => {
  const paused = Promise.withResolvers<void>();
  const clientWrote = Promise.withResolvers<void>();
  const { server, outcome } = await serveOnce((socket) =>
    miniDriver(socket, {
      async afterPause(socket) {
        paused.resolve();
        await clientWrote.promise;
        // Bounded wait until the late bytes sit in the paused socket's buffer.
        for (let i = 0; i < 200 && socket.readableLength === 0; i++) {
          await new Promise((r) => setTimeout(r, 5));
        }
        assert.equal(socket.readableLength, "EHLO evil\r\n".length);
      },
    })
  );
  const conn = await Deno.connect({ hostname: "127.0.0.1", port: server.port });
  await readLine(conn);
  await writeText(conn, "STARTTLS\r\n");
  await paused.promise;
  await writeText(conn, "EHLO evil\r\n");
  clientWrote.resolve();
  // The server answers the plaintext with a TLS alert (0x15) right after
  // the 220, before the client has even started its handshake.
  const reply = await readToEnd(conn);
  assert.ok(reply.startsWith("220 2.0.0 go\r\n\x15"), JSON.stringify(reply));
  await assert.rejects(outcome, (error: unknown) => {
    assert.ok(error instanceof TlsHandshakeError);
    assert.match(error.message, /^TLS handshake failed: [^\n]+$/);
    return true;
  });
  conn.close();
  await server.close();
});

Deno.test("upgradeServerSocket serves implicit TLS to Deno.connectTls by IP address", async () => {
  const { server, outcome } = await serveOnce(async (socket) => {
    const secure = await upgradeServerSocket(socket, material.secureContext, HANDSHAKE_TIMEOUT_MS);
    return { secure, received: echo(secure) };
  });
  const conn = await Deno.connectTls({
    hostname: "127.0.0.1",
    port: server.port,
    caCerts: [material.certPem],
  });
  await writeText(conn, "EHLO client\r\n");
  assert.equal(await readLine(conn), "echo: EHLO client\r\n");
  const { secure } = await outcome;
  assert.equal(tlsInfo(secure).protocol, "TLSv1.3");
  conn.close();
  await server.close();
});

Deno.test("upgradeServerSocket rejects plaintext on a TLS port with a one-line reason", async () => {
  const { server, outcome } = await serveOnce((socket) =>
    upgradeServerSocket(socket, material.secureContext, HANDSHAKE_TIMEOUT_MS)
  );
  const conn = await Deno.connect({ hostname: "127.0.0.1", port: server.port });
  await writeText(conn, "EHLO client.example\r\n");
  await assert.rejects(outcome, (error: unknown) => {
    assert.ok(error instanceof TlsHandshakeError);
    assert.match(error.message, /^TLS handshake failed: [^\n]+$/);
    return true;
  });
  conn.close();
  await server.close();
});

Deno.test("upgradeServerSocket times out a client that never starts the handshake", async () => {
  const { server, outcome } = await serveOnce((socket) =>
    upgradeServerSocket(socket, material.secureContext, 150)
  );
  const conn = await Deno.connect({ hostname: "127.0.0.1", port: server.port });
  await assert.rejects(outcome, new TlsHandshakeError("TLS handshake timed out after 150 ms"));
  // The server side is gone: the client reads end of file (or a reset).
  const end = await conn.read(new Uint8Array(16)).catch(() => null);
  assert.equal(end, null);
  conn.close();
  await server.close();
});

Deno.test("upgradeServerSocket rejects when the client hangs up mid-handshake", async () => {
  const { server, outcome } = await serveOnce((socket) =>
    upgradeServerSocket(socket, material.secureContext, HANDSHAKE_TIMEOUT_MS)
  );
  const conn = await Deno.connect({ hostname: "127.0.0.1", port: server.port });
  conn.close();
  await assert.rejects(outcome, TlsHandshakeError);
  await server.close();
});

Deno.test("upgradeServerSocket rejects a client that refuses the certificate", async () => {
  const { server, outcome } = await serveOnce((socket) =>
    upgradeServerSocket(socket, material.secureContext, HANDSHAKE_TIMEOUT_MS)
  );
  // No caCerts: the system roots do not know the self-signed certificate.
  const client = Deno.connectTls({ hostname: "127.0.0.1", port: server.port }).then(
    async (conn) => {
      try {
        await conn.handshake();
      } finally {
        conn.close();
      }
    },
  );
  await assert.rejects(client);
  await assert.rejects(outcome, /^TlsHandshakeError: TLS handshake failed: /);
  await server.close();
});

const opensslAvailable = await hasCommand("openssl", "version");

Deno.test({
  name: "upgradeServerSocket works with openssl s_client -starttls smtp, certificate verified",
  ignore: !opensslAvailable,
  async fn() {
    const caFile = await Deno.makeTempFile({ suffix: ".pem" });
    await Deno.writeTextFile(caFile, material.certPem);
    const { server, outcome } = await serveOnce((socket) => miniDriver(socket, { ehlo: true }));
    const result = await run("openssl", [
      "s_client",
      "-starttls",
      "smtp",
      "-connect",
      `127.0.0.1:${server.port}`,
      "-CAfile",
      caFile,
      "-verify_return_error",
      "-verify_hostname",
      "localhost",
      "-crlf",
      "-quiet",
    ], "hello\nQUIT\n");
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stdout, /echo: hello\r\n/);
    const { received } = await outcome;
    assert.equal(received.join(""), "hello\r\nQUIT\r\n");
    await server.close();
    await Deno.remove(caFile);
  },
});

Deno.test({
  name: "tlsInfo reports TLSv1.2 and the IANA cipher name to an openssl -tls1_2 client",
  ignore: !opensslAvailable,
  async fn() {
    const { server, outcome } = await serveOnce(async (socket) => {
      const secure = await upgradeServerSocket(
        socket,
        material.secureContext,
        HANDSHAKE_TIMEOUT_MS,
      );
      const info = tlsInfo(secure);
      echo(secure);
      return info;
    });
    const result = await run("openssl", [
      "s_client",
      "-connect",
      `127.0.0.1:${server.port}`,
      "-tls1_2",
      "-quiet",
    ], "QUIT\n");
    assert.equal(result.code, 0, result.stderr);
    assert.deepEqual(await outcome, {
      protocol: "TLSv1.2",
      cipher: "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
    });
    await server.close();
  },
});
