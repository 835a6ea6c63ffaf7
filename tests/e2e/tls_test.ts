/**
 * STARTTLS (RFC 3207), implicit TLS (`--listen-tls`) and certificates
 * (SPEC §2 `--tls-cert`/`--tls-key`/`--tls-self-signed`/`--require-tls`),
 * end to end with openssl s_client, swaks, python3 smtplib, curl, msmtp and
 * raw sockets. Every real client verifies the server against the published
 * `<spool>/.tls/cert.pem` (or the user's certificate), never `-k`/`--insecure`;
 * every test checks what landed in the spool.
 */

import assert from "node:assert/strict";
import { curl, python, swaks, toolTest } from "../helpers/clients.ts";
import { assertStored, poll, runCli, sha256Hex, startServer } from "../helpers/launcher.ts";
import { RawClient } from "../helpers/raw_client.ts";
import {
  b64,
  binTest,
  extensions,
  greetAndEhlo,
  HOSTNAME,
  listenerPort,
  makeCertPair,
  msmtpRun,
  openssl,
  sendMessage,
  SmtpConn,
  startTlsServer,
  writeAuthFile,
} from "./_tls_auth_helpers.ts";

const TLS_PROTOCOL = /^TLSv1\.[23]$/;

// deno-lint-ignore no-explicit-any
function assertTlsMeta(meta: Record<string, any>, protocol = TLS_PROTOCOL): void {
  assert.ok(meta.tls && typeof meta.tls === "object", `tls is ${JSON.stringify(meta.tls)}`);
  assert.match(meta.tls.protocol, protocol);
  assert.equal(typeof meta.tls.cipher, "string");
  assert.match(meta.tls.cipher, /^[A-Z0-9_-]{6,}$/, `cipher ${meta.tls.cipher}`);
}

/** A message that needs no dot-stuffing, CRLF line ends. */
function message(subject: string): string {
  return `Date: Mon, 23 Nov 2026 06:53:00 +0000\r\nFrom: a@example.com\r\nTo: b@example.com\r\n` +
    `Subject: ${subject}\r\n` +
    `Message-ID: <${subject.replaceAll(" ", "-")}@example.com>\r\n\r\nbody of ${subject}\r\n`;
}

binTest(
  "e2e tls: openssl s_client STARTTLS verifies cert.pem; EHLO after TLS has AUTH, no STARTTLS",
  [],
  ["openssl"],
  async () => {
    await using t = await startTlsServer();
    // The fingerprint in the start-up line is the one of the published file.
    const logged = (await t.server.waitForStderr(/sha256=([0-9A-F]{2}(?::[0-9A-F]{2}){31})/))[1];
    const fp = await openssl(["x509", "-noout", "-fingerprint", "-sha256", "-in", t.certPath]);
    assert.equal(fp.code, 0, fp.stderr);
    assert.equal(logged, /=([0-9A-F:]+)\s*$/i.exec(fp.stdout)?.[1]?.toUpperCase(), fp.stdout);

    const lf = message("s_client").replaceAll("\r\n", "\n");
    const input = "EHLO client.example\nMAIL FROM:<a@example.com>\nRCPT TO:<b@example.com>\n" +
      "DATA\n" + lf + ".\nQUIT\n";
    const r = await openssl([
      "s_client",
      "-starttls",
      "smtp",
      "-name",
      "starttls.example",
      "-connect",
      `127.0.0.1:${t.plainPort}`,
      "-CAfile",
      t.certPath,
      "-verify_return_error",
      "-verify_ip",
      "127.0.0.1",
      "-crlf",
      "-quiet",
    ], input);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.match(r.stderr, /verify return:1/);
    // Everything on stdout came after the handshake (s_client consumes the first EHLO).
    const after = r.stdout.slice(r.stdout.indexOf(`250-${HOSTNAME} Hello client.example`));
    assert.ok(after.length < r.stdout.length + 1 && after.startsWith("250-"), r.stdout);
    const ehlo = after.split(/\r?\n/).filter((l) => /^250[- ]/.test(l));
    assert.ok(ehlo.some((l) => /^250[- ]AUTH PLAIN LOGIN CRAM-MD5$/.test(l)), after);
    assert.ok(!/STARTTLS/.test(after), `STARTTLS offered again after TLS: ${after}`);
    assert.match(after, /^250 2\.0\.0 Ok: queued as \S+\r?$/m);
    assert.match(after, /^221 /m);

    const [msg, ...rest] = await t.server.waitForMessages(1);
    assert.ok(msg);
    assert.equal(rest.length, 0);
    await assertStored(msg, lf.replaceAll("\n", "\r\n"));
    assertTlsMeta(msg.meta, /^TLSv1\.3$/);
    assert.equal(msg.meta.protocol, "ESMTPS");
    assert.equal(msg.meta.auth, null);
    assert.equal(msg.meta.helo, "client.example");
    assert.deepEqual(msg.meta.server, { address: "127.0.0.1", port: t.plainPort });
  },
);

binTest(
  "e2e tls: openssl s_client refuses the server when its CAfile is another certificate",
  [],
  ["openssl"],
  async () => {
    await using t = await startTlsServer();
    const other = await makeCertPair(t.server.dir, "other");
    const r = await openssl([
      "s_client",
      "-connect",
      `127.0.0.1:${t.tlsPort}`,
      "-CAfile",
      other.cert,
      "-verify_return_error",
      "-quiet",
    ], "EHLO x\nMAIL FROM:<a@example.com>\nRCPT TO:<b@example.com>\nDATA\nx\n.\nQUIT\n");
    assert.notEqual(r.code, 0, r.stdout);
    assert.match(r.stderr, /verify error|certificate verify failed/i);
    assert.ok(!/^250 /m.test(r.stdout), r.stdout);
    // The server survives the aborted handshake and serves a verifying client.
    await using c = await SmtpConn.connectTls(t.tlsPort, [t.certPem]);
    await greetAndEhlo(c);
    const reply = await sendMessage(c, "a@example.com", "b@example.com", message("after refusal"));
    assert.equal(reply.code, 250, reply.raw);
    const msgs = await t.server.messages();
    assert.equal(msgs.length, 1);
    await assertStored(msgs[0]!, message("after refusal"));
    assertTlsMeta(msgs[0]!.meta);
  },
);

toolTest("e2e tls: swaks -tls and --tls-on-connect with --tls-verify", ["swaks"], async () => {
  await using t = await startTlsServer();
  const file = `${t.server.dir}/swaks.eml`;
  const runs: [string, number, string[]][] = [
    ["swaks starttls", t.plainPort, ["-tls"]],
    ["swaks tls-on-connect", t.tlsPort, ["--tls-on-connect"]],
  ];
  for (const [subject, port, mode] of runs) {
    // swaks ends the data with CRLF "." CRLF itself: the file holds the message minus its last CRLF.
    await Deno.writeTextFile(file, message(subject).slice(0, -2));
    const r = await swaks(port, [
      ...mode,
      "--tls-verify",
      "--tls-ca-path",
      t.certPath,
      "--helo",
      "swaks.example",
      "--from",
      "a@example.com",
      "--to",
      "b@example.com",
      "--data",
      file,
    ]);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.match(r.stdout, /TLS started with cipher TLSv1\.3/);
  }
  const msgs = await t.server.waitForMessages(2);
  assert.equal(msgs.length, 2);
  for (const [i, [subject, port]] of runs.entries()) {
    const m = msgs.find((x) => x.meta.headers.subject === subject);
    assert.ok(m, `message ${i} (${subject}) stored`);
    await assertStored(m, message(subject));
    assertTlsMeta(m.meta, /^TLSv1\.3$/);
    assert.equal(m.meta.protocol, "ESMTPS");
    assert.equal(m.meta.helo, "swaks.example");
    assert.equal(m.meta.server.port, port);
  }
});

const PY_TLS = `
import base64, smtplib, ssl, sys
mode, port, cafile, user, password, data = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5], base64.b64decode(sys.argv[6])
ctx = ssl.create_default_context(cafile=cafile)
if mode == "starttls":
    s = smtplib.SMTP("127.0.0.1", port, local_hostname="py.example", timeout=30)
    s.ehlo()
    assert s.has_extn("starttls"), s.esmtp_features
    assert not s.has_extn("auth") or True
    code, _ = s.starttls(context=ctx)
    assert code == 220, code
    s.ehlo()
    assert not s.has_extn("starttls"), "STARTTLS offered after TLS"
else:
    s = smtplib.SMTP_SSL("127.0.0.1", port, local_hostname="py.example", timeout=30, context=ctx)
    s.ehlo()
code, _ = s.login(user, password)
assert code == 235, code
print(s.sock.version(), s.sock.cipher()[0])
refused = s.sendmail("a@example.com", ["b@example.com"], data)
assert refused == {}, refused
s.quit()
`;

toolTest(
  "e2e tls: python3 smtplib starttls(context) and SMTP_SSL verify cert.pem, then login()",
  ["python3"],
  async () => {
    await using t = await startTlsServer([
      "--auth-file",
      await writeAuthFile(await Deno.makeTempDir({ prefix: "smtpd-auth-" }), { bob: "pw-py" }),
    ]);
    const runs: [string, number][] = [["starttls", t.plainPort], ["ssl", t.tlsPort]];
    const seen: string[] = [];
    for (const [mode, port] of runs) {
      const r = await python(PY_TLS, [
        mode,
        String(port),
        t.certPath,
        "bob",
        "pw-py",
        b64(message(`python ${mode}`)),
      ]);
      assert.equal(r.code, 0, r.stderr);
      seen.push(r.stdout.trim());
    }
    const msgs = await t.server.waitForMessages(2);
    assert.equal(msgs.length, 2);
    for (const [i, [mode, port]] of runs.entries()) {
      const m = msgs.find((x) => x.meta.headers.subject === `python ${mode}`);
      assert.ok(m, `python ${mode} stored`);
      await assertStored(m, message(`python ${mode}`));
      assertTlsMeta(m.meta, /^TLSv1\.3$/);
      // The client's own view of the session equals what the server recorded.
      assert.equal(seen[i], `${m.meta.tls.protocol} ${m.meta.tls.cipher}`);
      // smtplib prefers CRAM-MD5 when offered.
      assert.deepEqual(m.meta.auth, { mechanism: "CRAM-MD5", username: "bob" });
      assert.equal(m.meta.protocol, "ESMTPSA");
      assert.equal(m.meta.helo, "py.example");
      assert.equal(m.meta.server.port, port);
    }
  },
);

toolTest(
  "e2e tls: curl smtps:// and smtp:// --ssl-reqd with --cacert and --user",
  ["curl"],
  async () => {
    await using t = await startTlsServer([
      "--auth-file",
      await writeAuthFile(await Deno.makeTempDir({ prefix: "smtpd-auth-" }), { carol: "pw:curl" }),
    ]);
    const file = `${t.server.dir}/curl.eml`;
    const runs: [string, string, string[], string][] = [
      ["curl smtps", `smtps://127.0.0.1:${t.tlsPort}/curl.example`, [], "LOGIN"],
      ["curl ssl-reqd", `smtp://127.0.0.1:${t.plainPort}/curl.example`, ["--ssl-reqd"], "PLAIN"],
    ];
    for (const [subject, url, extra, mech] of runs) {
      await Deno.writeTextFile(file, message(subject));
      const r = await curl(url, [
        ...extra,
        "--cacert",
        t.certPath,
        "--user",
        "carol:pw:curl",
        "--login-options",
        `AUTH=${mech}`,
        "--mail-from",
        "a@example.com",
        "--mail-rcpt",
        "b@example.com",
        "-T",
        file,
      ]);
      assert.equal(r.code, 0, r.stderr);
    }
    const msgs = await t.server.waitForMessages(2);
    assert.equal(msgs.length, 2);
    for (const [subject, url, , mech] of runs) {
      const m = msgs.find((x) => x.meta.headers.subject === subject);
      assert.ok(m, `${subject} stored`);
      await assertStored(m, message(subject));
      assertTlsMeta(m.meta);
      assert.deepEqual(m.meta.auth, { mechanism: mech, username: "carol" });
      assert.equal(m.meta.protocol, "ESMTPSA");
      assert.equal(m.meta.helo, "curl.example");
      assert.equal(m.meta.server.port, Number(/:(\d+)\//.exec(url)![1]));
    }
    // Without --cacert curl does not trust the self-signed certificate: verification is real.
    await Deno.writeTextFile(file, message("curl untrusted"));
    const bad = await curl(`smtps://127.0.0.1:${t.tlsPort}/curl.example`, [
      "--mail-from",
      "a@example.com",
      "--mail-rcpt",
      "b@example.com",
      "-T",
      file,
    ]);
    assert.equal(bad.code, 60, `curl exit ${bad.code}: ${bad.stderr}`);
    assert.equal((await t.server.messages()).length, 2);
  },
);

toolTest(
  "e2e tls: msmtp STARTTLS and TLS-on-connect with --tls-trust-file",
  ["msmtp"],
  async () => {
    await using t = await startTlsServer([
      "--auth-file",
      await writeAuthFile(await Deno.makeTempDir({ prefix: "smtpd-auth-" }), { dave: "pw-msmtp" }),
    ]);
    const runs: [string, number, string][] = [
      ["msmtp starttls", t.plainPort, "on"],
      ["msmtp tls", t.tlsPort, "off"],
    ];
    for (const [subject, port, starttls] of runs) {
      const r = await msmtpRun([
        "--host=127.0.0.1",
        `--port=${port}`,
        "--tls=on",
        `--tls-starttls=${starttls}`,
        `--tls-trust-file=${t.certPath}`,
        "--auth=plain",
        "--user=dave",
        "--passwordeval=echo pw-msmtp",
        "--domain=msmtp.example",
        "--from=a@example.com",
        "--",
        "b@example.com",
      ], message(subject).replaceAll("\r\n", "\n"));
      assert.equal(r.code, 0, r.stdout + r.stderr);
    }
    const msgs = await t.server.waitForMessages(2);
    assert.equal(msgs.length, 2);
    for (const [subject, port] of runs) {
      const m = msgs.find((x) => x.meta.headers.subject === subject);
      assert.ok(m, `${subject} stored`);
      await assertStored(m, message(subject));
      assertTlsMeta(m.meta);
      assert.deepEqual(m.meta.auth, { mechanism: "PLAIN", username: "dave" });
      assert.equal(m.meta.protocol, "ESMTPSA");
      assert.equal(m.meta.helo, "msmtp.example");
      assert.equal(m.meta.server.port, port);
    }
  },
);

binTest(
  "e2e tls: a user-supplied --tls-cert/--tls-key pair serves STARTTLS and implicit TLS",
  ["python3"],
  ["openssl"],
  async () => {
    const dir = await Deno.makeTempDir({ prefix: "smtpd-cert-" });
    try {
      const pair = await makeCertPair(dir, "user");
      const certPem = await Deno.readTextFile(pair.cert);
      await using server = await startServer([
        "--listen",
        "127.0.0.1:0",
        "--listen-tls",
        "127.0.0.1:0",
        "--hostname",
        HOSTNAME,
        "--tls-cert",
        pair.cert,
        "--tls-key",
        pair.key,
      ]);
      assert.deepEqual(server.ready.listeners.map((l) => [l.address, l.tls]), [
        ["127.0.0.1", false],
        ["127.0.0.1", true],
      ]);
      // STARTTLS on the plain port, verified against the user's certificate.
      await using c = await SmtpConn.connect(listenerPort(server, false));
      assert.ok(extensions(await greetAndEhlo(c)).includes("STARTTLS"));
      assert.match((await c.command("STARTTLS")).raw, /^220 2\.0\.0 /);
      await c.startTls([certPem]);
      assert.ok(!extensions(await c.command("EHLO client.example")).includes("STARTTLS"));
      assert.equal(
        (await sendMessage(c, "a@x.example", "b@x.example", message("user st"))).code,
        250,
      );
      // Implicit TLS, verified by python's default context with the user's certificate as CA.
      const r = await python(PY_TLS, [
        "ssl",
        String(listenerPort(server, true)),
        pair.cert,
        "any",
        "thing",
        b64(message("user ssl")),
      ]);
      assert.equal(r.code, 0, r.stderr);
      const msgs = await server.waitForMessages(2);
      const st = msgs.find((m) => m.meta.headers.subject === "user st");
      const ssl = msgs.find((m) => m.meta.headers.subject === "user ssl");
      assert.ok(st && ssl);
      await assertStored(st, message("user st"));
      await assertStored(ssl, message("user ssl"));
      assertTlsMeta(st.meta, /^TLSv1\.3$/);
      assertTlsMeta(ssl.meta, /^TLSv1\.3$/);
      assert.equal(st.meta.protocol, "ESMTPS");
      assert.equal(ssl.meta.protocol, "ESMTPSA");
      assert.deepEqual(ssl.meta.auth, { mechanism: "CRAM-MD5", username: "any" });
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
);

binTest(
  "e2e tls: a key that does not match, or a missing file, exits 1 with one line naming it",
  [],
  ["openssl"],
  async () => {
    const dir = await Deno.makeTempDir({ prefix: "smtpd-cert-" });
    try {
      const a = await makeCertPair(dir, "a");
      const b = await makeCertPair(dir, "b");
      const cases: [string, string[], string][] = [
        ["mismatched key", ["--tls-cert", a.cert, "--tls-key", b.key], b.key],
        ["missing cert", ["--tls-cert", `${dir}/nope.crt`, "--tls-key", a.key], `${dir}/nope.crt`],
        ["missing key", ["--tls-cert", a.cert, "--tls-key", `${dir}/nope.key`], `${dir}/nope.key`],
      ];
      for (const [what, args, named] of cases) {
        const spool = `${dir}/spool-${what.replaceAll(" ", "-")}`;
        const r = await runCli(
          [
            "--listen",
            "127.0.0.1:0",
            "--spool",
            spool,
            "--ready-file",
            `${dir}/ready.json`,
            ...args,
          ],
          {},
          { timeoutMs: 30_000 },
        );
        assert.equal(r.code, 1, `${what}: exit ${r.code}, stderr ${r.stderr}`);
        const lines = r.stderr.trim().split("\n");
        assert.equal(lines.length, 1, `${what}: one line, got ${r.stderr}`);
        assert.ok(lines[0]!.includes(named), `${what}: names ${named}: ${lines[0]}`);
        assert.ok(!/\bat .*:\d+:\d+/.test(r.stderr), `${what}: no stack trace`);
        await assert.rejects(Deno.stat(`${dir}/ready.json`), Deno.errors.NotFound);
        // Nothing was ever stored: no .json/.eml anywhere.
        const stored = await Array.fromAsync(Deno.readDir(spool)).catch(() => []);
        assert.deepEqual(stored.filter((e) => /\.(json|eml)$/.test(e.name)), [], what);
      }
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
);

Deno.test("e2e tls: commands pipelined after STARTTLS are discarded, never executed", async () => {
  await using t = await startTlsServer(["--log-level", "debug"]);
  await using c = await SmtpConn.connect(t.plainPort);
  await greetAndEhlo(c);
  // One write: a classic CVE-2011-0411 injection.
  await c.send(
    "STARTTLS\r\nRSET\r\nMAIL FROM:<injected@evil.example>\r\nRCPT TO:<victim@example.com>\r\n" +
      "DATA\r\nSubject: injected\r\n\r\nx\r\n.\r\n",
  );
  const ready = await c.readReply();
  assert.match(ready.raw, /^220 2\.0\.0 /);
  // startTls fails if any plaintext reply follows the 220, before or during the handshake.
  await c.startTls([t.certPem]);
  // Fresh session: no HELO known, no transaction carried over.
  assert.match((await c.command("MAIL FROM:<a@example.com>")).raw, /^503 5\.5\.1 /);
  assert.match((await c.command("DATA")).raw, /^503 5\.5\.1 /);
  const ehlo = await c.command("EHLO client.example");
  assert.equal(ehlo.code, 250);
  assert.ok(!extensions(ehlo).includes("STARTTLS"), ehlo.raw);
  const reply = await sendMessage(c, "a@example.com", "b@example.com", message("after injection"));
  assert.equal(reply.code, 250, reply.raw);
  assert.equal((await c.command("QUIT")).code, 221);
  const msgs = await t.server.waitForMessages(1);
  assert.equal(msgs.length, 1);
  await assertStored(msgs[0]!, message("after injection"));
  assert.equal(msgs[0]!.meta.mailFrom, "a@example.com");
  assertTlsMeta(msgs[0]!.meta);
  assert.equal(msgs[0]!.meta.protocol, "ESMTPS");
  // The transcript shows the pipelined commands were never parsed as commands.
  await t.server.waitForStderr(/< STARTTLS/);
  const log = t.server.stderr();
  assert.ok(!/< (RSET|MAIL FROM:<injected|RCPT TO:<victim)/.test(log), log);
  assert.ok(!/injected/.test(log), log);
});

Deno.test("e2e tls: a STARTTLS handshake that fails is logged like an implicit-TLS one", async () => {
  await using t = await startTlsServer();
  await using raw = await RawClient.connect(t.plainPort);
  assert.equal((await raw.readReply()).code, 220);
  assert.equal((await raw.command("EHLO client.example")).code, 250);
  assert.match((await raw.command("STARTTLS")).raw, /^220 2\.0\.0 /);
  await raw.send("EHLO still-plaintext.example\r\n"); // not a TLS ClientHello
  await poll("server closes the client", 10_000, () => raw.closed || undefined);
  const line = await t.server.waitForStderr(/^.*INFO {2}tls handshake failed .*$/im);
  assert.match(line[0], /conn=1 client=127\.0\.0\.1 error=/);
  await t.server.waitForStderr(/connection closed conn=1 .*reason="tls handshake failed" ms=\d+/);
});

Deno.test("e2e tls: plain text on the TLS port is logged once and the server keeps serving", async () => {
  await using t = await startTlsServer();
  // The ready file can come before the listening line has been read from the server's stderr.
  await t.server.waitForStderr(/INFO {2}listening /);
  const before = t.server.stderr().split("\n").length;
  await using raw = await RawClient.connect(t.tlsPort);
  await raw.send("EHLO plaintext.example\r\n");
  // The server gives up on the handshake and closes (a TLS alert may precede the close).
  await poll("server closes the plaintext client", 10_000, () => raw.closed || undefined);
  assert.ok(!/^\d{3}[ -]/m.test(raw.transcript), `no SMTP reply in plain text: ${raw.transcript}`);
  const line = await t.server.waitForStderr(/^.*INFO {2}tls handshake failed.*$/im);
  await t.server.waitForStderr(/connection closed conn=1 .*reason="tls handshake failed" ms=\d+/);
  const added = t.server.stderr().split("\n").slice(before - 1).filter((l) => l.trim() !== "");
  // One line about the failure, between the opened and closed lines every connection gets.
  assert.equal(added.length, 3, added.join("\n"));
  assert.match(added[0]!, /connection opened conn=1 /);
  assert.equal(added[1], line[0]);
  assert.match(added[2]!, /connection closed conn=1 /);
  assert.match(line[0], /127\.0\.0\.1/);

  await using c = await SmtpConn.connectTls(t.tlsPort, [t.certPem]);
  await greetAndEhlo(c);
  assert.equal(
    (await sendMessage(c, "a@example.com", "b@example.com", message("fresh"))).code,
    250,
  );
  const msgs = await t.server.waitForMessages(1);
  await assertStored(msgs[0]!, message("fresh"));
  assertTlsMeta(msgs[0]!.meta);
  assert.equal(msgs[0]!.meta.server.port, t.tlsPort);
});

Deno.test("e2e tls: a client that never handshakes is closed at --timeout", async () => {
  await using t = await startTlsServer(["--timeout", "1s"]);
  const started = Date.now();
  await using idle = await RawClient.connect(t.tlsPort);
  await poll("server closes the silent client", 10_000, () => idle.closed || undefined);
  const elapsed = Date.now() - started;
  assert.ok(elapsed >= 900 && elapsed < 8_000, `closed after ${elapsed} ms, --timeout 1s`);
  assert.equal(idle.transcript, "", "nothing sent to a client that never said hello");
  await t.server.waitForStderr(/tls handshake failed/i);

  await using c = await SmtpConn.connectTls(t.tlsPort, [t.certPem]);
  await greetAndEhlo(c);
  assert.equal((await sendMessage(c, "a@example.com", "b@example.com", message("next"))).code, 250);
  const msgs = await t.server.waitForMessages(1);
  await assertStored(msgs[0]!, message("next"));
  assertTlsMeta(msgs[0]!.meta);
});

Deno.test("e2e tls: --require-tls refuses MAIL and AUTH before STARTTLS with 530 5.7.0", async () => {
  await using t = await startTlsServer(["--require-tls"]);
  await using c = await SmtpConn.connect(t.plainPort);
  const plain = extensions(await greetAndEhlo(c));
  assert.ok(plain.includes("STARTTLS"), plain.join(","));
  assert.ok(!plain.some((e) => /^AUTH\b/.test(e)), `AUTH offered before TLS: ${plain}`);
  assert.match((await c.command("MAIL FROM:<a@example.com>")).raw, /^530 5\.7\.0 /);
  assert.match((await c.command(`AUTH PLAIN ${b64("\0u\0p")}`)).raw, /^530 5\.7\.0 /);
  assert.match((await c.command("STARTTLS")).raw, /^220 2\.0\.0 /);
  await c.startTls([t.certPem]);
  const secured = extensions(await c.command("EHLO client.example"));
  assert.ok(secured.includes("AUTH PLAIN LOGIN CRAM-MD5"), secured.join(","));
  assert.ok(!secured.includes("STARTTLS"));
  assert.match((await c.command(`AUTH PLAIN ${b64("\0u\0p")}`)).raw, /^235 2\.7\.0 /);
  assert.equal(
    (await sendMessage(c, "a@example.com", "b@example.com", message("req st"))).code,
    250,
  );

  // Implicit TLS already satisfies --require-tls.
  await using d = await SmtpConn.connectTls(t.tlsPort, [t.certPem]);
  await greetAndEhlo(d);
  assert.equal(
    (await sendMessage(d, "a@example.com", "b@example.com", message("req tls"))).code,
    250,
  );

  const msgs = await t.server.waitForMessages(2);
  assert.equal(msgs.length, 2);
  const st = msgs.find((m) => m.meta.headers.subject === "req st")!;
  const tls = msgs.find((m) => m.meta.headers.subject === "req tls")!;
  await assertStored(st, message("req st"));
  await assertStored(tls, message("req tls"));
  assert.equal(st.meta.protocol, "ESMTPSA");
  assert.deepEqual(st.meta.auth, { mechanism: "PLAIN", username: "u" });
  assert.equal(tls.meta.protocol, "ESMTPS");
  assert.equal(tls.meta.auth, null);
  assertTlsMeta(st.meta);
  assertTlsMeta(tls.meta);
});

Deno.test("e2e tls: a finished STARTTLS session does not hold up SIGTERM", async () => {
  const t = await startTlsServer();
  try {
    {
      await using c = await SmtpConn.connect(t.plainPort);
      await greetAndEhlo(c);
      assert.match((await c.command("STARTTLS")).raw, /^220 /);
      await c.startTls([t.certPem]);
      await c.command("EHLO client.example");
      assert.equal(
        (await sendMessage(c, "a@example.com", "b@example.com", message("q"))).code,
        250,
      );
      assert.equal((await c.command("QUIT")).code, 221);
      await c.readUntilClosed();
    }
    await t.server.waitForStderr(/connection closed conn=1/);
    const msgs = await t.server.messages();
    await assertStored(msgs[0]!, message("q"));
    assertTlsMeta(msgs[0]!.meta);
    // No session is open: SPEC §4's 10 s drain has nothing to wait for.
    const t0 = Date.now();
    t.server.signal("SIGTERM");
    assert.equal(await t.server.exited(5_000), 0);
    assert.ok(Date.now() - t0 < 5_000);
  } finally {
    await t[Symbol.asyncDispose]();
  }
});

Deno.test("e2e tls: the published cert.pem is the certificate the server presents", async () => {
  await using t = await startTlsServer();
  // Deno's TLS client trusts only cert.pem here: a handshake proves the match.
  await using c = await SmtpConn.connectTls(t.tlsPort, [t.certPem]);
  await greetAndEhlo(c);
  assert.equal((await sendMessage(c, "a@example.com", "b@example.com", message("pem"))).code, 250);
  const [msg] = await t.server.waitForMessages(1);
  await assertStored(msg!, message("pem"));
  assert.equal(msg!.meta.sha256, await sha256Hex(message("pem")));
  // A certificate the server does not hold is refused by the same client.
  await using other = await startTlsServer();
  await assert.rejects(SmtpConn.connectTls(t.tlsPort, [other.certPem]));
});

Deno.test("e2e tls: SIGTERM waits at most the 10 s drain for a client that never starts its TLS handshake", async () => {
  await using t = await startTlsServer();
  const stalled = await Deno.connect({ hostname: "127.0.0.1", port: t.tlsPort });
  try {
    await t.server.waitForStderr(/connection opened/);
    const signalled = Date.now();
    t.server.signal("SIGTERM");
    // Before, the 30 s handshake timeout held the exit back.
    assert.equal(await t.server.exited(25_000), 0);
    const took = Date.now() - signalled;
    assert.ok(took < 15_000, `exited after ${took} ms`);
  } finally {
    stalled.close();
  }
});

Deno.test("e2e tls: SIGTERM during a STARTTLS handshake sends no plaintext 421 (RFC 3207)", async () => {
  const t = await startTlsServer();
  try {
    const c = await SmtpConn.connect(t.plainPort);
    try {
      await greetAndEhlo(c);
      assert.match((await c.command("STARTTLS")).raw, /^220 /);
      // No ClientHello: the server sits in its handshake when the signal comes.
      t.server.signal("SIGTERM");
      const after = await c.readUntilClosed(20_000);
      assert.equal(after, "", "nothing may follow the 220 in plaintext");
    } finally {
      await c[Symbol.asyncDispose]();
    }
    assert.equal(await t.server.exited(20_000), 0);
  } finally {
    await t[Symbol.asyncDispose]();
  }
});
