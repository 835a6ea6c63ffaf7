import assert from "node:assert/strict";
import { setup } from "../../../lib/server/setup.ts";
import type { ServeOptions } from "../../../lib/server/options.ts";
import {
  ConnectionCounters,
  helperObstacle,
  newSharedState,
  threadsWanted,
} from "../../../lib/server/threads.ts";
import { reusePortAvailable } from "../../../lib/net/listener.ts";

Deno.test("ConnectionCounters: two views of one state count together", () => {
  const shared = newSharedState();
  const a = new ConnectionCounters(shared, 0);
  const b = new ConnectionCounters(shared, 1);
  assert.equal(a.admit(), 1);
  assert.equal(b.admit(), 2);
  assert.equal(a.admit(), 3);
  b.release();
  assert.equal(b.admit(), 3);
  assert.deepEqual([a.nextNumber(), b.nextNumber(), a.nextNumber()], [1, 2, 3]);
  // A helper that died: its connections no longer count, the primary's do.
  assert.equal(b.admit(), 4);
  ConnectionCounters.forgetHelper(shared);
  assert.equal(a.admit(), 3);
});

async function obstacle(options: ServeOptions): Promise<string | null> {
  const all: ServeOptions = { threads: 2, listen: ["127.0.0.1:0"], ...options };
  return helperObstacle(all, await setup(all));
}

Deno.test("helperObstacle: features with more shared state keep one thread", async () => {
  assert.equal(await obstacle({ threads: 1 }), "one thread asked for");
  assert.equal(await obstacle({ threads: undefined! }), "one thread by default");
  assert.equal(await obstacle({ tlsSelfSigned: true, hostname: "localhost" }), "TLS");
  assert.equal(await obstacle({ exitAfter: 3 }), "--exit-after");
  assert.equal(await obstacle({ faults: ["data#3 451 4.3.0 Later"] }), "--fault");
  assert.equal(await obstacle({ onMessageCommand: "true" }), "--on-message");
  assert.equal(await obstacle({ onMessage: () => {} }), "callbacks");
  assert.equal(await obstacle({ onConnect: () => true }), "callbacks");
});

Deno.test("helperObstacle: a plain configuration gets the second thread where SO_REUSEPORT is", async () => {
  const expected = reusePortAvailable() ? null : "no SO_REUSEPORT (Linux and --unstable-net only)";
  assert.equal(await obstacle({}), expected);
  assert.equal(await obstacle({ maxConnections: 5, noFsync: true }), expected);
});

Deno.test("threadsWanted: two by default only with fsync off and two CPUs; a flag decides", () => {
  const cpus = navigator.hardwareConcurrency;
  assert.equal(threadsWanted({}), 1);
  assert.equal(threadsWanted({ noFsync: false }), 1);
  assert.equal(threadsWanted({ noFsync: true }), cpus >= 2 ? 2 : 1);
  assert.equal(threadsWanted({ noFsync: true, threads: 1 }), 1);
  assert.equal(threadsWanted({ threads: 2 }), 2);
});

Deno.test("helperObstacle: --no-fsync alone gets the second thread on two CPUs", async () => {
  const plain = reusePortAvailable() ? null : "no SO_REUSEPORT (Linux and --unstable-net only)";
  const expected = navigator.hardwareConcurrency >= 2 ? plain : "one thread by default";
  assert.equal(await obstacle({ threads: undefined!, noFsync: true }), expected);
});

Deno.test("reusePortAvailable: Linux under --unstable-net (as the test runner is)", () => {
  assert.equal(reusePortAvailable(), Deno.build.os === "linux" && "listenDatagram" in Deno);
});
