/**
 * SPEC §2 limits end to end: --max-size (declared and streamed),
 * --max-recipients, --timeout and --max-connections.
 */

import assert from "node:assert/strict";
import { assertStored, ehloed, started } from "../helpers/launcher.ts";
import { queuedId, type RawClient, stuff, transaction } from "../helpers/raw_client.ts";

async function spoolNames(spool: string): Promise<string[]> {
  const names: string[] = [];
  for await (const e of Deno.readDir(spool)) if (e.isFile) names.push(e.name);
  return names.sort();
}

Deno.test("e2e: --max-size is advertised and a declared SIZE over it gets 552 5.3.4", async () => {
  await using s = await ehloed(["--max-size", "1000"]);
  assert.ok(s.ehlo.lines.includes("SIZE 1000"), s.ehlo.raw);
  assert.match((await s.client.command("MAIL FROM:<a@example.com> SIZE=1001")).raw, /^552 5\.3\.4/);
  assert.match((await s.client.command("MAIL FROM:<a@example.com> SIZE=1000")).raw, /^250 2\.1\.0/);
});

Deno.test("e2e: --max-size 0 sets no limit: SIZE 0, any declared SIZE, a message over the default", async () => {
  await using s = await ehloed(["--max-size", "0"]);
  assert.ok(s.ehlo.lines.includes("SIZE 0"), s.ehlo.raw);
  const c = s.client;
  const declared = "MAIL FROM:<a@example.com> SIZE=99999999999999999999";
  assert.match((await c.command(declared)).raw, /^250 2\.1\.0/);
  assert.equal((await c.command("RCPT TO:<b@example.com>")).code, 250);
  // One byte over the 50 MiB default, in one BDAT chunk.
  const size = 52_428_801;
  await c.send(`BDAT ${size} LAST\r\n`);
  const block = new Uint8Array(1 << 20).fill(0x78);
  for (let left = size; left > 0; left -= block.length) {
    await c.send(block.subarray(0, Math.min(left, block.length)));
  }
  const id = queuedId(await c.readReply());
  assert.equal((await Deno.stat(`${s.server.spool}/${id}.eml`)).size, size);
});

Deno.test("e2e: a message over --max-size gets 552 5.3.4, stores nothing, session goes on", async () => {
  await using s = await ehloed(["--max-size", "1000"]);
  const c = s.client;
  const big = "Subject: big\r\n\r\n" + ("z".repeat(98) + "\r\n").repeat(60); // ~6 KB, streamed
  const reply = await transaction(c, "a@example.com", ["b@example.com"], stuff(big));
  assert.match(reply.raw, /^552 5\.3\.4/);
  assert.deepEqual(await s.server.messages(), []);
  assert.deepEqual(await spoolNames(s.server.spool), [], "no .eml or .json left behind");
  const small = "Subject: small\r\n\r\nok\r\n";
  const id = queuedId(await transaction(c, "a@example.com", ["b@example.com"], stuff(small)));
  const msgs = await s.server.messages();
  assert.deepEqual(msgs.map((m) => m.id), [id]);
  await assertStored(msgs[0]!, small);
});

Deno.test("e2e: a BDAT message over --max-size gets 552 5.3.4", async () => {
  await using s = await ehloed(["--max-size", "100"]);
  const c = s.client;
  assert.equal((await c.command("MAIL FROM:<a@example.com>")).code, 250);
  assert.equal((await c.command("RCPT TO:<b@example.com>")).code, 250);
  const chunk = "q".repeat(150);
  await c.send(`BDAT ${chunk.length} LAST\r\n${chunk}`);
  assert.match((await c.readReply()).raw, /^552 5\.3\.4/);
  assert.match((await c.command("NOOP")).raw, /^250 /);
  assert.deepEqual(await s.server.messages(), []);
});

Deno.test("e2e: --max-recipients refuses the extra RCPT with 452 4.5.3", async () => {
  await using s = await ehloed(["--max-recipients", "2"]);
  const c = s.client;
  assert.equal((await c.command("MAIL FROM:<a@example.com>")).code, 250);
  assert.equal((await c.command("RCPT TO:<r1@example.com>")).code, 250);
  assert.equal((await c.command("RCPT TO:<r2@example.com>")).code, 250);
  assert.match((await c.command("RCPT TO:<r3@example.com>")).raw, /^452 4\.5\.3/);
  assert.equal((await c.command("DATA")).code, 354);
  await c.send(stuff("x\r\n"));
  queuedId(await c.readReply());
  const [msg] = await s.server.messages();
  assert.ok(msg);
  assert.deepEqual(msg.meta.rcptTo, ["r1@example.com", "r2@example.com"]);
});

Deno.test("e2e: --timeout closes an idle session with 421 4.4.2", async () => {
  await using s = await ehloed(["--timeout", "1s"]);
  const t0 = Date.now();
  const reply = await s.client.readReply(8_000);
  assert.match(reply.raw, /^421 4\.4\.2/);
  assert.ok(Date.now() - t0 >= 800, `closed after ${Date.now() - t0} ms, before the 1 s timeout`);
  await s.client.expectClosed();
});

Deno.test("e2e: --timeout applies inside DATA; the partial message is not stored", async () => {
  await using s = await ehloed(["--timeout", "1s"]);
  const c = s.client;
  assert.equal((await c.command("MAIL FROM:<a@example.com>")).code, 250);
  assert.equal((await c.command("RCPT TO:<b@example.com>")).code, 250);
  assert.equal((await c.command("DATA")).code, 354);
  await c.send("Subject: partial\r\n\r\nhalf a mess");
  assert.match((await c.readReply(8_000)).raw, /^421 4\.4\.2/);
  await c.expectClosed();
  assert.deepEqual(await s.server.messages(), []);
});

Deno.test("e2e: --max-connections 2 refuses the third with 421 4.7.0", async () => {
  await using server = await started(["--max-connections", "2"]);
  const clients: RawClient[] = [];
  try {
    for (let i = 0; i < 2; i++) {
      const c = await server.connect();
      clients.push(c);
      assert.equal((await c.readReply()).code, 220);
    }
    const third = await server.connect();
    clients.push(third);
    assert.match((await third.readReply()).raw, /^421 4\.7\.0/);
    await third.expectClosed();
    await server.waitForStderr(/connection opened conn=3 /);
    await server.waitForStderr(/connection closed conn=3 .*reason="too many connections" ms=\d+/);
    // A slot frees when a session ends; the server notices the close shortly after.
    assert.equal((await clients[0]!.command("QUIT")).code, 221);
    await clients[0]!.expectClosed();
    let greeting = "";
    for (let attempt = 0; attempt < 40 && !greeting.startsWith("220"); attempt++) {
      const c = await server.connect();
      clients.push(c);
      greeting = (await c.readReply()).raw;
      if (!greeting.startsWith("220")) await new Promise((r) => setTimeout(r, 50));
    }
    assert.match(greeting, /^220 /);
  } finally {
    for (const c of clients) await c.close();
  }
});
