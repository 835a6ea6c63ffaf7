/**
 * SPEC §3–§4 over a real socket with the raw client: pipelining, BDAT,
 * overlong command lines, the failed-command limit, and what lands in the
 * spool (bytes and `.json` fields) for ordinary, empty and 8-bit messages.
 */

import assert from "node:assert/strict";
import { assertStored, ehloed, greeted, sha256Hex } from "../helpers/launcher.ts";
import { queuedId, stuff, transaction, visible } from "../helpers/raw_client.ts";

const enc = new TextEncoder();

/** Strings (UTF-8) and raw byte lists, joined. */
function concatParts(parts: (string | number[])[]): Uint8Array {
  const chunks = parts.map((p) => typeof p === "string" ? enc.encode(p) : Uint8Array.from(p));
  const out = new Uint8Array(chunks.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of chunks) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

Deno.test("e2e: a message is stored with its bytes and every .json field", async () => {
  await using s = await ehloed();
  const message = "Subject: Hello\r\nFrom: Alice <alice@example.com>\r\nTo: bob@example.com\r\n" +
    "Date: Mon, 23 Nov 2026 06:53:00 +0000\r\nMessage-ID: <m1@example.com>\r\n\r\n" +
    ".leading dot\r\n..two dots\r\nbody\r\n";
  const reply = await transaction(
    s.client,
    "alice@example.com",
    ["bob@example.com", "carol@example.org"],
    stuff(message),
  );
  const id = queuedId(reply);
  assert.match(reply.raw, /^250 2\.0\.0 Ok: queued as /);
  const [msg] = await s.server.messages();
  assert.ok(msg);
  assert.equal(msg.id, id);
  assert.match(id, /^[A-Za-z0-9._-]{1,64}$/);
  await assertStored(msg, message);
  const m = msg.meta;
  assert.equal(m.mailFrom, "alice@example.com");
  assert.deepEqual(m.rcptTo, ["bob@example.com", "carol@example.org"]);
  assert.deepEqual(m.mailParams, {});
  assert.deepEqual(m.rcptParams, [{}, {}]);
  assert.equal(m.helo, "client.example");
  assert.equal(m.protocol, "ESMTP");
  assert.equal(m.client.address, "127.0.0.1");
  assert.equal(typeof m.client.port, "number");
  assert.deepEqual(m.server, { address: "127.0.0.1", port: s.server.port });
  assert.equal(m.tls, null);
  assert.equal(m.auth, null);
  assert.ok(!Number.isNaN(Date.parse(m.receivedAt)), `receivedAt ${m.receivedAt}`);
  assert.deepEqual(m.headers, {
    subject: "Hello",
    from: "Alice <alice@example.com>",
    to: "bob@example.com",
    date: "Mon, 23 Nov 2026 06:53:00 +0000",
    messageId: "<m1@example.com>",
  });
  assert.equal((await s.client.command("QUIT")).code, 221);
  await s.client.expectClosed();
});

Deno.test("e2e: null reverse-path, parameters and HELO are recorded", async () => {
  await using s = await ehloed();
  const c = s.client;
  assert.match((await c.command("HELO legacy.example")).raw, /^250 /);
  assert.match((await c.command("MAIL FROM:<> BODY=8BITMIME ENVID=abc")).raw, /^250 2\.1\.0/);
  assert.match(
    (await c.command("RCPT TO:<bob@example.com> NOTIFY=SUCCESS,FAILURE")).raw,
    /^250 2\.1\.5/,
  );
  assert.match((await c.command("RCPT TO:<postmaster>")).raw, /^250 2\.1\.5/);
  assert.equal((await c.command("DATA")).code, 354);
  await c.send(stuff("x\r\n"));
  queuedId(await c.readReply());
  const [msg] = await s.server.messages();
  assert.ok(msg);
  await assertStored(msg, "x\r\n");
  assert.equal(msg.meta.mailFrom, "");
  assert.deepEqual(msg.meta.mailParams, { BODY: "8BITMIME", ENVID: "abc" });
  assert.deepEqual(msg.meta.rcptTo, ["bob@example.com", "postmaster"]);
  assert.deepEqual(msg.meta.rcptParams, [{ NOTIFY: "SUCCESS,FAILURE" }, {}]);
  assert.equal(msg.meta.helo, "legacy.example");
  assert.equal(msg.meta.protocol, "SMTP");
  assert.deepEqual(msg.meta.headers, {});
});

Deno.test("e2e: an empty message is a 0-byte .eml", async () => {
  await using s = await ehloed();
  queuedId(await transaction(s.client, "a@example.com", ["b@example.com"], ".\r\n"));
  const [msg] = await s.server.messages();
  assert.ok(msg);
  await assertStored(msg, "");
  assert.equal(msg.meta.size, 0);
  assert.equal(msg.meta.sha256, await sha256Hex(""));
});

Deno.test("e2e: 8-bit body bytes and a long message line are stored exactly", async () => {
  await using s = await ehloed();
  const bytes: number[] = [...enc.encode("Subject: 8bit\r\n\r\n")];
  for (let b = 0x80; b <= 0xff; b++) bytes.push(b); // invalid UTF-8 on purpose
  bytes.push(0x0d, 0x0a);
  bytes.push(...enc.encode("y".repeat(20_000) + "\r\n")); // a message line has no length limit
  const message = new Uint8Array(bytes);
  const c = s.client;
  assert.equal((await c.command("MAIL FROM:<a@example.com> BODY=8BITMIME")).code, 250);
  assert.equal((await c.command("RCPT TO:<b@example.com>")).code, 250);
  assert.equal((await c.command("DATA")).code, 354);
  await c.send(message);
  await c.send(".\r\n");
  queuedId(await c.readReply());
  const [msg] = await s.server.messages();
  assert.ok(msg);
  await assertStored(msg, message);
  assert.equal(msg.meta.mailParams.BODY, "8BITMIME");
});

Deno.test("e2e: a 6 MiB message with stuffed dots is stored byte for byte (hash worker)", async () => {
  await using s = await ehloed();
  // Lines starting with dots, bare CR and LF, 8-bit bytes: above 1 MiB the
  // sha256 comes from the worker reading the file back.
  const lines: string[] = ["Subject: six MiB\r\n\r\n"];
  for (let i = 0, length = 0; length < 6 * 1024 * 1024; i++) {
    const line = i % 3 === 0
      ? `.${i} dot\r\n`
      : i % 7 === 0
      ? `x\ry\nz.${i} \u00e9\r\n`
      : `${"w".repeat(i % 200)}\r\n`;
    lines.push(line);
    length += line.length;
  }
  const message = lines.join("");
  const c = s.client;
  assert.equal((await c.command("MAIL FROM:<a@example.com>")).code, 250);
  assert.equal((await c.command("RCPT TO:<b@example.com>")).code, 250);
  assert.equal((await c.command("DATA")).code, 354);
  const wire = enc.encode(stuff(message));
  for (let at = 0; at < wire.length; at += 99_991) await c.send(wire.subarray(at, at + 99_991));
  queuedId(await c.readReply());
  const [msg] = await s.server.messages();
  assert.ok(msg);
  await assertStored(msg, message);
});

Deno.test("e2e: pipelined commands in one write get their replies in order", async () => {
  await using s = await ehloed();
  const c = s.client;
  await c.send(
    "MAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.com>\r\nRCPT TO:<bad\r\n" +
      "RCPT TO:<c@example.com>\r\nNOOP\r\nDATA\r\n",
  );
  const first = await c.readReplies(6);
  assert.deepEqual(
    first.map((r) => r.code),
    [250, 250, 501, 250, 250, 354],
    first.map((r) => r.raw).join(""),
  );
  assert.match(first[0]!.raw, /^250 2\.1\.0/);
  assert.match(first[1]!.raw, /^250 2\.1\.5/);
  assert.match(first[2]!.raw, /^501 5\.5\.4/);
  assert.match(first[4]!.raw, /^250 2\.0\.0/);
  // End of data and the next transaction in one write: the server keeps the
  // bytes after `.` buffered while it commits, then answers them in order.
  await c.send(
    "Subject: one\r\n\r\nfirst\r\n.\r\nMAIL FROM:<d@example.com>\r\nRCPT TO:<e@example.com>\r\n" +
      "DATA\r\nSubject: two\r\n\r\nsecond\r\n.\r\nRSET\r\nNOOP\r\nQUIT\r\n",
  );
  const rest = await c.readReplies(7);
  assert.deepEqual(
    rest.map((r) => r.code),
    [250, 250, 250, 354, 250, 250, 250],
    rest.map((r) => r.raw).join(""),
  );
  const ids = [queuedId(rest[0]!), queuedId(rest[4]!)];
  assert.equal((await c.readReply()).code, 221);
  await c.expectClosed();
  const msgs = await s.server.messages();
  assert.deepEqual(msgs.map((m) => m.id), ids, "ids sort in order of receipt");
  await assertStored(msgs[0]!, "Subject: one\r\n\r\nfirst\r\n");
  await assertStored(msgs[1]!, "Subject: two\r\n\r\nsecond\r\n");
  assert.deepEqual(msgs[0]!.meta.rcptTo, ["b@example.com", "c@example.com"]);
  assert.deepEqual(msgs[1]!.meta.rcptTo, ["e@example.com"]);
});

Deno.test("e2e: a burst of three whole transactions in one write is answered in order", async () => {
  await using s = await ehloed();
  let burst = "";
  for (let i = 0; i < 3; i++) {
    burst += `MAIL FROM:<s${i}@example.com>\r\nRCPT TO:<r${i}@example.com>\r\nDATA\r\n` +
      stuff(`Subject: n${i}\r\n\r\n.dot ${i}\r\n`);
  }
  await s.client.send(burst + "QUIT\r\n");
  const replies = await s.client.readReplies(13);
  assert.deepEqual(
    replies.map((r) => r.code),
    [250, 250, 354, 250, 250, 250, 354, 250, 250, 250, 354, 250, 221],
    replies.map((r) => r.raw).join(""),
  );
  await s.client.expectClosed();
  const msgs = await s.server.messages();
  assert.equal(msgs.length, 3);
  for (let i = 0; i < 3; i++) {
    await assertStored(msgs[i]!, `Subject: n${i}\r\n\r\n.dot ${i}\r\n`);
    assert.equal(msgs[i]!.meta.mailFrom, `s${i}@example.com`);
  }
});

Deno.test("e2e: BDAT chunks split across writes are stored binary-safe", async () => {
  await using s = await ehloed();
  const c = s.client;
  assert.match(s.ehlo.raw, /CHUNKING/);
  assert.equal((await c.command("MAIL FROM:<a@example.com> BODY=BINARYMIME")).code, 250);
  assert.equal((await c.command("RCPT TO:<b@example.com>")).code, 250);
  const chunk1 = "Subject: b\r\n\r\n.\r\nno\n.\nend\r\n.\r\n"; // dots and bare LF are data in BDAT
  const chunk2 = "\x00\x01\r\rtail";
  await c.send(`BDAT ${chunk1.length}\r\n${chunk1.slice(0, 7)}`);
  await new Promise((r) => setTimeout(r, 50));
  await c.send(chunk1.slice(7));
  assert.match((await c.readReply()).raw, /^250 /);
  await c.send(`BDAT ${chunk2.length} LAST\r\n${chunk2.slice(0, 3)}`);
  await new Promise((r) => setTimeout(r, 50));
  await c.send(chunk2.slice(3));
  const id = queuedId(await c.readReply());
  const [msg] = await s.server.messages();
  assert.ok(msg);
  assert.equal(msg.id, id);
  await assertStored(msg, chunk1 + chunk2);
  assert.equal(msg.meta.mailParams.BODY, "BINARYMIME");
});

Deno.test("e2e: BDAT 0 LAST ends the message; alone it stores an empty one", async () => {
  await using s = await ehloed();
  const c = s.client;
  assert.equal((await c.command("MAIL FROM:<a@example.com>")).code, 250);
  assert.equal((await c.command("RCPT TO:<b@example.com>")).code, 250);
  await c.send("BDAT 3\r\nabc");
  assert.equal((await c.readReply()).code, 250);
  queuedId(await c.command("BDAT 0 LAST"));
  assert.equal((await c.command("MAIL FROM:<a@example.com>")).code, 250);
  assert.equal((await c.command("RCPT TO:<b@example.com>")).code, 250);
  queuedId(await c.command("BDAT 0 LAST"));
  const msgs = await s.server.messages();
  assert.equal(msgs.length, 2);
  await assertStored(msgs[0]!, "abc");
  await assertStored(msgs[1]!, "");
});

Deno.test("e2e: DATA after BDAT or after BODY=BINARYMIME gets 503 5.5.1", async () => {
  await using s = await ehloed();
  const c = s.client;
  assert.equal((await c.command("MAIL FROM:<a@example.com>")).code, 250);
  assert.equal((await c.command("RCPT TO:<b@example.com>")).code, 250);
  await c.send("BDAT 3\r\nabc");
  assert.equal((await c.readReply()).code, 250);
  assert.match((await c.command("DATA")).raw, /^503 5\.5\.1/);
  assert.match((await c.command("RSET")).raw, /^250 2\.0\.0/);
  assert.equal((await c.command("MAIL FROM:<a@example.com> BODY=BINARYMIME")).code, 250);
  assert.equal((await c.command("RCPT TO:<b@example.com>")).code, 250);
  assert.match((await c.command("DATA")).raw, /^503 5\.5\.1/);
  assert.match((await c.command("NOOP")).raw, /^250 /);
  assert.deepEqual(await s.server.messages(), []);
});

Deno.test("e2e: a command line split across reads arrives whole", async () => {
  await using s = await ehloed();
  const c = s.client;
  // Two reads into the plain listener's reused read buffer (NativeSocket).
  await c.send("MAIL FROM:<split@exa");
  await new Promise((resolve) => setTimeout(resolve, 100));
  await c.send("mple.com>\r\n");
  assert.match((await c.readReply()).raw, /^250 2\.1\.0/);
  assert.equal((await c.command("RCPT TO:<b@example.com>")).code, 250);
  assert.equal((await c.command("DATA")).code, 354);
  queuedId(await c.command(stuff("Subject: split\r\n\r\nx\r\n").slice(0, -2)));
  const [msg] = await s.server.messages();
  assert.equal(msg?.meta.mailFrom, "split@example.com");
});

Deno.test("e2e: an overlong command line gets 500 5.5.2 and the session goes on", async () => {
  await using s = await ehloed();
  const c = s.client;
  assert.match(
    (await c.command("MAIL FROM:<" + "a".repeat(5000) + "@example.com>")).raw,
    /^500 5\.5\.2/,
  );
  assert.match((await c.command("NOOP " + "x".repeat(100_000))).raw, /^500 5\.5\.2/);
  // The overlong line was discarded whole: no half of it runs as a command.
  assert.match((await c.command("NOOP")).raw, /^250 2\.0\.0/);
  // 4096 octets with the CRLF, as RFC 5321 §4.5.3.1.4 counts a command line; one more is over.
  assert.match((await c.command(`NOOP ${"x".repeat(4096 - 7)}`)).raw, /^250 2\.0\.0/);
  assert.match((await c.command(`NOOP ${"x".repeat(4096 - 6)}`)).raw, /^500 5\.5\.2/);
  const reply = await transaction(c, "a@example.com", ["b@example.com"], stuff("ok\r\n"));
  queuedId(reply);
});

Deno.test("e2e: the 20th failed command gets its own reply, then 421 4.7.0 and close", async () => {
  await using s = await ehloed();
  const c = s.client;
  for (let i = 1; i <= 20; i++) {
    const r = await c.command(`BOGUS${i}`);
    assert.match(r.raw, /^500 5\.5\.2/, c.transcript);
  }
  // Postfix smtpd_hard_error_limit: no 21st command is needed to get the 421.
  assert.match((await c.readReply()).raw, /^421 4\.7\.0/, c.transcript);
  await c.expectClosed();
});

Deno.test("e2e: replies echo client text as ASCII, in lines of at most 512 octets", async () => {
  await using s = await greeted(["--trust-proxy", "127.0.0.0/8", "--hostname", "mx.test"]);
  const c = s.client;
  // RFC 5321 §4.2 textstring: HT and printable ASCII only.
  const textLines = (raw: string) => raw.split("\r\n").slice(0, -1);
  const isText = (line: string) => /^\d{3}[ -][\t\x20-\x7e]*$/.test(line);
  await c.send(enc.encode("EHLO a\x00b"));
  await c.send(Uint8Array.of(0xc3, 0xa9, 0xff, 0x0d, 0x0a));
  const ehlo = await c.readReply();
  assert.equal(textLines(ehlo.raw)[0], "250-mx.test Hello a?b??");
  const long = await c.command(`EHLO ${"h".repeat(4000)}`);
  for (const line of textLines(long.raw)) assert.ok(line.length + 2 <= 512, line.slice(0, 40));
  assert.equal(textLines(long.raw)[0]!.length + 2, 512);
  for (const line of ["XCLIENT", "XFORWARD", "RCPT TO:<\u00e9\x01@x>", "VRFY \u00e9\x7f"]) {
    const r = await c.command(line);
    assert.ok(textLines(r.raw).every(isText), visible(r.raw));
  }
});

Deno.test("e2e: addresses of malformed UTF-8 get 501 5.5.4 and are never stored", async () => {
  await using s = await ehloed();
  const c = s.client;
  const raw = async (...parts: (string | number[])[]) => {
    await c.send(concatParts(parts));
    return (await c.readReply()).raw;
  };
  assert.match(
    await raw("MAIL FROM:<", [0xff, 0xfe], "@b.test> SMTPUTF8\r\n"),
    /^501 5\.5\.4 Bad sender address syntax/,
  );
  assert.equal((await c.command("MAIL FROM:<a@b.test> SMTPUTF8")).code, 250);
  assert.match(
    await raw("RCPT TO:<x", [0xc0, 0xaf], "@y.test>\r\n"),
    /^501 5\.5\.4 Bad recipient address syntax/,
  );
  assert.match(await raw("RCPT TO:<\u00fc@y.test>\r\n"), /^250 2\.1\.5/);
  assert.equal((await c.command("DATA")).code, 354);
  queuedId(await c.command(stuff("Subject: utf8\r\n\r\nx\r\n").slice(0, -2)));
  const [msg] = await s.server.messages();
  assert.deepEqual(msg?.meta.rcptTo, ["\u00fc@y.test"]);
});

Deno.test("e2e: HELP lists STARTTLS only where it is offered", async () => {
  {
    await using s = await ehloed();
    const help = (await s.client.command("HELP")).raw;
    assert.match(help, /^214 2\.0\.0 Commands: .* AUTH\r\n$/);
    assert.doesNotMatch(help, /STARTTLS/, "no TLS configured");
  }
  await using tls = await ehloed(["--tls-self-signed", "--hostname", "localhost"]);
  assert.match((await tls.client.command("HELP")).raw, / STARTTLS AUTH\r\n$/);
});

Deno.test("e2e: every reply but greeting, EHLO and 354 has an enhanced code", async () => {
  await using s = await ehloed();
  const c = s.client;
  const lines = [
    "NOOP",
    "RSET",
    "VRFY bob",
    "EXPN list",
    "HELP",
    "MAIL FROM:<a@example.com>",
    "RCPT TO:<b@example.com>",
  ];
  for (const line of lines) {
    const r = await c.command(line);
    assert.match(r.raw, /^\d{3}[ -]\d\.\d{1,3}\.\d{1,3}( |\r)/, `${line}: ${r.raw}`);
  }
  assert.match((await c.command("VRFY bob")).raw, /^252 2\.5\.0/);
  assert.match((await c.command("EXPN list")).raw, /^502 5\.5\.1/);
  assert.match((await c.command("QUIT")).raw, /^221 2\.0\.0/);
  await c.expectClosed();
});

Deno.test("e2e: the debug transcript clips a long command line, so each log line stays under 4 KiB", async () => {
  await using s = await ehloed(["--log-level", "debug", "--log-format", "json"]);
  // Control characters: JSON writes each as six bytes (\u0001).
  const noop = await s.client.command(`NOOP ${"\u0001".repeat(4000)}`);
  assert.equal(noop.code, 250, visible(noop.raw));
  await s.server.waitForStderr(/\(4005 chars\)/);
  // Complete lines only: the last one may still be arriving.
  const lines = s.server.stderr().split("\n").slice(0, -1).filter((line) => line !== "");
  for (const line of lines) {
    assert.ok(enc.encode(line).length < 4096, `${enc.encode(line).length} bytes: ${line}`);
    JSON.parse(line);
  }
  const clipped = lines.map((line) => JSON.parse(line)).find((entry) =>
    String(entry.msg).startsWith("< NOOP ")
  );
  assert.ok(clipped, "no transcript line for the NOOP");
  assert.ok(clipped.msg.endsWith("… (4005 chars)"), clipped.msg);
});
