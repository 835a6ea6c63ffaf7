/**
 * AUTH (RFC 4954; SPEC §2 `--auth-file`, `--require-auth`, §4 AUTH row):
 * PLAIN, LOGIN and CRAM-MD5 from swaks and python3 smtplib over verified
 * STARTTLS, every reply code of the SPEC from a raw socket, accept-any mode,
 * and secrets: a password never reaches a log or the spool.
 */

import assert from "node:assert/strict";
import { createHmac } from "node:crypto";
import { python, swaks, toolTest } from "../helpers/clients.ts";
import { assertStored, type ServerProc, startServer } from "../helpers/launcher.ts";
import {
  b64,
  extensions,
  greetAndEhlo,
  sendMessage,
  SmtpConn,
  startTlsServer,
  writeAuthFile,
} from "./_tls_auth_helpers.ts";

/** A message that needs no dot-stuffing, CRLF line ends, with a Date (so no client adds one). */
function message(subject: string): string {
  return `Date: Mon, 23 Nov 2026 06:53:00 +0000\r\nFrom: a@example.com\r\nTo: b@example.com\r\n` +
    `Subject: ${subject}\r\nMessage-ID: <${subject.replaceAll(" ", "-")}@example.com>\r\n\r\n` +
    `body of ${subject}\r\n`;
}

function fromB64(text: string): string {
  return new TextDecoder().decode(Uint8Array.from(atob(text), (c) => c.charCodeAt(0)));
}

/** RFC 2195 response to the server's `334 <base64 challenge>`. */
function cramResponse(user: string, password: string, challengeB64: string): string {
  const challenge = fromB64(challengeB64);
  assert.match(challenge, /^<.+@.+>$/, `RFC 2195 challenge: ${challenge}`);
  return b64(`${user} ${createHmac("md5", password).update(challenge).digest("hex")}`);
}

async function authDir(users: Record<string, string>): Promise<{ dir: string; file: string }> {
  const dir = await Deno.makeTempDir({ prefix: "smtpd-auth-" });
  return { dir, file: await writeAuthFile(dir, users) };
}

/** A plain-listener server with an `--auth-file`; the auth dir goes with it. */
async function authServer(
  users: Record<string, string> | null,
  args: string[] = [],
): Promise<ServerProc & { authFile: string | null }> {
  const auth = users ? await authDir(users) : null;
  const server = await startServer([...(auth ? ["--auth-file", auth.file] : []), ...args]);
  const dispose = server[Symbol.asyncDispose].bind(server);
  return Object.assign(server, {
    authFile: auth?.file ?? null,
    [Symbol.asyncDispose]: async () => {
      await dispose();
      if (auth) await Deno.remove(auth.dir, { recursive: true });
    },
  });
}

async function expectReply(c: SmtpConn, line: string, re: RegExp): Promise<string> {
  const r = await c.command(line);
  assert.match(r.raw, re, `${line} → ${r.raw}`);
  return r.lines.join("\n");
}

toolTest(
  "e2e auth: swaks --auth PLAIN, LOGIN, CRAM-MD5 over verified STARTTLS: 235, wrong password 535 5.7.8",
  ["swaks"],
  async () => {
    const auth = await authDir({ bob: "right-pass", eve: "other" });
    try {
      await using t = await startTlsServer(["--auth-file", auth.file]);
      const file = `${t.server.dir}/swaks.eml`;
      let stored = 0;
      for (const mech of ["PLAIN", "LOGIN", "CRAM-MD5"]) {
        for (const [password, ok] of [["wrong-pass", false], ["right-pass", true]] as const) {
          const subject = `swaks ${mech} ${ok ? "ok" : "bad"}`;
          // swaks ends the data with CRLF "." CRLF itself: the file lacks the last CRLF.
          await Deno.writeTextFile(file, message(subject).slice(0, -2));
          const r = await swaks(t.plainPort, [
            "-tls",
            "--tls-verify",
            "--tls-ca-path",
            t.certPath,
            "--auth",
            mech,
            "--auth-user",
            "bob",
            "--auth-password",
            password,
            "--from",
            "a@example.com",
            "--to",
            "b@example.com",
            "--data",
            file,
          ]);
          if (ok) {
            assert.equal(r.code, 0, r.stdout + r.stderr);
            assert.match(r.stdout, /^<~ {1,2}235 2\.7\.0 /m);
            stored++;
          } else {
            assert.notEqual(r.code, 0, r.stdout);
            assert.match(r.stdout, /^<~\* {1,2}535 5\.7\.8 /m, r.stdout);
            assert.ok(!/MAIL FROM/.test(r.stdout), "swaks stops after a failed AUTH");
          }
          const msgs = await t.server.messages();
          assert.equal(msgs.length, stored, `${subject}: stored count`);
          if (ok) {
            const m = msgs.find((x) => x.meta.headers.subject === subject);
            assert.ok(m, `${subject} stored`);
            await assertStored(m, message(subject));
            assert.deepEqual(m.meta.auth, { mechanism: mech, username: "bob" });
            assert.equal(m.meta.protocol, "ESMTPSA");
            assert.match(m.meta.tls.protocol, /^TLSv1\.3$/);
          }
        }
      }
      await t.server.waitForStderr(/code=535 enhanced=5\.7\.8/);
    } finally {
      await Deno.remove(auth.dir, { recursive: true });
    }
  },
);

const PY_LOGIN = `
import base64, smtplib, ssl, sys
port, cafile, user, password, data = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4], base64.b64decode(sys.argv[5])
with smtplib.SMTP("127.0.0.1", port, local_hostname="py.example", timeout=30) as s:
    s.starttls(context=ssl.create_default_context(cafile=cafile))
    try:
        s.login(user, password)
    except smtplib.SMTPAuthenticationError as e:
        print("refused", e.smtp_code, e.smtp_error.decode())
        sys.exit(0)
    print("accepted")
    s.sendmail("a@example.com", ["b@example.com"], data)
`;

toolTest(
  "e2e auth: python3 smtplib login() is refused with 535 5.7.8, then accepted",
  ["python3"],
  async () => {
    const auth = await authDir({ alice: "s3cret:with:colons" });
    try {
      await using t = await startTlsServer(["--auth-file", auth.file]);
      const bad = await python(PY_LOGIN, [
        String(t.plainPort),
        t.certPath,
        "alice",
        "s3cret",
        b64(message("never")),
      ]);
      assert.equal(bad.code, 0, bad.stderr);
      assert.match(bad.stdout, /^refused 535 5\.7\.8 /);
      const good = await python(PY_LOGIN, [
        String(t.plainPort),
        t.certPath,
        "alice",
        "s3cret:with:colons",
        b64(message("py login")),
      ]);
      assert.equal(good.code, 0, good.stderr);
      assert.equal(good.stdout.trim(), "accepted");
      const msgs = await t.server.waitForMessages(1);
      assert.equal(msgs.length, 1);
      await assertStored(msgs[0]!, message("py login"));
      assert.deepEqual(msgs[0]!.meta.auth, { mechanism: "CRAM-MD5", username: "alice" });
      assert.equal(msgs[0]!.meta.protocol, "ESMTPSA");
    } finally {
      await Deno.remove(auth.dir, { recursive: true });
    }
  },
);

Deno.test("e2e auth: PLAIN with a 334 continuation, stored as ESMTPA without TLS", async () => {
  await using server = await authServer({ bob: "pw1" });
  await using c = await SmtpConn.connect(server.port);
  const ehlo = extensions(await greetAndEhlo(c));
  assert.ok(ehlo.includes("AUTH PLAIN LOGIN CRAM-MD5"), ehlo.join(","));
  assert.ok(!ehlo.includes("STARTTLS"), "no TLS configured, no STARTTLS");
  const r = await c.command("AUTH PLAIN");
  assert.equal(r.raw, "334 \r\n", "RFC 4954 §4: an empty challenge");
  await expectReply(c, b64("\0bob\0pw1"), /^235 2\.7\.0 /);
  assert.equal(
    (await sendMessage(c, "a@example.com", "b@example.com", message("plain 334"))).code,
    250,
  );
  const [m] = await server.waitForMessages(1);
  await assertStored(m!, message("plain 334"));
  assert.deepEqual(m!.meta.auth, { mechanism: "PLAIN", username: "bob" });
  assert.equal(m!.meta.protocol, "ESMTPA");
  assert.equal(m!.meta.tls, null);
});

Deno.test("e2e auth: a PLAIN authzid other than the user fails against the auth file (RFC 4616 §2)", async () => {
  await using server = await authServer({ bob: "pw1" });
  await using c = await SmtpConn.connect(server.port);
  await greetAndEhlo(c);
  await expectReply(c, `AUTH PLAIN ${b64("zed\0bob\0pw1")}`, /^535 5\.7\.8 /);
  await expectReply(c, `AUTH PLAIN ${b64("bob\0bob\0pw1")}`, /^235 2\.7\.0 /);
  // Without an auth file any credentials succeed (SPEC §4), whatever the authzid.
  await using open = await authServer(null);
  await using d = await SmtpConn.connect(open.port);
  await greetAndEhlo(d);
  await expectReply(d, `AUTH PLAIN ${b64("zed\0bob\0x")}`, /^235 2\.7\.0 /);
});

Deno.test("e2e auth: LOGIN with an initial response, and CRAM-MD5 against the auth file", async () => {
  await using server = await authServer({ bob: "pw-login", carol: "pw-cram" });
  await using c = await SmtpConn.connect(server.port);
  await greetAndEhlo(c);
  const prompt = await expectReply(c, `AUTH LOGIN ${b64("bob")}`, /^334 /);
  assert.equal(fromB64(prompt), "Password:");
  await expectReply(c, b64("pw-login"), /^235 2\.7\.0 /);
  assert.equal(
    (await sendMessage(c, "a@example.com", "b@example.com", message("login ir"))).code,
    250,
  );

  await using d = await SmtpConn.connect(server.port);
  await greetAndEhlo(d);
  const badChallenge = await expectReply(d, "AUTH CRAM-MD5", /^334 /);
  await expectReply(d, cramResponse("carol", "pw-wrong", badChallenge), /^535 5\.7\.8 /);
  const challenge = await expectReply(d, "AUTH CRAM-MD5", /^334 /);
  assert.notEqual(challenge, badChallenge, "a fresh challenge each time");
  await expectReply(d, cramResponse("carol", "pw-cram", challenge), /^235 2\.7\.0 /);
  assert.equal((await sendMessage(d, "a@example.com", "b@example.com", message("cram"))).code, 250);

  const msgs = await server.waitForMessages(2);
  const login = msgs.find((m) => m.meta.headers.subject === "login ir")!;
  const cram = msgs.find((m) => m.meta.headers.subject === "cram")!;
  await assertStored(login, message("login ir"));
  await assertStored(cram, message("cram"));
  assert.deepEqual(login.meta.auth, { mechanism: "LOGIN", username: "bob" });
  assert.deepEqual(cram.meta.auth, { mechanism: "CRAM-MD5", username: "carol" });
  assert.equal(cram.meta.protocol, "ESMTPA");
});

Deno.test("e2e auth: cancel, bad base64, unknown mechanism, wrong order, AUTH twice", async () => {
  await using server = await authServer({ bob: "pw2" });
  await using c = await SmtpConn.connect(server.port);
  assert.match((await c.readReply()).raw, /^220 /);
  await expectReply(c, `AUTH PLAIN ${b64("\0bob\0pw2")}`, /^503 5\.5\.1 /); // before EHLO
  assert.equal((await c.command("EHLO client.example")).code, 250);
  await expectReply(c, "AUTH PLAIN", /^334/);
  await expectReply(c, "*", /^501 5\.0\.0 /);
  await expectReply(c, "AUTH LOGIN", /^334 /);
  await expectReply(c, b64("bob"), /^334 /);
  await expectReply(c, "*", /^501 5\.0\.0 /);
  await expectReply(c, "AUTH PLAIN !!!not-base64!!!", /^501 5\.5\.2 /);
  await expectReply(c, "AUTH LOGIN", /^334 /);
  await expectReply(c, "%%%", /^501 5\.5\.2 /);
  await expectReply(c, "AUTH GSSAPI", /^504 5\.5\.4 /);
  await expectReply(c, "AUTH X-UNKNOWN abc=", /^504 5\.5\.4 /);
  await expectReply(c, `AUTH PLAIN ${b64("\0bob\0nope")}`, /^535 5\.7\.8 /);
  await expectReply(c, "MAIL FROM:<a@example.com>", /^250 /);
  // RFC 4954 §4: not during a mail transaction.
  await expectReply(c, `AUTH PLAIN ${b64("\0bob\0pw2")}`, /^503 5\.5\.1 /);
  await expectReply(c, "RSET", /^250 /);
  await expectReply(c, `AUTH PLAIN ${b64("\0bob\0pw2")}`, /^235 2\.7\.0 /);
  await expectReply(c, `AUTH PLAIN ${b64("\0bob\0pw2")}`, /^503 5\.5\.1 /);
  await expectReply(c, "AUTH LOGIN", /^503 5\.5\.1 /);
  // The session survived all of it and keeps the successful identity.
  assert.equal(
    (await sendMessage(c, "a@example.com", "b@example.com", message("errors"))).code,
    250,
  );
  const msgs = await server.waitForMessages(1);
  assert.equal(msgs.length, 1);
  await assertStored(msgs[0]!, message("errors"));
  assert.deepEqual(msgs[0]!.meta.auth, { mechanism: "PLAIN", username: "bob" });
  assert.equal(msgs[0]!.meta.protocol, "ESMTPA");
});

Deno.test("e2e auth: responses up to 12288 octets (RFC 4954 §4), longer ones 500 5.5.6", async () => {
  const password = "p".repeat(4003);
  await using server = await authServer({ bob: password });
  await using c = await SmtpConn.connect(server.port);
  await greetAndEhlo(c);
  const long = b64(`\0bob\0${password}`);
  assert.equal(long.length, 5344);
  // Long lines are not echoed into assertion messages: only the reply is.
  const reply = async (line: string) => (await c.command(line)).raw;
  assert.match(await reply("AUTH PLAIN"), /^334/);
  assert.match(await reply(long), /^235 2\.7\.0 /);
  await using d = await SmtpConn.connect(server.port);
  await greetAndEhlo(d);
  assert.match((await d.command(`AUTH PLAIN ${long}`)).raw, /^235 2\.7\.0 /);
  // Over 12288 octets the exchange fails, and the rest of the line is never a command.
  await using e = await SmtpConn.connect(server.port);
  await greetAndEhlo(e);
  assert.match((await e.command("AUTH PLAIN")).raw, /^334/);
  const tooLong = /^500 5\.5\.6 Authentication exchange line is too long\r\n$/;
  assert.match((await e.command("QUIT".repeat(3100))).raw, tooLong);
  assert.match((await e.command(`AUTH PLAIN ${"QUIT".repeat(3100)}`)).raw, tooLong);
  assert.match((await e.command(`NOOP ${"x".repeat(5000)}`)).raw, /^500 5\.5\.2 /);
  assert.match((await e.command("NOOP")).raw, /^250 /);
});

Deno.test("e2e auth: without --auth-file any credentials get 235 2.7.0", async () => {
  await using server = await authServer(null);
  const sessions: [string, (c: SmtpConn) => Promise<void>, string][] = [
    ["PLAIN", async (c) => {
      await expectReply(c, `AUTH PLAIN ${b64("\0zed\0anything at all")}`, /^235 2\.7\.0 /);
    }, "zed"],
    ["LOGIN", async (c) => {
      await expectReply(c, "AUTH LOGIN", /^334 /);
      await expectReply(c, b64("yan"), /^334 /);
      await expectReply(c, b64(""), /^235 2\.7\.0 /);
    }, "yan"],
    ["CRAM-MD5", async (c) => {
      const challenge = await expectReply(c, "AUTH CRAM-MD5", /^334 /);
      await expectReply(c, cramResponse("xu", "whatever", challenge), /^235 2\.7\.0 /);
    }, "xu"],
  ];
  for (const [mech, run] of sessions) {
    await using c = await SmtpConn.connect(server.port);
    const ehlo = extensions(await greetAndEhlo(c));
    assert.ok(ehlo.includes("AUTH PLAIN LOGIN CRAM-MD5"), ehlo.join(","));
    await run(c);
    const reply = await sendMessage(c, "a@example.com", "b@example.com", message(`any ${mech}`));
    assert.equal(reply.code, 250, reply.raw);
  }
  const msgs = await server.waitForMessages(3);
  assert.equal(msgs.length, 3);
  for (const [mech, , user] of sessions) {
    const m = msgs.find((x) => x.meta.headers.subject === `any ${mech}`);
    assert.ok(m, mech);
    await assertStored(m, message(`any ${mech}`));
    assert.deepEqual(m.meta.auth, { mechanism: mech, username: user });
    assert.equal(m.meta.protocol, "ESMTPA");
  }
});

Deno.test("e2e auth: --require-auth refuses MAIL before AUTH with 530 5.7.0", async () => {
  await using server = await authServer({ bob: "pw3" }, ["--require-auth"]);
  await using c = await SmtpConn.connect(server.port);
  assert.ok(extensions(await greetAndEhlo(c)).includes("AUTH PLAIN LOGIN CRAM-MD5"));
  await expectReply(c, "MAIL FROM:<a@example.com>", /^530 5\.7\.0 /);
  await expectReply(c, "RCPT TO:<b@example.com>", /^503 5\.5\.1 /);
  await expectReply(c, `AUTH PLAIN ${b64("\0bob\0bad")}`, /^535 5\.7\.8 /);
  await expectReply(c, "MAIL FROM:<a@example.com>", /^530 5\.7\.0 /);
  await expectReply(c, `AUTH PLAIN ${b64("\0bob\0pw3")}`, /^235 2\.7\.0 /);
  assert.equal(
    (await sendMessage(c, "a@example.com", "b@example.com", message("req auth"))).code,
    250,
  );
  const msgs = await server.waitForMessages(1);
  assert.equal(msgs.length, 1);
  await assertStored(msgs[0]!, message("req auth"));
  assert.deepEqual(msgs[0]!.meta.auth, { mechanism: "PLAIN", username: "bob" });
  assert.equal(msgs[0]!.meta.protocol, "ESMTPA");
  await server.waitForStderr(/code=530 enhanced=5\.7\.0/);
});

/** Every file under `dir`, recursively (bounded depth). */
async function filesUnder(dir: string, depth = 0): Promise<string[]> {
  if (depth > 4) return [];
  const out: string[] = [];
  for await (const e of Deno.readDir(dir)) {
    const path = `${dir}/${e.name}`;
    if (e.isDirectory) out.push(...await filesUnder(path, depth + 1));
    else if (e.isFile) out.push(path);
  }
  return out;
}

for (const format of ["text", "json"]) {
  Deno.test(`e2e auth: passwords never reach the ${format} debug log, stderr or the spool`, async () => {
    const password = "Okapi-Vermilion-4417";
    const wrong = "Narwhal-Cobalt-8812";
    const auth = await authDir({ bob: password });
    const logFile = `${auth.dir}/smtpd.log`;
    try {
      await using server = await startServer([
        "--auth-file",
        auth.file,
        "--log-level",
        "debug",
        "--log-format",
        format,
        "--log-file",
        logFile,
      ]);
      const sessions: ((c: SmtpConn) => Promise<void>)[] = [
        (c) => expectReply(c, `AUTH PLAIN ${b64(`\0bob\0${password}`)}`, /^235 /).then(() => {}),
        async (c) => {
          await expectReply(c, "AUTH PLAIN", /^334/);
          await expectReply(c, b64(`bob\0bob\0${password}`), /^235 /);
        },
        async (c) => {
          await expectReply(c, `AUTH LOGIN ${b64("bob")}`, /^334 /);
          await expectReply(c, b64(password), /^235 /);
        },
        async (c) => {
          await expectReply(c, `AUTH PLAIN ${b64(`\0bob\0${wrong}`)}`, /^535 /);
          await expectReply(c, "AUTH LOGIN", /^334 /);
          await expectReply(c, b64("bob"), /^334 /);
          await expectReply(c, b64(wrong), /^535 /);
          await expectReply(c, `AUTH LOGIN ${b64("bob")}`, /^334 /);
          await expectReply(c, b64(password), /^235 /);
        },
        async (c) => {
          // A tab makes it an unknown command; its secret is still hidden.
          await expectReply(c, `AUTH\tPLAIN ${b64(`\0bob\0${password}`)}`, /^500 /);
          // A client that sends its response before it sees AUTH fail: the line is no command.
          await expectReply(c, "AUTH NOPE", /^504 /);
          await expectReply(c, b64(password), /^500 /);
          await expectReply(c, `AUTH PLAIN ${b64(`\0bob\0${password}`)}`, /^235 /);
        },
      ];
      for (const [i, run] of sessions.entries()) {
        await using c = await SmtpConn.connect(server.port);
        await greetAndEhlo(c);
        await run(c);
        const reply = await sendMessage(
          c,
          "a@example.com",
          "b@example.com",
          message(`secret ${i}`),
        );
        assert.equal(reply.code, 250, reply.raw);
        assert.equal((await c.command("QUIT")).code, 221);
      }
      const msgs = await server.waitForMessages(sessions.length);
      for (const [i] of sessions.entries()) {
        const m = msgs.find((x) => x.meta.headers.subject === `secret ${i}`);
        assert.ok(m, `secret ${i}`);
        await assertStored(m, message(`secret ${i}`));
        assert.equal(m.meta.auth.username, "bob");
      }
      await server.stop();

      const log = await Deno.readTextFile(logFile);
      // The transcript is there, with the secret part replaced.
      assert.match(log, /< AUTH PLAIN \*\*\*/);
      assert.match(log, /< AUTH LOGIN \*\*\*/);
      // Continuation lines (the 334 answers) are replaced whole.
      assert.match(log, /< \*\*\*/);
      for (const m of log.matchAll(/< AUTH (?:PLAIN|LOGIN)( [^\s"]+)?/g)) {
        // Nothing after the mechanism, "***", or (text format) the next log field.
        assert.ok(m[1] === undefined || m[1] === " ***" || /^ conn=\d+$/.test(m[1]), m[0]);
      }
      const secrets = [
        password,
        wrong,
        b64(password),
        b64(wrong),
        b64(`\0bob\0${password}`),
        b64(`bob\0bob\0${password}`),
        b64(`\0bob\0${wrong}`),
      ];
      const places: [string, string][] = [["log file", log], ["stderr", server.stderr()]];
      for (const file of await filesUnder(server.spool)) {
        places.push([file, new TextDecoder("latin1").decode(await Deno.readFile(file))]);
      }
      assert.ok(places.length >= 2 + 2 * sessions.length, places.map(([p]) => p).join(", "));
      for (const [where, text] of places) {
        for (const secret of secrets) {
          assert.equal(text.split(secret).length - 1, 0, `${where} contains ${secret}`);
        }
      }
    } finally {
      await Deno.remove(auth.dir, { recursive: true });
    }
  });
}
