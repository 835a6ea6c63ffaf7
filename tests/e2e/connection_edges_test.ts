/**
 * Regressions found in review: clients that leave at awkward moments must
 * neither leak a connection slot nor leave a message that got no 250, and a
 * client pipelining through commits must get its replies as it goes.
 */

import assert from "node:assert/strict";
import { poll, startServer } from "../helpers/launcher.ts";
import { RawClient } from "../helpers/raw_client.ts";

Deno.test("e2e: a client leaving during a connect delay frees its --max-connections slot", async () => {
  await using server = await startServer([
    "--max-connections",
    "1",
    "--fault",
    "connect delay 500ms",
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
