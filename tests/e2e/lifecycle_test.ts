/**
 * The process around the protocol (SPEC §2–§4): ready file, port 0, signals
 * and draining, start-up recovery of the spool, --exit-after, and several
 * servers sharing one spool.
 */

import assert from "node:assert/strict";
import {
  assertStored,
  ehloed,
  mainArgs,
  poll,
  readReadyFile,
  readSpool,
  READY_TIMEOUT_MS,
  runCli,
  started,
  startServer,
} from "../helpers/launcher.ts";
import { findOnPath } from "../helpers/clients.ts";
import { queuedId, RawClient, stuff, transaction } from "../helpers/raw_client.ts";

/** An id of the form the spool writes (26 Crockford base32 characters). */
const ORPHAN_ID = "01JBZ7Y0000000000000000000";

Deno.test("e2e: the ready file names the pid and every bound listener", async () => {
  await using server = await started(["--listen", "127.0.0.1:0", "--listen", "127.0.0.1:0"]);
  const ready = JSON.parse(await Deno.readTextFile(server.readyFile));
  assert.deepEqual(Object.keys(ready).sort(), ["listeners", "pid"]);
  assert.equal(ready.pid, server.pid);
  assert.equal(ready.listeners.length, 2);
  for (const l of ready.listeners) {
    assert.equal(l.address, "127.0.0.1");
    assert.equal(l.tls, false);
    assert.ok(Number.isInteger(l.port) && l.port > 0 && l.port < 65536, `port ${l.port}`);
  }
  assert.notEqual(ready.listeners[0].port, ready.listeners[1].port);
  for (const l of ready.listeners) {
    await using c = await RawClient.connect(l.port, l.address);
    assert.equal((await c.readReply()).code, 220);
  }
});

Deno.test("e2e: port 0 picks a free port, which is logged", async () => {
  await using server = await started();
  assert.ok(server.port > 0);
  await server.waitForStderr(new RegExp(`\\b${server.port}\\b`));
  await using c = await server.connect();
  const greeting = await c.readReply();
  assert.match(greeting.raw, /^220 /);
});

/** Sends `signal` to a server with one idle session: 421 4.3.2, closed, exit 0. Returns its stderr. */
async function drainsIdleOn(signal: Deno.Signal): Promise<string> {
  const s = await ehloed();
  await using _ = s;
  s.server.signal(signal);
  assert.match((await s.client.readReply()).raw, /^421 4\.3\.2/);
  await s.client.expectClosed();
  assert.equal(await s.server.exited(), 0);
  return s.server.stderr();
}

Deno.test("e2e: SIGTERM answers an idle session 421 4.3.2 and exits 0", async () => {
  const stderr = await drainsIdleOn("SIGTERM");
  assert.doesNotMatch(stderr, /^\s+at /m, "no stack trace on a clean shutdown");
});

Deno.test({
  name:
    "e2e: SIGHUP (the terminal closed) drains like SIGTERM: 421 4.3.2 to an idle session, exit 0",
  ignore: Deno.build.os === "windows",
  fn: async () => {
    assert.match(await drainsIdleOn("SIGHUP"), /signal received: draining/);
  },
});

Deno.test({
  name: "e2e: started under nohup, the server leaves SIGHUP ignored and keeps serving",
  ignore: Deno.build.os !== "linux" || !findOnPath("nohup"),
  fn: async () => {
    await using server = await startServer([], { wrapper: [findOnPath("nohup")!] });
    server.signal("SIGHUP");
    await new Promise((r) => setTimeout(r, 500));
    assert.equal(server.exit, null, "SIGHUP stopped a server started under nohup");
    await using c = await server.connect();
    assert.equal((await c.readReply()).code, 220);
  },
});

const prlimit = Deno.build.os === "linux" ? findOnPath("prlimit") : null;

/** A greeted server whose file-size limit (`ulimit -f`, set with prlimit) is `bytes`. */
async function limitedTo(bytes: number): Promise<Awaited<ReturnType<typeof ehloed>>> {
  const s = await ehloed();
  const set = await new Deno.Command(prlimit!, {
    args: ["--pid", String(s.server.pid), `--fsize=${bytes}:${bytes}`],
  }).output();
  if (set.code !== 0) {
    await s[Symbol.asyncDispose]();
    throw new Error(`prlimit failed: ${new TextDecoder().decode(set.stderr)}`);
  }
  return s;
}

/** Under the limit, the server still stores: a small message gets its 250 and is the only one. */
async function stillStores(s: Awaited<ReturnType<typeof ehloed>>): Promise<void> {
  const small = stuff("Subject: s\r\n\r\nfits\r\n");
  queuedId(await transaction(s.client, "a@example.com", ["b@example.com"], small));
  assert.equal(s.server.exit, null);
  assert.deepEqual((await readSpool(s.server.spool)).map((m) => m.meta.size), [20]);
}

Deno.test({
  name: "e2e: a file-size limit (ulimit -f) gets 452 4.3.1 for the message past it, not SIGXFSZ",
  ignore: !prlimit,
  fn: async () => {
    await using s = await limitedTo(1024 * 1024);
    const c = s.client;
    const big = "Subject: big\r\n\r\n" + ("y".repeat(998) + "\r\n").repeat(2 * 1024);
    const full = await transaction(c, "a@example.com", ["b@example.com"], stuff(big));
    assert.match(full.raw, /^452 4\.3\.1 /);
    await stillStores(s);
  },
});

Deno.test({
  name: "e2e: BDAT with the spool full is told 452 4.3.1 at the chunk that hit it, not at LAST",
  ignore: !prlimit,
  fn: async () => {
    await using s = await limitedTo(1024 * 1024);
    const c = s.client;
    assert.equal((await c.command("MAIL FROM:<a@example.com>")).code, 250);
    assert.equal((await c.command("RCPT TO:<b@example.com>")).code, 250);
    const chunk = "x".repeat(600 * 1024);
    // Pipelined as RFC 3030 allows: the client learns of the failure at chunk 2.
    await c.send(`BDAT ${chunk.length}\r\n${chunk}BDAT ${chunk.length}\r\n${chunk}`);
    await c.send(`BDAT ${chunk.length}\r\n${chunk}BDAT 1 LAST\r\nx`);
    const codes = (await c.readReplies(4)).map((r) => r.raw.trimEnd());
    assert.match(codes[0]!, /^250 2\.0\.0 Ok: 614400 octets received$/);
    assert.match(codes[1]!, /^452 4\.3\.1 /);
    assert.match(codes[2]!, /^503 5\.5\.1 /, "later chunks are discarded (RFC 3030 §2)");
    assert.match(codes[3]!, /^503 5\.5\.1 /);
    assert.equal((await c.command("RSET")).code, 250);
    await stillStores(s);
  },
});

Deno.test("e2e: SIGTERM during DATA lets the transfer finish with 250, then exits 0", async () => {
  const s = await ehloed();
  await using _ = s;
  const c = s.client;
  assert.equal((await c.command("MAIL FROM:<a@example.com>")).code, 250);
  assert.equal((await c.command("RCPT TO:<b@example.com>")).code, 250);
  assert.equal((await c.command("DATA")).code, 354);
  const message = "Subject: in flight\r\n\r\n" + "line\r\n".repeat(100);
  await c.send(message.slice(0, 40));
  s.server.signal("SIGTERM");
  // Give the signal time to arrive: the drain must wait for this transfer.
  await new Promise((r) => setTimeout(r, 500));
  assert.equal(s.server.exit, null, "exited while a transfer was in flight");
  await c.send(message.slice(40) + ".\r\n");
  const id = queuedId(await c.readReply());
  assert.equal(await s.server.exited(), 0);
  const msgs = await readSpool(s.server.spool);
  assert.deepEqual(msgs.map((m) => m.id), [id]);
  await assertStored(msgs[0]!, message);
});

Deno.test("e2e: a transaction still open at the 10 s drain deadline gets 421 4.3.2, then exit 0", async () => {
  const s = await ehloed();
  await using _ = s;
  const c = s.client;
  assert.equal((await c.command("MAIL FROM:<a@example.com>")).code, 250);
  const signalled = Date.now();
  s.server.signal("SIGTERM");
  // RFC 5321 §3.8: told before the channel closes, never dropped without a word.
  assert.match((await c.readReply(15_000)).raw, /^421 4\.3\.2/);
  assert.ok(Date.now() - signalled >= 9_000, "the transaction had its 10 s");
  await c.expectClosed();
  assert.equal(await s.server.exited(), 0);
});

Deno.test("e2e: start-up clears .tmp/ and orphan .eml, leaves other files", async () => {
  const dir = await Deno.makeTempDir({ prefix: "smtpd-e2e-recover-" });
  try {
    const spool = `${dir}/spool`;
    await Deno.mkdir(`${spool}/.tmp`, { recursive: true });
    await Deno.writeTextFile(`${spool}/.tmp/x`, "partial");
    await Deno.writeTextFile(`${spool}/${ORPHAN_ID}.eml`, "orphan\r\n");
    await Deno.writeTextFile(`${spool}/notes.txt`, "mine");
    // A complete message from an earlier run survives.
    {
      await using first = await started(["--spool", spool]);
      await using c = await first.connect();
      assert.equal((await c.readReply()).code, 220);
      assert.equal((await c.command("EHLO client.example")).code, 250);
      queuedId(await transaction(c, "a@example.com", ["b@example.com"], stuff("kept\r\n")));
      assert.equal(await first.stop(), 0);
    }
    await Deno.writeTextFile(`${spool}/.tmp/y`, "partial");
    await Deno.writeTextFile(`${spool}/${ORPHAN_ID}.eml`, "orphan\r\n");
    await using server = await started(["--spool", spool]);
    const names: string[] = [];
    for await (const e of Deno.readDir(spool)) names.push(e.name);
    assert.ok(!names.includes(`${ORPHAN_ID}.eml`), `orphan still there: ${names}`);
    assert.ok(names.includes("notes.txt"), `notes.txt removed: ${names}`);
    assert.equal(await Deno.readTextFile(`${spool}/notes.txt`), "mine");
    const tmp: string[] = [];
    try {
      for await (const e of Deno.readDir(`${spool}/.tmp`)) tmp.push(e.name);
    } catch (e: unknown) {
      if (!(e instanceof Deno.errors.NotFound)) throw e;
    }
    // The running server may keep its own work files there; the planted ones must be gone.
    assert.deepEqual(tmp.filter((n) => n === "x" || n === "y"), [], `.tmp/ not cleared: ${tmp}`);
    const msgs = await server.messages();
    assert.equal(msgs.length, 1);
    await assertStored(msgs[0]!, "kept\r\n");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("e2e: --exit-after 2 exits 0 after the second stored message", async () => {
  const s = await ehloed(["--exit-after", "2"]);
  await using _ = s;
  queuedId(await transaction(s.client, "a@example.com", ["b@example.com"], stuff("one\r\n")));
  assert.equal(s.server.exit, null);
  queuedId(await transaction(s.client, "a@example.com", ["b@example.com"], stuff("two\r\n")));
  assert.equal(await s.server.exited(15_000), 0);
  const msgs = await readSpool(s.server.spool);
  assert.equal(msgs.length, 2);
  await assertStored(msgs[0]!, "one\r\n");
  await assertStored(msgs[1]!, "two\r\n");
});

Deno.test("e2e: --exit-after 1 starts no transaction pipelined behind the one that ended it", async () => {
  const s = await ehloed(["--exit-after", "1"]);
  await using _ = s;
  // Twenty transactions in one write: only the first may be stored.
  await s.client.send(
    "MAIL FROM:<a@x.example>\r\nRCPT TO:<b@x.example>\r\nBDAT 5 LAST\r\nhello".repeat(20),
  );
  const replies = [];
  for (;;) {
    const reply = await s.client.readReply();
    replies.push(reply.raw.trimEnd());
    if (reply.code === 421) break;
  }
  assert.equal(replies.length, 4, replies.join(" | "));
  assert.match(replies[2]!, /^250 2\.0\.0 Ok: queued as /);
  assert.match(replies[3]!, /^421 4\.3\.2 /);
  await s.client.expectClosed();
  assert.equal(await s.server.exited(15_000), 0);
  assert.equal((await readSpool(s.server.spool)).length, 1);
});

Deno.test("e2e: SIGTERM during a transaction: it finishes, then 421 instead of the pipelined next MAIL", async () => {
  const s = await ehloed();
  await using _ = s;
  await s.client.send("MAIL FROM:<a@x.example>\r\n");
  assert.equal((await s.client.readReply()).code, 250);
  s.server.signal("SIGTERM");
  await s.server.waitForStderr(/shutting down/);
  await s.client.send("RCPT TO:<b@x.example>\r\nBDAT 3 LAST\r\nabcMAIL FROM:<c@x.example>\r\n");
  assert.equal((await s.client.readReply()).code, 250);
  assert.match((await s.client.readReply()).raw, /^250 2\.0\.0 Ok: queued as /);
  assert.match((await s.client.readReply()).raw, /^421 4\.3\.2 /);
  await s.client.expectClosed();
  assert.equal(await s.server.exited(15_000), 0);
  assert.equal((await readSpool(s.server.spool)).length, 1);
});

Deno.test("e2e: two servers sharing one spool never reuse an id", async () => {
  await using a = await started();
  await using b = await started(["--spool", a.spool]);
  await using ca = await a.connect();
  await using cb = await b.connect();
  for (const c of [ca, cb]) {
    assert.equal((await c.readReply()).code, 220);
    assert.equal((await c.command("EHLO client.example")).code, 250);
  }
  const ids: string[] = [];
  for (let i = 0; i < 10; i++) {
    const c = i % 2 === 0 ? ca : cb;
    ids.push(
      queuedId(await transaction(c, "a@example.com", ["b@example.com"], stuff(`n${i}\r\n`))),
    );
  }
  assert.equal(new Set(ids).size, 10, `duplicate ids: ${ids}`);
  const msgs = await a.messages();
  assert.deepEqual(msgs.map((m) => m.id).sort(), [...ids].sort());
  for (const m of msgs) {
    const i = ids.indexOf(m.id);
    await assertStored(m, `n${i}\r\n`);
  }
  // Ids sort in order of receipt, also across the two servers' clocks.
  assert.deepEqual([...ids].sort(), ids);
});

Deno.test("e2e: a stale ready file is removed at start-up, also when start-up then fails", async () => {
  await using running = await started();
  const dir = await Deno.makeTempDir({ prefix: "smtpd-e2e-stale-" });
  try {
    const ready = `${dir}/ready.json`;
    const stale = JSON.stringify({
      pid: 1,
      listeners: [{ address: "127.0.0.1", port: running.port, tls: false }],
    });
    const cases: [string[], number][] = [
      [["--listen", `127.0.0.1:${running.port}`], 1], // port in use
      [["--listen", "127.0.0.1:0", "--fault", "nonsense"], 2], // refused by serve()
    ];
    for (const [args, code] of cases) {
      await Deno.writeTextFile(ready, stale);
      const r = await runCli([...args, "--spool", `${dir}/spool`, "--ready-file", ready]);
      assert.equal(r.code, code, r.stderr);
      await assert.rejects(Deno.stat(ready), Deno.errors.NotFound, `${args}: stale file kept`);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("e2e: the ready file and the listening line give the address bound, not the name", async (t) => {
  for (const extra of [[], ["--tls-self-signed"]]) {
    await t.step(extra.length === 0 ? "native listener" : "node:net listener (TLS)", async () => {
      await using server = await started(["--listen", "localhost:0", ...extra]);
      const [l] = server.ready.listeners;
      assert.ok(l);
      assert.match(l.address, /^(127\.0\.0\.1|::1)$/, "numeric, as bound");
      const line = await server.waitForStderr(/listening .*/);
      const bound = l.address.includes(":") ? `[${l.address}]:${l.port}` : `${l.address}:${l.port}`;
      assert.ok(line[0].includes(bound), line[0]);
      assert.ok(!line[0].includes("localhost"), line[0]);
      await using c = await RawClient.connect(l.port, l.address);
      assert.equal((await c.readReply()).code, 220);
    });
  }
});

Deno.test({
  name: "e2e: SIGTERM while the server starts is held: it starts, drains and exits 0",
  // A FIFO holds start-up at a known point; /proc tells when the server waits on it.
  ignore: Deno.build.os !== "linux" || findOnPath("mkfifo") === null,
}, async () => {
  const dir = await Deno.makeTempDir({ prefix: "smtpd-e2e-" });
  const fifo = `${dir}/auth.fifo`;
  try {
    assert.equal((await new Deno.Command("mkfifo", { args: [fifo] }).output()).code, 0);
    const child = new Deno.Command(Deno.execPath(), {
      args: mainArgs(["--listen", "127.0.0.1:0", "--spool", `${dir}/spool`, "--auth-file", fifo]),
      stdin: "null",
      stdout: "null",
      stderr: "piped",
    }).spawn();
    const stderr = new Response(child.stderr).text();
    // Reading the auth file blocks in open(2) until a writer comes: the server is starting.
    await poll("the server to open its auth file", 20_000, async () => {
      for await (const task of Deno.readDir(`/proc/${child.pid}/task`)) {
        const wchan = await Deno.readTextFile(`/proc/${child.pid}/task/${task.name}/wchan`)
          .catch(() => "");
        if (wchan.trim() === "wait_for_partner") return true;
      }
      return undefined;
    }).catch((e: unknown) => {
      child.kill("SIGKILL");
      throw e;
    });
    child.kill("SIGTERM");
    await new Promise((resolve) => setTimeout(resolve, 200));
    // From a child with a time limit: with no reader left, opening a FIFO to write blocks.
    await new Deno.Command("sh", {
      args: ["-c", 'printf "bob:secret\\n" > "$1"', "sh", fifo],
      signal: AbortSignal.timeout(10_000),
    }).output();
    const status = await child.status;
    const log = await stderr;
    assert.equal(status.code, 0, log);
    assert.match(log, /listening .*\n.*signal received: draining/);
    assert.match(log, /stopped stored=0/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("e2e: a stderr pipe nobody reads neither stops serving nor the SIGTERM exit", async () => {
  // A test fixture's Popen(stderr=PIPE) that never reads: once the pipe
  // (64 KiB) was full, a synchronous log write held the whole server.
  const dir = await Deno.makeTempDir({ prefix: "smtpd-e2e-" });
  const child = new Deno.Command(Deno.execPath(), {
    args: mainArgs([
      "--listen",
      "127.0.0.1:0",
      "--spool",
      `${dir}/spool`,
      "--ready-file",
      `${dir}/ready.json`,
      "--log-level",
      "debug",
    ]),
    stdin: "null",
    stdout: "null",
    stderr: "piped", // and never read
  }).spawn();
  try {
    const ready = await poll(
      "the ready file",
      READY_TIMEOUT_MS,
      () => readReadyFile(`${dir}/ready.json`),
    );
    const port = ready.listeners[0]!.port;
    // Each session logs a dozen debug lines, about 2 KiB: 100 sessions fill the pipe many times.
    for (let i = 0; i < 100; i++) {
      const c = await RawClient.connect(port);
      try {
        assert.equal((await c.readReply(5000)).code, 220, `session ${i}`);
        await c.send("NOOP\r\nNOOP\r\nNOOP\r\nNOOP\r\nQUIT\r\n");
        assert.equal((await c.readReplies(5, 5000)).at(-1)!.code, 221);
      } finally {
        await c.close();
      }
    }
    child.kill("SIGTERM");
    const exited = await Promise.race([
      child.status,
      new Promise<null>((r) => setTimeout(() => r(null), 8000)),
    ]);
    assert.ok(exited !== null, "no exit within 8 s of SIGTERM");
    assert.equal(exited.code, 0);
  } finally {
    try {
      child.kill("SIGKILL");
    } catch {
      // Exited already.
    }
    await child.status;
    await child.stderr.cancel();
    await Deno.remove(dir, { recursive: true });
  }
});
