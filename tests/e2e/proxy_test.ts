/**
 * The recipient allow-list (`--accept-rcpt`, VRFY) and Postfix's proxy
 * commands XCLIENT/XFORWARD from `--trust-proxy` networks only (SPEC §2,
 * §3, §4), over IPv4 and IPv6 loopback; then a real Postfix instance, private
 * to the test, relaying through smtpd with `smtp_send_xforward_command = yes`.
 */

import assert from "node:assert/strict";
import {
  assertStored,
  poll,
  readSpool,
  type ServerProc,
  startServer,
} from "../helpers/launcher.ts";
import { queuedId, RawClient, stuff, transaction } from "../helpers/raw_client.ts";
import { findOnPath } from "../helpers/clients.ts";

async function ehloOn(port: number, host = "127.0.0.1", name = "client.example") {
  const c = await RawClient.connect(port, host);
  assert.equal((await c.readReply()).code, 220);
  const ehlo = await c.command(`EHLO ${name}`);
  assert.equal(ehlo.code, 250);
  return { c, keywords: ehlo.lines.slice(1).map((l) => l.split(" ")[0]!.toUpperCase()) };
}

function ehlo(server: ServerProc, name?: string) {
  return ehloOn(server.port, "127.0.0.1", name);
}

Deno.test("e2e accept-rcpt: only matching recipients are accepted; VRFY 250/550", async () => {
  await using server = await startServer([
    "--accept-rcpt",
    "^a@",
    "--accept-rcpt",
    "@keep\\.example$",
  ]);
  const { c } = await ehlo(server);
  await using _ = c;
  assert.match((await c.command("VRFY a@example.com")).raw, /^250 2\.1\.5 /);
  assert.match((await c.command("VRFY <joe@keep.example>")).raw, /^250 2\.1\.5 /);
  assert.match((await c.command("VRFY b@example.com")).raw, /^550 5\.1\.1 /);
  assert.equal((await c.command("MAIL FROM:<s@example.org>")).code, 250);
  assert.match((await c.command("RCPT TO:<a@example.com>")).raw, /^250 2\.1\.5/);
  assert.match((await c.command("RCPT TO:<ba@example.com>")).raw, /^550 5\.1\.1 /);
  assert.match((await c.command("RCPT TO:<joe@keep.example>")).raw, /^250 2\.1\.5/);
  assert.match((await c.command("RCPT TO:<joe@keep.example.org>")).raw, /^550 5\.1\.1 /);
  assert.equal((await c.command("DATA")).code, 354);
  const message = "Subject: allow-list\r\n\r\nx\r\n";
  await c.send(stuff(message));
  const id = queuedId(await c.readReply());
  const [msg] = await readSpool(server.spool);
  assert.ok(msg);
  assert.equal(msg.id, id);
  await assertStored(msg, message);
  assert.deepEqual(msg.meta.rcptTo, ["a@example.com", "joe@keep.example"]);
  // With only refused recipients there is no transaction to send DATA to.
  assert.equal((await c.command("MAIL FROM:<s@example.org>")).code, 250);
  assert.match((await c.command("RCPT TO:<z@example.com>")).raw, /^550 5\.1\.1 /);
  assert.match((await c.command("DATA")).raw, /^503 5\.5\.1/);
  assert.equal((await readSpool(server.spool)).length, 1);
});

Deno.test("e2e accept-rcpt: VRFY of a bare user name is judged by the allow-list", async () => {
  await using server = await startServer(["--accept-rcpt", "^Ok$"]);
  const { c } = await ehlo(server);
  await using _ = c;
  assert.match((await c.command("VRFY Ok")).raw, /^250 2\.1\.5 <Ok>/);
  assert.match((await c.command("VRFY Bob")).raw, /^550 5\.1\.1 <Bob>/);
});

Deno.test("e2e accept-rcpt: without the flag VRFY answers 252 2.5.0 and any recipient is accepted", async () => {
  await using server = await startServer();
  const { c } = await ehlo(server);
  await using _ = c;
  assert.match((await c.command("VRFY a@example.com")).raw, /^252 2\.5\.0 /);
  assert.match((await c.command("VRFY b@example.com")).raw, /^252 2\.5\.0 /);
  assert.match((await c.command("VRFY Ok")).raw, /^252 2\.5\.0 /);
  const message = "Subject: anyone\r\n\r\nx\r\n";
  queuedId(await transaction(c, "s@example.org", ["b@example.com"], stuff(message)));
  const [msg] = await readSpool(server.spool);
  assert.ok(msg);
  await assertStored(msg, message);
  assert.deepEqual(msg.meta.rcptTo, ["b@example.com"]);
});

Deno.test("e2e proxy: a trusted client sees XCLIENT/XFORWARD; XCLIENT restarts with 220 and replaces client and helo", async () => {
  await using server = await startServer(["--trust-proxy", "127.0.0.0/8", "--hostname", "mx.test"]);
  const { c, keywords } = await ehlo(server);
  await using _ = c;
  assert.ok(keywords.includes("XCLIENT"), keywords.join(" "));
  assert.ok(keywords.includes("XFORWARD"), keywords.join(" "));
  const r = await c.command(
    "XCLIENT ADDR=192.0.2.7 NAME=mail.example.org PORT=4242 HELO=relay.example.org",
  );
  assert.equal(r.code, 220, r.raw);
  assert.match(r.raw, /^220 mx\.test /);
  // Postfix semantics: the HELO given by XCLIENT counts, MAIL may follow directly.
  const message = "Subject: via xclient\r\n\r\nx\r\n";
  const id = queuedId(await transaction(c, "a@example.com", ["b@example.com"], stuff(message)));
  const [msg] = await readSpool(server.spool);
  assert.ok(msg);
  assert.equal(msg.id, id);
  await assertStored(msg, message);
  assert.deepEqual(msg.meta.client, { address: "192.0.2.7", port: 4242, name: "mail.example.org" });
  assert.equal(msg.meta.helo, "relay.example.org");
  assert.equal(msg.meta.server.port, server.port);
  assert.equal(msg.meta.xforward, undefined);
  await server.waitForStderr(/xclient/);
});

Deno.test("e2e proxy: XCLIENT LOGIN and PROTO make the session ESMTPA, authenticated as XCLIENT", async () => {
  await using server = await startServer(["--trust-proxy", "127.0.0.0/8", "--require-auth"]);
  const c = await RawClient.connect(server.port);
  await using _ = c;
  assert.equal((await c.readReply()).code, 220);
  assert.match(
    (await c.command("XCLIENT LOGIN=joe PROTO=ESMTP HELO=relay.example.org")).raw,
    /^220 /,
  );
  // --require-auth lets MAIL through; AUTH is refused as AUTH twice is.
  assert.match((await c.command("AUTH PLAIN AGpvZQBwdw==")).raw, /^503 5\.5\.1 /);
  const message = "Subject: xclient login\r\n\r\nx\r\n";
  queuedId(await transaction(c, "a@example.com", ["b@example.com"], stuff(message)));
  const [msg] = await readSpool(server.spool);
  assert.ok(msg);
  await assertStored(msg, message);
  assert.deepEqual(msg.meta.auth, { mechanism: "XCLIENT", username: "joe" });
  assert.equal(Object.hasOwn(msg.meta.client, "name"), false, "no NAME, no client.name");
  assert.equal(msg.meta.protocol, "ESMTPA");
  assert.equal(msg.meta.helo, "relay.example.org");
  // Values Postfix would refuse, then LOGIN=[UNAVAILABLE] clears the login.
  for (const bad of ["ADDR=300.1.1.1", "ADDR=IPV6:nope", "PORT=65536", "PROTO=HTTP"]) {
    assert.match((await c.command(`XCLIENT ${bad}`)).raw, /^501 5\.5\.4 /, bad);
  }
  for (const bad of ["ADDR=300.1.1.1", "ADDR=IPV6:nope", "PORT=x", `PROTO=${"P".repeat(65)}`]) {
    assert.match((await c.command(`XFORWARD ${bad}`)).raw, /^501 5\.5\.4 /, bad);
  }
  assert.match((await c.command("XCLIENT LOGIN=[UNAVAILABLE] PROTO=SMTP")).raw, /^220 /);
  assert.match((await c.command("MAIL FROM:<a@example.com>")).raw, /^530 5\.7\.0 /);
});

Deno.test("e2e proxy: XFORWARD attributes are stored xtext-decoded, for one transaction", async () => {
  await using server = await startServer(["--trust-proxy", "127.0.0.0/8"]);
  const { c } = await ehlo(server, "proxy.example");
  await using _ = c;
  assert.match(
    (await c.command("XFORWARD ADDR=198.51.100.9 NAME=relay+2Bone.example")).raw,
    /^250 2\.0\.0/,
  );
  assert.match(
    (await c.command("XFORWARD PROTO=ESMTP HELO=h+20e+3Dlo SOURCE=REMOTE IDENT=ABC123")).raw,
    /^250 2\.0\.0/,
  );
  const message = "Subject: via xforward\r\n\r\nx\r\n";
  const first = queuedId(await transaction(c, "a@example.com", ["b@example.com"], stuff(message)));
  const second = queuedId(await transaction(c, "a@example.com", ["b@example.com"], stuff(message)));
  const stored = await readSpool(server.spool);
  assert.deepEqual(stored.map((m) => m.id), [first, second]);
  await assertStored(stored[0]!, message);
  await assertStored(stored[1]!, message);
  assert.deepEqual(stored[0]!.meta.xforward, {
    ADDR: "198.51.100.9",
    NAME: "relay+one.example",
    PROTO: "ESMTP",
    HELO: "h e=lo",
    SOURCE: "REMOTE",
    IDENT: "ABC123",
  });
  // XFORWARD leaves the recorded client alone.
  assert.equal(stored[0]!.meta.client.address, "127.0.0.1");
  assert.equal(stored[0]!.meta.helo, "proxy.example");
  assert.equal(stored[1]!.meta.xforward, undefined, "XFORWARD data ends with its transaction");
});

Deno.test("e2e proxy: an untrusted client is not offered XCLIENT/XFORWARD and gets 550 5.7.0", async () => {
  await using server = await startServer(["--trust-proxy", "127.0.0.2/32"]);
  const { c, keywords } = await ehlo(server, "plain.example");
  await using _ = c;
  assert.ok(!keywords.includes("XCLIENT"), keywords.join(" "));
  assert.ok(!keywords.includes("XFORWARD"), keywords.join(" "));
  assert.match((await c.command("XCLIENT ADDR=192.0.2.7 HELO=forged.example")).raw, /^550 5\.7\.0/);
  assert.match((await c.command("XFORWARD ADDR=192.0.2.8 NAME=forged")).raw, /^550 5\.7\.0/);
  const message = "Subject: unchanged\r\n\r\nx\r\n";
  queuedId(await transaction(c, "a@example.com", ["b@example.com"], stuff(message)));
  const [msg] = await readSpool(server.spool);
  assert.ok(msg);
  await assertStored(msg, message);
  assert.equal(msg.meta.client.address, "127.0.0.1");
  assert.equal(msg.meta.helo, "plain.example");
  assert.equal(msg.meta.xforward, undefined);
});

Deno.test("e2e proxy: IPv6 — ::1/128 trusted on a [::1] listener, 127.0.0.0/8 not trusting ::1", async () => {
  await using trusted = await startServer(["--listen", "[::1]:0", "--trust-proxy", "::1/128"]);
  assert.equal(trusted.ready.listeners[0]!.address, "::1");
  {
    const { c, keywords } = await ehloOn(trusted.port, "::1");
    await using _ = c;
    assert.ok(keywords.includes("XCLIENT"), keywords.join(" "));
    assert.equal((await c.command("XCLIENT ADDR=IPV6:2001:db8::7 HELO=v6.example")).code, 220);
    const message = "Subject: v6\r\n\r\nx\r\n";
    queuedId(await transaction(c, "a@example.com", ["b@example.com"], stuff(message)));
    const [msg] = await readSpool(trusted.spool);
    assert.ok(msg);
    await assertStored(msg, message);
    // Postfix strips the IPV6: tag of XCLIENT ADDR (smtpd.c xclient_cmd).
    assert.equal(msg.meta.client.address, "2001:db8::7");
    assert.equal(msg.meta.helo, "v6.example");
    assert.equal(msg.meta.server.address, "::1");
    // Bracketed as in the listening line, so the port stands apart.
    await trusted.waitForStderr(
      new RegExp(`connection opened .*listener=\\[::1\\]:${trusted.port} `),
    );
  }
  await using untrusted = await startServer([
    "--listen",
    "[::1]:0",
    "--trust-proxy",
    "127.0.0.0/8",
  ]);
  const { c, keywords } = await ehloOn(untrusted.port, "::1", "v6client.example");
  await using _ = c;
  assert.ok(!keywords.includes("XCLIENT"), keywords.join(" "));
  assert.match((await c.command("XCLIENT ADDR=192.0.2.7")).raw, /^550 5\.7\.0/);
  const message = "Subject: v6 untrusted\r\n\r\nx\r\n";
  queuedId(await transaction(c, "a@example.com", ["b@example.com"], stuff(message)));
  const [msg] = await readSpool(untrusted.spool);
  assert.ok(msg);
  await assertStored(msg, message);
  assert.equal(msg.meta.client.address, "::1");
  assert.equal(msg.meta.helo, "v6client.example");
});

// --- A private Postfix relaying through smtpd -------------------------------------------------

const POSTFIX = findOnPath("postfix");
const SENDMAIL = findOnPath("sendmail");

/** Why the Postfix relay test cannot run here, or null. */
function postfixSkipReason(): string | null {
  if (!POSTFIX || !SENDMAIL) return "postfix/sendmail not installed";
  if (Deno.build.os !== "linux") return "the private Postfix instance is set up for Linux only";
  if (Deno.uid() !== 0) {
    return "starting a private Postfix master needs root (it drops to mail_owner)";
  }
  const hasUser = new Deno.Command("getent", { args: ["passwd", "postfix"], stdout: "null" })
    .outputSync().success;
  const hasGroup = new Deno.Command("getent", { args: ["group", "postdrop"], stdout: "null" })
    .outputSync().success;
  if (!hasUser || !hasGroup) return "no postfix user or postdrop group";
  return null;
}

const SKIP = (() => {
  try {
    return postfixSkipReason();
  } catch (e: unknown) {
    return `cannot probe postfix: ${(e as Error).message}`;
  }
})();
if (SKIP) {
  Deno.stderr.writeSync(new TextEncoder().encode(`skip "Postfix relays with XFORWARD": ${SKIP}\n`));
}

/** Every service chroot-free, no inet listener: nothing binds a port but smtpd. */
const MASTER_CF = `
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
`;

/** A port that was free a moment ago (Postfix's smtpd cannot take port 0). */
function freePort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return port;
}

async function run(cmd: string, args: string[], stdin?: string, timeoutMs = 30_000) {
  const child = new Deno.Command(cmd, {
    args,
    stdin: stdin === undefined ? "null" : "piped",
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(timeoutMs),
  }).spawn();
  if (stdin !== undefined) {
    const w = child.stdin.getWriter();
    await w.write(new TextEncoder().encode(stdin));
    await w.close();
  }
  const out = await child.output();
  const dec = new TextDecoder();
  return { code: out.code, out: dec.decode(out.stdout) + dec.decode(out.stderr) };
}

Deno.test({
  name: "e2e proxy: Postfix relays through smtpd with smtp_send_xforward_command = yes",
  ignore: SKIP !== null,
  fn: async () => {
    await using server = await startServer([
      "--trust-proxy",
      "127.0.0.0/8",
      "--log-level",
      "debug",
    ]);
    const dir = await Deno.makeTempDir({ prefix: "smtpd-postfix-" });
    const conf = `${dir}/conf`;
    let started = false;
    try {
      await Deno.mkdir(conf);
      await Deno.mkdir(`${dir}/queue`);
      await Deno.mkdir(`${dir}/data`);
      await Deno.chmod(dir, 0o755);
      await Deno.chmod(conf, 0o755);
      // master.lock lives in data_directory, which must belong to mail_owner.
      await run("chown", ["postfix", `${dir}/data`]);
      // Postfix's own smtpd on a loopback port: mail submitted over SMTP has a HELO and address.
      const postfixPort = freePort();
      await Deno.writeTextFile(
        `${conf}/master.cf`,
        `127.0.0.1:${postfixPort} inet n - n - - smtpd\n${MASTER_CF}`,
      );
      await Deno.writeTextFile(
        `${conf}/main.cf`,
        [
          "compatibility_level = 3.6",
          `queue_directory = ${dir}/queue`,
          `data_directory = ${dir}/data`,
          "mail_owner = postfix",
          "setgid_group = postdrop",
          "myhostname = relay.test",
          "mydomain = relay.test",
          "myorigin = relay.test",
          "mydestination =",
          "inet_interfaces = loopback-only",
          "inet_protocols = ipv4",
          `relayhost = [127.0.0.1]:${server.port}`,
          "smtp_send_xforward_command = yes",
          "smtp_dns_support_level = disabled",
          "smtp_tls_security_level = none",
          `maillog_file = ${dir}/maillog`,
          `maillog_file_prefixes = ${dir}`,
          "mynetworks = 127.0.0.0/8",
          "smtpd_banner = $myhostname ESMTP",
          "alias_maps =",
          "alias_database =",
          "biff = no",
          "",
        ].join("\n"),
      );
      const start = await run(POSTFIX!, ["-c", conf, "start"]);
      started = start.code === 0;
      assert.equal(start.code, 0, `postfix start: ${start.out}`);
      const body = "Subject: relayed through postfix\nFrom: alice@example.com\n\n" +
        ".a dot line\nhello via postfix\n";
      const send = await run(SENDMAIL!, [
        "-C",
        conf,
        "-f",
        "alice@example.com",
        "bob@example.com",
      ], body);
      assert.equal(send.code, 0, `sendmail: ${send.out}`);
      const log = () => Deno.readTextFile(`${dir}/maillog`).catch(() => "(no maillog)");
      const [msg] = await poll("Postfix to relay the message", 60_000, async () => {
        const msgs = await readSpool(server.spool);
        return msgs.length > 0 ? msgs : undefined;
      }).catch(async (e: unknown) => {
        throw new Error(`${(e as Error).message}\nmaillog:\n${await log()}\n${server.stderr()}`);
      });
      assert.ok(msg);
      await assertStored(msg, msg.eml); // .json agrees with the .eml
      const eml = new TextDecoder().decode(msg.eml);
      assert.ok(
        eml.endsWith("\r\n\r\n.a dot line\r\nhello via postfix\r\n"),
        `body arrives CRLF, unstuffed: ${JSON.stringify(eml)}`,
      );
      assert.match(eml, /^Received: by relay\.test \(Postfix/m);
      assert.match(eml, /^Subject: relayed through postfix\r$/m);
      assert.equal(msg.meta.mailFrom, "alice@example.com");
      assert.deepEqual(msg.meta.rcptTo, ["bob@example.com"]);
      assert.equal(msg.meta.helo, "relay.test");
      assert.equal(msg.meta.client.address, "127.0.0.1");
      const transcript = () =>
        server.stderr().split("\n").filter((l) => /DEBUG\s+[<>] X/.test(l)).join("\n");
      // A local submission: Postfix forwards what it knows, SOURCE=LOCAL.
      assert.equal(msg.meta.xforward?.SOURCE, "LOCAL", transcript());

      // Now over SMTP into Postfix's smtpd: the relayed XFORWARD carries the
      // original client's HELO, address and protocol.
      {
        const c = await RawClient.connect(postfixPort);
        await using _ = c;
        assert.equal((await c.readReply()).code, 220);
        assert.equal((await c.command("EHLO origin.example")).code, 250);
        const r = await transaction(
          c,
          "carol@example.com",
          ["dave@example.com"],
          stuff("Subject: second hop\r\n\r\nvia postfix smtpd\r\n"),
        );
        assert.equal(r.code, 250, r.raw);
        await c.command("QUIT");
      }
      const relayed = await poll("Postfix to relay the SMTP message", 60_000, async () => {
        const msgs = await readSpool(server.spool);
        return msgs.length > 1 ? msgs[1] : undefined;
      }).catch(async (e: unknown) => {
        throw new Error(`${(e as Error).message}\nmaillog:\n${await log()}\n${server.stderr()}`);
      });
      await assertStored(relayed, relayed.eml);
      assert.ok(new TextDecoder().decode(relayed.eml).endsWith("\r\n\r\nvia postfix smtpd\r\n"));
      assert.match(new TextDecoder().decode(relayed.eml), /^Received: from origin\.example /m);
      assert.equal(relayed.meta.mailFrom, "carol@example.com");
      assert.deepEqual(relayed.meta.rcptTo, ["dave@example.com"]);
      const xf = relayed.meta.xforward;
      assert.ok(xf, transcript());
      assert.equal(xf.HELO, "origin.example", transcript());
      assert.equal(xf.ADDR, "127.0.0.1", transcript());
      assert.equal(xf.PROTO, "ESMTP", transcript());
      for (const key of Object.keys(xf)) {
        assert.ok(
          ["NAME", "ADDR", "PORT", "PROTO", "HELO", "IDENT", "SOURCE"].includes(key),
          `unexpected XFORWARD attribute ${key}`,
        );
      }
      // XFORWARD never replaces what smtpd itself saw.
      assert.equal(relayed.meta.client.address, "127.0.0.1");
      assert.equal(relayed.meta.helo, "relay.test");
    } finally {
      if (started) await run(POSTFIX!, ["-c", conf, "stop"]).catch(() => null);
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    }
  },
});
