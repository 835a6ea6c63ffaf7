/**
 * SMTP smuggling (CVE-2023-51764 class, SPEC §4): only CRLF . CRLF ends DATA.
 * Each variant hides a second transaction behind a bare-CR/LF "end of data";
 * the server must store it as content of exactly one message, and never
 * answer the hidden commands.
 */

import assert from "node:assert/strict";
import { assertStored, started } from "../helpers/launcher.ts";
import { queuedId, transaction, visible } from "../helpers/raw_client.ts";

/** The fake end-of-data sequences; none of them is CRLF . CRLF. */
const VARIANTS: [string, string][] = [
  ["LF . LF", "\n.\n"],
  ["LF . CRLF", "\n.\r\n"],
  ["CR . CR", "\r.\r"],
  ["CR . LF", "\r.\n"],
  ["CRLF . LF", "\r\n.\n"],
  ["CR . CRLF", "\r.\r\n"],
  ["CRLF . CR", "\r\n.\r"],
];

/** The reference unstuffing of SPEC §4: on CRLF-delimited lines, a leading dot is dropped. */
function unstuff(data: string): string {
  return data.split("\r\n").map((l) => (l.startsWith(".") ? l.slice(1) : l)).join("\r\n");
}

Deno.test("e2e: bare CR/LF end-of-data variants are content of one message", async (t) => {
  await using server = await started();
  let expectedCount = 0;
  for (const [name, fake] of VARIANTS) {
    await t.step(`${name} (${visible(fake)})`, async () => {
      await using c = await server.connect();
      assert.equal((await c.readReply()).code, 220);
      assert.equal((await c.command("EHLO client.example")).code, 250);
      const hidden = "MAIL FROM:<evil@attacker.example>\r\nRCPT TO:<victim@example.com>\r\n" +
        "DATA\r\nSubject: smuggled\r\n\r\nsmuggled\r\n";
      const data = "Subject: legit\r\n\r\nbefore" + fake + hidden;
      const reply = await transaction(c, "alice@example.com", ["bob@example.com"], data + ".\r\n");
      queuedId(reply);
      // Had the fake end counted, replies to the hidden commands would come before 221.
      const quit = await c.command("QUIT");
      assert.match(quit.raw, /^221 /, `unexpected reply: transcript ${visible(c.transcript)}`);
      await c.expectClosed();
      expectedCount++;
      const msgs = await server.messages();
      assert.equal(msgs.length, expectedCount, "exactly one message per session");
      const msg = msgs[msgs.length - 1]!;
      await assertStored(msg, unstuff(data));
      assert.equal(msg.meta.mailFrom, "alice@example.com");
      assert.deepEqual(msg.meta.rcptTo, ["bob@example.com"]);
    });
  }
});

Deno.test("e2e: x CR CR LF . CR LF ends the message", async () => {
  await using server = await started();
  await using c = await server.connect();
  assert.equal((await c.readReply()).code, 220);
  assert.equal((await c.command("EHLO client.example")).code, 250);
  queuedId(await transaction(c, "a@example.com", ["b@example.com"], "x\r\r\n.\r\n"));
  const [msg] = await server.messages();
  assert.ok(msg);
  await assertStored(msg, "x\r\r\n");
});

Deno.test("e2e: the octets of a malformed BDAT line never run as commands", async () => {
  await using server = await started();
  await using c = await server.connect();
  assert.equal((await c.readReply()).code, 220);
  // The 10 octets after `BDAT 10 LAST EXTRA` hide a whole transaction's start.
  const hidden = "RSET\r\nQUIT";
  await c.send(
    "EHLO client.example\r\nMAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.com>\r\n" +
      `BDAT ${hidden.length} LAST EXTRA\r\n${hidden}NOOP\r\n`,
  );
  const replies = await c.readReplies(5);
  assert.deepEqual(replies.map((r) => r.code), [250, 250, 250, 501, 250]);
  assert.match(replies[3]!.raw, /^501 5\.5\.4 /);
  // Still connected (QUIT was not run), and nothing was stored.
  assert.equal((await c.command("QUIT")).code, 221);
  assert.equal((await server.messages()).length, 0);
});
