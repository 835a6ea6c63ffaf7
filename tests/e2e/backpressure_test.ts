/**
 * Memory stays bounded against clients that send faster than they read
 * (developers' guide: nothing grows without bound). Over plain TCP, STARTTLS
 * and implicit TLS, a client pushes commands for a while without reading:
 * the server must stop reading too, so the kernel's buffers (a few MB) stop
 * the client. Deno 2.9.6's node:tls once read on regardless (1 GB in 2 s).
 */

import assert from "node:assert/strict";
import { SmtpConn, startTlsServer, type TlsServer } from "./_tls_auth_helpers.ts";

/** Far above loopback's socket buffers (a few MB each way), far below the old 500 MB/s. */
const BOUND = 64 * 1024 * 1024;
const PUSH_MS = 1500;

type Transport = "plain" | "STARTTLS" | "implicit TLS";

async function open(t: TlsServer, transport: Transport): Promise<SmtpConn> {
  if (transport === "implicit TLS") {
    const c = await SmtpConn.connectTls(t.tlsPort, [t.certPem]);
    assert.equal((await c.readReply()).code, 220);
    return c;
  }
  const c = await SmtpConn.connect(t.plainPort);
  assert.equal((await c.readReply()).code, 220);
  if (transport === "STARTTLS") {
    assert.equal((await c.command("EHLO t")).code, 250);
    assert.equal((await c.command("STARTTLS")).code, 220);
    await c.startTls([t.certPem]);
  }
  return c;
}

/** The server still serves a new client after the pushing one. */
async function stillServes(t: TlsServer): Promise<void> {
  await using c = await SmtpConn.connect(t.plainPort);
  assert.equal((await c.readReply()).code, 220);
  assert.equal((await c.command("NOOP")).code, 250);
}

for (const transport of ["plain", "STARTTLS", "implicit TLS"] as const) {
  Deno.test(`e2e backpressure: a client that stops reading its replies is not read without bound, then gets them all (${transport})`, async () => {
    await using t = await startTlsServer();
    const c = await open(t, transport);
    try {
      // HELP's reply is 13 times its command: replies back up at once.
      const help = "HELP\r\n";
      const push = await c.pushFor(help.repeat(10_000), PUSH_MS);
      assert.ok(push.sent < BOUND, `the server read ${push.sent} bytes from a client not reading`);
      // Now the client reads: the server resumes, and nothing was lost.
      const reading = (async () => {
        const codes = new Map<number, number>();
        for (;;) {
          const { code } = await c.readReply();
          codes.set(code, (codes.get(code) ?? 0) + 1);
          if (code === 221) return codes;
        }
      })();
      const sent = push.sent + await push.late;
      const cut = sent % help.length;
      await c.send((cut ? help.slice(cut) : "") + "QUIT\r\n");
      const codes = await reading;
      assert.deepEqual(Object.fromEntries(codes), { 214: Math.ceil(sent / help.length), 221: 1 });
    } finally {
      await c.close();
    }
    await stillServes(t);
  });

  Deno.test(`e2e backpressure: commands pipelined behind a slow commit are read 256 KiB ahead, then all answered (${transport})`, async () => {
    await using t = await startTlsServer(["--fault", "data delay 2s"]);
    const c = await open(t, transport);
    try {
      const noop = `NOOP ${"x".repeat(1000)}\r\n`;
      await c.send(
        "EHLO t\r\nMAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.com>\r\nDATA\r\n" +
          "Subject: slow\r\n\r\ncommit\r\n.\r\n",
      );
      const push = await c.pushFor(noop.repeat(1000), PUSH_MS);
      assert.ok(push.sent < BOUND, `the server read ${push.sent} bytes during a 2 s commit`);
      const sent = push.sent + await push.late;
      // A write may have stopped mid-line: finish that NOOP first.
      const cut = sent % noop.length;
      await c.send((cut ? noop.slice(cut) : "") + "QUIT\r\n");
      const codes: number[] = [];
      for (let r = await c.readReply();; r = await c.readReply()) {
        codes.push(r.code);
        if (r.code === 221) break;
      }
      // EHLO, MAIL, RCPT, 354, the message's 250, every NOOP, 221: nothing lost.
      const noops = Math.ceil(sent / noop.length);
      assert.deepEqual(codes.slice(0, 4), [250, 250, 250, 354]);
      assert.equal(codes.length, 4 + 1 + noops + 1, "one reply per command");
      assert.ok(codes.slice(4, -1).every((code) => code === 250));
    } finally {
      await c.close();
    }
  });
}
