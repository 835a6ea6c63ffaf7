/**
 * `--fault` (SPEC §8): each stage and action as a client sees it, `#N`
 * counting since start-up, `~REGEX`, first matching rule wins, and a rule
 * that does not parse → exit 2 naming it. Every test checks what the spool
 * holds afterwards: a refused recipient only drops that recipient, a fault at
 * any other stage stores nothing.
 */

import assert from "node:assert/strict";
import {
  assertStored,
  readSpool,
  runCli,
  type ServerProc,
  startServer,
} from "../helpers/launcher.ts";
import { queuedId, type RawClient, stuff, transaction } from "../helpers/raw_client.ts";

async function ehlo(server: ServerProc, name = "client.example"): Promise<RawClient> {
  const c = await server.connect();
  assert.equal((await c.readReply()).code, 220);
  assert.equal((await c.command(`EHLO ${name}`)).code, 250);
  return c;
}

/** Names in the spool besides dot-directories: only complete `<id>.eml` + `<id>.json` pairs. */
async function spoolNames(spool: string): Promise<string[]> {
  const names: string[] = [];
  for await (const e of Deno.readDir(spool)) if (!e.name.startsWith(".")) names.push(e.name);
  return names.sort();
}

async function assertOnly(spool: string, ids: string[]): Promise<void> {
  assert.deepEqual(
    await spoolNames(spool),
    ids.flatMap((id) => [`${id}.eml`, `${id}.json`]).sort(),
  );
}

Deno.test("e2e faults: rcpt~^bounce@ refuses only that recipient; the others get the message", async () => {
  await using server = await startServer(["--fault", "rcpt~^bounce@ 550 5.1.1 No such user"]);
  await using c = await ehlo(server);
  const message = "Subject: partly bounced\r\n\r\nhello\r\n";
  assert.equal((await c.command("MAIL FROM:<app@example.com>")).code, 250);
  assert.match((await c.command("RCPT TO:<bob@example.com>")).raw, /^250 2\.1\.5/);
  assert.equal((await c.command("RCPT TO:<bounce@example.com>")).raw, "550 5.1.1 No such user\r\n");
  // Anchored: a bounce@ elsewhere in the address does not match.
  assert.match((await c.command("RCPT TO:<nobounce@example.com>")).raw, /^250 2\.1\.5/);
  assert.equal((await c.command("DATA")).code, 354);
  await c.send(stuff(message));
  const id = queuedId(await c.readReply());
  const [msg] = await readSpool(server.spool);
  assert.ok(msg);
  assert.equal(msg.id, id);
  await assertStored(msg, message);
  assert.deepEqual(msg.meta.rcptTo, ["bob@example.com", "nobounce@example.com"]);
  await assertOnly(server.spool, [id]);
});

Deno.test("e2e faults: data#3 fails only the third message (451, not stored); the fourth is stored", async () => {
  await using server = await startServer(["--fault", "data#3 451 4.3.0 Try again later"]);
  const ids: string[] = [];
  const msg = (n: number) => `Subject: number ${n}\r\n\r\nbody ${n}\r\n`;
  // Two connections: #N counts since start-up, not per session.
  {
    await using c = await ehlo(server);
    for (const n of [1, 2]) {
      ids.push(queuedId(await transaction(c, "a@example.com", ["b@example.com"], stuff(msg(n)))));
    }
  }
  await using c = await ehlo(server);
  const third = await transaction(c, "a@example.com", ["b@example.com"], stuff(msg(3)));
  assert.equal(third.raw, "451 4.3.0 Try again later\r\n");
  // The client retries: the 4th end-of-data is accepted.
  ids.push(queuedId(await transaction(c, "a@example.com", ["b@example.com"], stuff(msg(3)))));
  ids.push(queuedId(await transaction(c, "a@example.com", ["b@example.com"], stuff(msg(5)))));
  const stored = await readSpool(server.spool);
  assert.deepEqual(stored.map((m) => m.id), ids);
  await assertStored(stored[0]!, msg(1));
  await assertStored(stored[1]!, msg(2));
  await assertStored(stored[2]!, msg(3));
  await assertStored(stored[3]!, msg(5));
  await assertOnly(server.spool, ids);
  const leftovers: string[] = [];
  for await (const e of Deno.readDir(`${server.spool}/.tmp`)) {
    if (/\.(eml|json)$/.test(e.name)) leftovers.push(e.name);
  }
  assert.deepEqual(leftovers, [], "the failed message left no work file in .tmp/");
});

Deno.test("e2e faults: mail delay 2s delays the MAIL reply by at least 2 s, then carries on", async () => {
  await using server = await startServer(["--fault", "mail delay 2s"]);
  await using c = await ehlo(server);
  const started = Date.now();
  const reply = await c.command("MAIL FROM:<slow@example.com>");
  const took = Date.now() - started;
  assert.match(reply.raw, /^250 2\.1\.0/);
  assert.ok(took >= 2000, `MAIL answered after ${took} ms`);
  assert.ok(took < 8000, `MAIL answered after ${took} ms`);
  const rcptStart = Date.now();
  assert.equal((await c.command("RCPT TO:<b@example.com>")).code, 250);
  assert.ok(Date.now() - rcptStart < 1500, "only the mail stage is delayed");
  assert.equal((await c.command("DATA")).code, 354);
  const message = "Subject: slow\r\n\r\nx\r\n";
  await c.send(stuff(message));
  const id = queuedId(await c.readReply());
  const [msg] = await readSpool(server.spool);
  assert.ok(msg);
  assert.equal(msg.id, id);
  await assertStored(msg, message);
  assert.equal(msg.meta.mailFrom, "slow@example.com");
});

Deno.test("e2e faults: a connect delay longer than --timeout is served, then the greeting", async () => {
  await using server = await startServer(["--timeout", "1s", "--fault", "connect delay 1500ms"]);
  const started = Date.now();
  await using c = await server.connect();
  const greeting = await c.readReply();
  const took = Date.now() - started;
  assert.equal(greeting.code, 220, greeting.raw);
  assert.ok(took >= 1500, `greeted after ${took} ms`);
  assert.equal((await c.command("EHLO client.example")).code, 250);
});

Deno.test("e2e faults: connect 421 4.3.2 replaces the greeting and closes", async () => {
  await using server = await startServer(["--fault", "connect 421 4.3.2 Not now"]);
  for (let i = 0; i < 2; i++) {
    await using c = await server.connect();
    assert.equal((await c.readReply()).raw, "421 4.3.2 Not now\r\n");
    await c.expectClosed();
  }
  assert.deepEqual(await spoolNames(server.spool), []);
  // SPEC §5: a refused connection is opened and closed in the log too, with its duration.
  for (const n of [1, 2]) {
    await server.waitForStderr(new RegExp(`connection opened conn=${n} `));
    await server.waitForStderr(new RegExp(`connection closed conn=${n} .*reason=refused ms=\\d+`));
  }
});

Deno.test("e2e faults: connect 554 replaces the greeting, then 503 to every command until QUIT", async () => {
  await using server = await startServer(["--fault", "connect 554 5.7.1 Go away"]);
  await using c = await server.connect();
  assert.equal((await c.readReply()).raw, "554 5.7.1 Go away\r\n");
  // RFC 5321 §3.1: the server MUST wait for QUIT, and SHOULD answer 503 meanwhile.
  const refused = "503 5.5.1 Error: this session was refused at connect, only QUIT is accepted\r\n";
  assert.equal((await c.command("EHLO c.example")).raw, refused);
  assert.equal((await c.command("MAIL FROM:<a@example.com>")).raw, refused);
  assert.equal((await c.command("QUIT")).raw, "221 2.0.0 Bye\r\n");
  await c.expectClosed();
  assert.deepEqual(await spoolNames(server.spool), []);
});

Deno.test("e2e faults: connect#1 disconnect closes the first connection without a word; the second is served", async () => {
  await using server = await startServer(["--fault", "connect#1 disconnect"]);
  {
    await using c = await server.connect();
    await c.expectClosed();
    assert.equal(c.transcript, "", "no greeting, no reply");
  }
  await server.waitForStderr(/connection opened conn=1 /);
  await server.waitForStderr(/connection closed conn=1 .*reason=fault ms=\d+/);
  await using c = await ehlo(server);
  const message = "Subject: second\r\n\r\nx\r\n";
  queuedId(await transaction(c, "a@example.com", ["b@example.com"], stuff(message)));
  const [msg] = await readSpool(server.spool);
  assert.ok(msg);
  await assertStored(msg, message);
});

Deno.test("e2e faults: data disconnect drops the connection at end of data and stores nothing", async () => {
  await using server = await startServer(["--fault", "data~^cut@ disconnect"]);
  {
    await using c = await ehlo(server);
    assert.equal((await c.command("MAIL FROM:<cut@example.com>")).code, 250);
    assert.equal((await c.command("RCPT TO:<b@example.com>")).code, 250);
    assert.equal((await c.command("DATA")).code, 354);
    const before = c.transcript.length;
    await c.send(stuff("Subject: never\r\n\r\nx\r\n"));
    await c.expectClosed();
    assert.equal(c.transcript.length, before, "closed without a reply");
  }
  assert.deepEqual(await spoolNames(server.spool), [], "nothing stored");
  // Another sender on a new connection is not affected.
  await using c = await ehlo(server);
  const message = "Subject: kept\r\n\r\nx\r\n";
  const id = queuedId(await transaction(c, "ok@example.com", ["b@example.com"], stuff(message)));
  const [msg] = await readSpool(server.spool);
  assert.ok(msg);
  await assertStored(msg, message);
  await assertOnly(server.spool, [id]);
});

Deno.test("e2e faults: a disconnect fault still sends the replies to the commands pipelined before it", async () => {
  await using server = await startServer(["--fault", "rcpt~^cut@ disconnect"]);
  {
    await using c = await server.connect();
    assert.equal((await c.readReply()).code, 220);
    await c.send(
      "EHLO client.example\r\nNOOP\r\nMAIL FROM:<a@example.com>\r\n" +
        "RCPT TO:<ok@example.com>\r\nRCPT TO:<cut@example.com>\r\nRSET\r\n",
    );
    assert.deepEqual(
      [await c.readReply(), await c.readReply(), await c.readReply(), await c.readReply()].map(
        (r) => r.code,
      ),
      [250, 250, 250, 250],
      "EHLO, NOOP, MAIL and the first RCPT are answered",
    );
    await c.expectClosed(); // fails on any byte after those four replies
  }
  await server.waitForStderr(/connection closed conn=1 .*reason="?disconnect fault"? ms=\d+/);
  assert.deepEqual(await spoolNames(server.spool), [], "nothing stored");
});

Deno.test("e2e faults: helo~REGEX refuses that HELO name only", async () => {
  await using server = await startServer(["--fault", "helo~^bad\\. 554 5.7.1 Go away"]);
  await using c = await server.connect();
  await c.readReply();
  assert.equal((await c.command("EHLO bad.example")).raw, "554 5.7.1 Go away\r\n");
  assert.equal((await c.command("HELO bad.example")).raw, "554 5.7.1 Go away\r\n");
  // Without a successful HELO/EHLO, MAIL is out of order.
  assert.match((await c.command("MAIL FROM:<a@example.com>")).raw, /^503 5\.5\.1/);
  assert.equal((await c.command("EHLO good.example")).code, 250);
  const message = "Subject: helo\r\n\r\nx\r\n";
  queuedId(await transaction(c, "a@example.com", ["b@example.com"], stuff(message)));
  const [msg] = await readSpool(server.spool);
  assert.ok(msg);
  await assertStored(msg, message);
  assert.equal(msg.meta.helo, "good.example");
});

Deno.test("e2e faults: auth~^locked$ refuses that user only", async () => {
  await using server = await startServer(["--fault", "auth~^locked$ 535 5.7.8 Account locked"]);
  await using c = await ehlo(server);
  assert.equal(
    (await c.command(`AUTH PLAIN ${btoa("\0locked\0pw")}`)).raw,
    "535 5.7.8 Account locked\r\n",
  );
  assert.match((await c.command(`AUTH PLAIN ${btoa("\0lockedout\0pw")}`)).raw, /^235 2\.7\.0/);
  const message = "Subject: auth\r\n\r\nx\r\n";
  queuedId(await transaction(c, "a@example.com", ["b@example.com"], stuff(message)));
  const [msg] = await readSpool(server.spool);
  assert.ok(msg);
  await assertStored(msg, message);
  assert.deepEqual(msg.meta.auth, { mechanism: "PLAIN", username: "lockedout" });
});

Deno.test("e2e faults: a 421 fault at mail closes the connection after the reply", async () => {
  await using server = await startServer(["--fault", "mail 421 4.3.2 Shutting down"]);
  await using c = await ehlo(server);
  assert.equal((await c.command("MAIL FROM:<a@example.com>")).raw, "421 4.3.2 Shutting down\r\n");
  await c.expectClosed();
  assert.deepEqual(await spoolNames(server.spool), []);
});

Deno.test("e2e faults: the first matching rule wins", async () => {
  await using server = await startServer([
    "--fault",
    "rcpt~^x@ 450 4.2.1 First rule",
    "--fault",
    "rcpt~@example\\.com$ 550 5.1.1 Second rule",
    "--fault",
    "rcpt~^x@ 551 5.1.6 Never reached",
  ]);
  await using c = await ehlo(server);
  assert.equal((await c.command("MAIL FROM:<a@example.org>")).code, 250);
  assert.equal((await c.command("RCPT TO:<x@example.com>")).raw, "450 4.2.1 First rule\r\n");
  assert.equal((await c.command("RCPT TO:<y@example.com>")).raw, "550 5.1.1 Second rule\r\n");
  assert.match((await c.command("RCPT TO:<z@example.org>")).raw, /^250 2\.1\.5/);
  assert.equal((await c.command("DATA")).code, 354);
  const message = "Subject: rules\r\n\r\nx\r\n";
  await c.send(stuff(message));
  queuedId(await c.readReply());
  const [msg] = await readSpool(server.spool);
  assert.ok(msg);
  await assertStored(msg, message);
  assert.deepEqual(msg.meta.rcptTo, ["z@example.org"]);
});

Deno.test("e2e faults: a rule that does not parse is a usage error (exit 2) naming the rule", async () => {
  const bad = [
    "nowhere 550 5.1.1 x",
    "rcpt",
    "rcpt 250 2.0.0 Ok",
    "data#0 451 4.3.0 x",
    "mail delay soon",
    "rcpt~( 550 5.1.1 x",
    "rcpt 550 4.1.1 class mismatch",
    "connect disconnect now",
  ];
  for (const rule of bad) {
    const r = await runCli(
      ["--listen", "127.0.0.1:0", "--fault", "mail delay 1s", "--fault", rule],
      {},
      {
        timeoutMs: 20_000,
      },
    );
    assert.equal(r.code, 2, `${rule}: exit ${r.code}, stderr ${r.stderr}`);
    const lines = r.stderr.split("\n").filter((l) => l !== "");
    assert.equal(lines.length, 1, `${rule}: ${r.stderr}`);
    assert.ok(lines[0]!.includes(rule), `${rule} named in ${lines[0]}`);
    assert.match(lines[0]!, /--fault/);
    assert.doesNotMatch(r.stderr, /^\s+at /m);
  }
  // The same through SMTPD_FAULT.
  const env = await runCli(["--listen", "127.0.0.1:0"], { SMTPD_FAULT: "rcpt 250 ok" }, {
    timeoutMs: 20_000,
  });
  assert.equal(env.code, 2, env.stderr);
  assert.match(env.stderr, /rcpt 250 ok/);
});
