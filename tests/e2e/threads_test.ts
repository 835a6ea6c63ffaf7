/**
 * The second serving thread (lib/server/threads.ts): on Linux the server
 * runs two threads on the same port, and what SPEC counts per server is
 * counted across both. Elsewhere (no SO_REUSEPORT) these tests skip.
 *
 * @module
 */

import assert from "node:assert/strict";
import { assertStored, started } from "../helpers/launcher.ts";
import { queuedId, RawClient, stuff, transaction } from "../helpers/raw_client.ts";

const LINUX = Deno.build.os === "linux";

/** Connections, each sending `perClient` messages of `body`; returns the queued IDs. */
async function sendFrom(
  port: number,
  clients: number,
  perClient: number,
  body: string,
): Promise<string[]> {
  const sessions = Array.from({ length: clients }, async (_, c) => {
    await using client = await RawClient.connect(port);
    assert.equal((await client.readReply()).code, 220);
    assert.equal((await client.command("EHLO threads.example")).code, 250);
    const ids: string[] = [];
    for (let m = 0; m < perClient; m++) {
      const message = `Subject: ${c}.${m}\r\n\r\n${body}`;
      ids.push(
        queuedId(await transaction(client, "a@example.com", ["b@example.com"], stuff(message))),
      );
    }
    assert.equal((await client.command("QUIT")).code, 221);
    return ids;
  });
  return (await Promise.all(sessions)).flat();
}

Deno.test({
  name: "e2e threads: 30 sessions spread over both threads, one ID sequence, one stored count",
  ignore: !LINUX,
  fn: async () => {
    await using server = await started(["--threads", "2"]);
    await server.waitForStderr(/listening .*threads=2/);
    const ids = await sendFrom(server.port, 30, 2, "hello\r\n");
    assert.equal(new Set(ids).size, 60);
    const stored = await server.waitForMessages(60);
    assert.deepEqual(stored.map((m) => m.id).sort(), [...ids].sort());
    assert.equal(await server.stop(), 0);
    const log = server.stderr();
    // 30 connections all on one thread: probability 2^-29.
    assert.match(log, /connection opened .*thread=1/);
    assert.match(log, /connection opened .*thread=2/);
    assert.match(log, /stopped stored=60\b/);
  },
});

Deno.test({
  name: "e2e threads: by default two with --no-fsync (two or more CPUs), one with fsync on",
  ignore: !LINUX,
  fn: async () => {
    const two = navigator.hardwareConcurrency >= 2 ? 2 : 1;
    const cases: [string[], number][] = [
      [["--no-fsync"], two],
      [[], 1],
      [["--no-fsync", "--threads", "1"], 1],
    ];
    for (const [args, threads] of cases) {
      await using server = await started(args);
      await server.waitForStderr(new RegExp(`listening .*threads=${threads}\\b`));
      await sendFrom(server.port, 4, 1, "hello\r\n");
      assert.equal((await server.waitForMessages(4)).length, 4);
      assert.equal(await server.stop(), 0);
    }
  },
});

Deno.test({
  name: "e2e threads: --max-connections counts both threads' connections",
  ignore: !LINUX,
  fn: async () => {
    await using server = await started(["--threads", "2", "--max-connections", "5"]);
    await server.waitForStderr(/threads=2/);
    const clients = await Promise.all(
      Array.from({ length: 12 }, () => RawClient.connect(server.port)),
    );
    try {
      const greetings = await Promise.all(clients.map(async (c) => (await c.readReply()).code));
      assert.equal(greetings.filter((code) => code === 220).length, 5, String(greetings));
      assert.equal(greetings.filter((code) => code === 421).length, 7, String(greetings));
    } finally {
      await Promise.all(clients.map((c) => c.close()));
    }
    const numbers = [...server.stderr().matchAll(/connection opened conn=(\d+)/g)].map((m) => m[1]);
    assert.equal(new Set(numbers).size, numbers.length, "connection numbers are unique");
  },
});

Deno.test({
  name: "e2e threads: 3 MiB messages on both threads are hashed right (each hashes the other's)",
  ignore: !LINUX,
  fn: async () => {
    await using server = await started(["--threads", "2"]);
    await server.waitForStderr(/threads=2/);
    const line = "0123456789".repeat(7) + "\r\n";
    const body = line.repeat(Math.ceil((3 << 20) / line.length));
    await sendFrom(server.port, 8, 1, body);
    const stored = await server.waitForMessages(8);
    for (const m of stored) {
      await assertStored(m, `Subject: ${m.meta.headers.subject}\r\n\r\n${body}`);
    }
    assert.equal(await server.stop(), 0);
    assert.doesNotMatch(server.stderr(), /hash worker unavailable|second thread/);
  },
});
