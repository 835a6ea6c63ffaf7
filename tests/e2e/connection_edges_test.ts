/**
 * Regressions found in review: clients that leave at awkward moments must
 * neither leak a connection slot nor leave a message that got no 250, and a
 * client pipelining through commits must get its replies as it goes.
 */

import assert from "node:assert/strict";
import { findOnPath } from "../helpers/clients.ts";
import { poll, startServer } from "../helpers/launcher.ts";
import { RawClient } from "../helpers/raw_client.ts";

// With TLS configured the plain listener is node:net's (half-open sockets), else Deno's own.
for (const tls of [[], ["--tls-self-signed"]]) {
  Deno.test(`e2e: a client leaving during a connect delay frees its --max-connections slot${tls.length ? " (TLS configured)" : ""}`, async () => {
    await using server = await startServer([
      "--max-connections",
      "1",
      "--fault",
      "connect delay 500ms",
      ...tls,
    ]);
    const early = await RawClient.connect(server.port);
    await early.close(); // gone before the greeting
    await new Promise((r) => setTimeout(r, 700));
    const next = await RawClient.connect(server.port);
    try {
      const greeting = await next.readReply(5000);
      assert.equal(greeting.code, 220, "the slot was released, not 421 too many connections");
    } finally {
      await next.close();
    }
  });
}

Deno.test("e2e: a FIN instead of the TLS handshake after STARTTLS closes the connection at once", async () => {
  await using server = await startServer(["--tls-self-signed"]);
  const client = await RawClient.connect(server.port);
  try {
    await client.readReply();
    await client.command("EHLO t");
    assert.equal((await client.command("STARTTLS")).code, 220);
    await client.closeWrite();
    await client.expectClosed(5000); // not after the handshake timeout
  } finally {
    await client.close();
  }
});

Deno.test("e2e: a client that leaves right after the final dot leaves no .json", async () => {
  // The data-stage delay makes the commit happen after the client is gone.
  await using server = await startServer(["--fault", "data delay 500ms"]);
  const client = await RawClient.connect(server.port);
  await client.readReply();
  for (const line of ["EHLO t", "MAIL FROM:<a@example.com>", "RCPT TO:<b@example.com>"]) {
    assert.equal((await client.command(line)).code, 250);
  }
  assert.equal((await client.command("DATA")).code, 354);
  await client.send("Subject: gone\r\n\r\nbye\r\n.\r\n");
  await client.close();
  await server.waitForStderr(/connection closed/);
  await new Promise((r) => setTimeout(r, 800));
  const stored = [...Deno.readDirSync(server.spool)].map((e) => e.name);
  assert.deepEqual(stored.filter((n) => n.endsWith(".json")), [], "no 250 was sent");
  assert.deepEqual(stored.filter((n) => n.endsWith(".eml")), []);
});

Deno.test("e2e: replies to pipelined transactions flow while the client keeps sending", async () => {
  await using server = await startServer([]);
  const client = await RawClient.connect(server.port);
  try {
    await client.readReply();
    await client.command("EHLO t");
    const transaction = "MAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.com>\r\nBDAT 1 LAST\r\nx";
    const rounds = 200;
    await client.send(transaction.repeat(rounds));
    const replies = await client.readReplies(rounds * 3, 20_000);
    assert.ok(replies.every((r) => r.code === 250), "every MAIL, RCPT and BDAT got 250");
    const stored = await poll(`${rounds} stored messages`, 10_000, () => {
      const n = [...Deno.readDirSync(server.spool)].filter((e) => e.name.endsWith(".json")).length;
      return n === rounds ? n : undefined;
    });
    assert.equal(stored, rounds);
  } finally {
    await client.close();
  }
});

/** A whole session sent at once; the client then half-closes and reads every reply. */
async function halfClosedSession(port: number, afterDot: string): Promise<string[]> {
  const client = await RawClient.connect(port);
  try {
    await client.send(
      "EHLO t\r\nMAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.com>\r\nDATA\r\n" +
        "Subject: half\r\n\r\nclosed\r\n.\r\n" + afterDot,
    );
    await client.closeWrite();
    const codes: string[] = [];
    while (true) {
      const reply = await client.readReply(5000).catch(() => null);
      if (reply === null) break;
      codes.push(reply.raw.split("\r\n").at(-2) ?? reply.raw);
    }
    assert.ok(client.closed, "the server closed once everything was answered");
    return codes;
  } finally {
    await client.close();
  }
}

for (const delay of [[], ["--fault", "data delay 300ms"]]) {
  Deno.test(`e2e: a client that half-closes after pipelining a session gets every reply${delay.length ? " (slow commit)" : ""}`, async () => {
    await using server = await startServer(delay);
    const lines = await halfClosedSession(server.port, "QUIT\r\n");
    assert.equal(lines.length, 7, lines.join(" | "));
    assert.match(lines[5]!, /^250 2\.0\.0 Ok: queued as /);
    assert.match(lines[6]!, /^221 2\.0\.0/);
    const stored = await poll("the stored message", 5000, () => {
      const names = [...Deno.readDirSync(server.spool)].map((e) => e.name);
      return names.some((n) => n.endsWith(".json")) ? names : undefined;
    });
    assert.equal(stored.filter((n) => n.endsWith(".json")).length, 1);
  });
}

Deno.test("e2e: a half-close with nothing sent after the final dot counts as leaving: no .json", async () => {
  // A FIN reads the same whether the client half-closed or left (README, "half-close").
  await using server = await startServer(["--fault", "data delay 300ms"]);
  const lines = await halfClosedSession(server.port, "");
  assert.match(lines.at(-1)!, /^354 /);
  await server.waitForStderr(/connection closed/);
  await new Promise((r) => setTimeout(r, 600));
  const names = [...Deno.readDirSync(server.spool)].map((e) => e.name);
  assert.deepEqual(names.filter((n) => n.endsWith(".json") || n.endsWith(".eml")), []);
});

Deno.test("e2e: clients that reset before they are accepted do not hold back the next greeting", async () => {
  await using server = await startServer([]);
  // SO_LINGER 0: close sends RST, as port scanners and TCP health checks do.
  // The accept loop used to pause 50 ms after each: 200 cost 10 s.
  const resets = await new Deno.Command("python3", {
    args: [
      "-c",
      `import socket, struct
for _ in range(200):
    s = socket.create_connection(("127.0.0.1", ${server.port}))
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    s.close()`,
    ],
  }).output();
  assert.equal(resets.code, 0, new TextDecoder().decode(resets.stderr));
  const client = await RawClient.connect(server.port);
  try {
    assert.equal((await client.readReply(4000)).code, 220);
  } finally {
    await client.close();
  }
});

const PRLIMIT = Deno.build.os === "windows" ? null : findOnPath("prlimit");

// Deno's own listener only: Deno 2.9.6's node:net (the listener with TLS
// configured) retries a failed accept without telling (README).
Deno.test({
  name: "e2e: out of descriptors, the server says so in its log and serves again after",
  ignore: PRLIMIT === null,
  fn: async () => {
    await using server = await startServer([], { wrapper: [PRLIMIT!, "--nofile=60"] });
    const clients: RawClient[] = [];
    try {
      // More than the descriptors left: the rest wait in the backlog.
      for (let i = 0; i < 70; i++) clients.push(await RawClient.connect(server.port));
      await server.waitForStderr(/cannot accept connections: .*Too many open files/);
      for (const c of clients.splice(0)) await c.close();
      const after = await RawClient.connect(server.port);
      clients.push(after);
      assert.equal((await after.readReply(5000)).code, 220);
    } finally {
      for (const c of clients) await c.close();
    }
  },
});
