/**
 * Configuration and failure surfaces (SPEC §2, §4, §5): SMTPD_* variables,
 * exit codes with one-line errors, JSON logs, and a spool that stops being
 * writable, or is removed, while the server runs.
 */

import assert from "node:assert/strict";
import { ehloed, mainArgs, runCli, started } from "../helpers/launcher.ts";
import { queuedId, stuff, transaction } from "../helpers/raw_client.ts";
import { findOnPath } from "../helpers/clients.ts";

/** A user error is one line on stderr, and never a stack trace (SPEC §2). */
function assertOneLine(stderr: string, mustMention: RegExp): void {
  const lines = stderr.trim().split("\n").filter((l) => l.trim() !== "");
  assert.equal(lines.length, 1, `expected one line, got:\n${stderr}`);
  assert.match(lines[0]!, mustMention);
  assert.doesNotMatch(stderr, /^\s+at /m);
}

Deno.test("e2e: SMTPD_* variables configure the server; flags win over them", async (t) => {
  await t.step("SMTPD_MAX_SIZE and SMTPD_HOSTNAME", async () => {
    await using s = await ehloed([], {
      env: { SMTPD_MAX_SIZE: "1000", SMTPD_HOSTNAME: "mx.test" },
    });
    assert.match(s.greeting.raw, /^220 mx\.test[ \r]/);
    assert.ok(s.ehlo.lines.includes("SIZE 1000"), s.ehlo.raw);
    assert.match(s.ehlo.lines[0]!, /^mx\.test\b/);
    const big = "x".repeat(2000) + "\r\n";
    const r = await transaction(s.client, "a@example.com", ["b@example.com"], stuff(big));
    assert.match(r.raw, /^552 5\.3\.4/);
  });
  await t.step("--max-size beats SMTPD_MAX_SIZE", async () => {
    await using s = await ehloed(["--max-size", "2000"], { env: { SMTPD_MAX_SIZE: "1000" } });
    assert.ok(s.ehlo.lines.includes("SIZE 2000"), s.ehlo.raw);
  });
  await t.step("SMTPD_MAX_SIZE takes units", async () => {
    await using s = await ehloed([], { env: { SMTPD_MAX_SIZE: "1KiB" } });
    assert.ok(s.ehlo.lines.includes("SIZE 1024"), s.ehlo.raw);
  });
});

Deno.test("e2e: an unknown flag exits 2 with one line naming it", async () => {
  const r = await runCli(["--no-such-flag"]);
  assert.equal(r.code, 2, r.stderr);
  assertOneLine(r.stderr, /--no-such-flag/);
});

Deno.test("e2e: a bad flag value exits 2 with one line naming the flag", async () => {
  const r = await runCli(["--max-size", "10XB", "--listen", "127.0.0.1:0"]);
  assert.equal(r.code, 2, r.stderr);
  assertOneLine(r.stderr, /--max-size.*10XB/);
  const env = await runCli(["--listen", "127.0.0.1:0"], { SMTPD_TIMEOUT: "soon" });
  assert.equal(env.code, 2, env.stderr);
  assertOneLine(env.stderr, /^smtpd: SMTPD_TIMEOUT \(--timeout\): .*soon/);
});

Deno.test("e2e: a port in use exits 1 with one line (and an error event in --log-file)", async () => {
  await using server = await started();
  const dir = await Deno.makeTempDir({ prefix: "smtpd-e2e-" });
  try {
    const r = await runCli(["--listen", `127.0.0.1:${server.port}`, "--spool", `${dir}/spool`]);
    assert.equal(r.code, 1, r.stderr);
    assertOneLine(r.stderr, new RegExp(`127\\.0\\.0\\.1:${server.port}`));
    // With --log-file the failure is an error event there too (SPEC §5), in the log's format.
    const log = `${dir}/smtpd.log`;
    const logged = await runCli([
      "--listen",
      `127.0.0.1:${server.port}`,
      "--spool",
      `${dir}/spool`,
      "--log-file",
      log,
      "--log-format",
      "json",
    ]);
    assert.equal(logged.code, 1, logged.stderr);
    assertOneLine(logged.stderr, new RegExp(`127\\.0\\.0\\.1:${server.port}`));
    const events = (await Deno.readTextFile(log)).trim().split("\n").map((l) => JSON.parse(l));
    const last = events.at(-1);
    assert.equal(last.level, "error");
    assert.equal(last.msg, "start-up failed");
    assert.match(last.error, new RegExp(`127\\.0\\.0\\.1:${server.port}.*in use`));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("e2e: a spool path that is a file exits 1 with one line", async () => {
  const dir = await Deno.makeTempDir({ prefix: "smtpd-e2e-" });
  try {
    await Deno.writeTextFile(`${dir}/file`, "not a directory");
    const r = await runCli(["--listen", "127.0.0.1:0", "--spool", `${dir}/file`]);
    assert.equal(r.code, 1, r.stderr);
    assertOneLine(r.stderr, /spool|file/i);
    assert.equal(await Deno.readTextFile(`${dir}/file`), "not a directory");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("e2e: --log-format json writes JSON lines with level, msg, time", async () => {
  let id = "";
  let stderr = "";
  {
    await using s = await ehloed(["--log-format", "json"]);
    id = queuedId(await transaction(s.client, "a@example.com", ["b@example.com"], stuff("x\r\n")));
    assert.equal((await s.client.command("QUIT")).code, 221);
    await s.client.expectClosed();
    await s.server.waitForStderr(new RegExp(id));
    assert.equal(await s.server.stop(), 0);
    stderr = s.server.stderr();
  }
  const lines = stderr.split("\n").filter((l) => l !== "");
  assert.ok(lines.length >= 3, `start-up, connection and message lines expected:\n${stderr}`);
  for (const line of lines) {
    const obj = JSON.parse(line);
    assert.equal(typeof obj.level, "string", line);
    assert.equal(typeof obj.msg, "string", line);
    assert.ok(!Number.isNaN(Date.parse(obj.time)), line);
  }
  assert.ok(lines.some((l) => l.includes(id)), "the stored message is logged with its id");
});

Deno.test("e2e: text logs name the stored message and every 4xx/5xx sent", async () => {
  await using s = await ehloed();
  const id = queuedId(
    await transaction(s.client, "a@example.com", ["b@example.com"], stuff("x\r\n")),
  );
  await s.server.waitForStderr(new RegExp(id));
  assert.match((await s.client.command("BOGUS")).raw, /^500 /);
  await s.server.waitForStderr(/\b500\b/);
});

Deno.test({
  name: "e2e: a spool that becomes unwritable gives 451 4.3.0 and stores nothing",
  ignore: Deno.build.os === "windows",
  fn: async () => {
    if (Deno.uid() === 0) {
      Deno.stderr.writeSync(
        new TextEncoder().encode(
          "skip unwritable-spool check: running as root, chmod does not stop writes\n",
        ),
      );
      return;
    }
    await using s = await ehloed();
    await Deno.chmod(s.server.spool, 0o555);
    await Deno.chmod(`${s.server.spool}/.tmp`, 0o555).catch(() => {});
    try {
      // The failure may surface at DATA (the sink opens its file) or at the end of data.
      const c = s.client;
      assert.match((await c.command("MAIL FROM:<a@example.com>")).raw, /^250 /);
      assert.match((await c.command("RCPT TO:<b@example.com>")).raw, /^250 /);
      let r = await c.command("DATA");
      if (r.code === 354) {
        await c.send(stuff("x\r\n"));
        r = await c.readReply();
      }
      assert.match(r.raw, /^451 4\.3\.0/);
      assert.match((await s.client.command("NOOP")).raw, /^250 /);
    } finally {
      await Deno.chmod(`${s.server.spool}/.tmp`, 0o755).catch(() => {});
      await Deno.chmod(s.server.spool, 0o755);
    }
    assert.deepEqual(await s.server.messages(), []);
  },
});

for (const flags of [[], ["--no-fsync", "--threads", "1"]]) {
  Deno.test({
    name: `e2e: a spool removed while the server runs is recreated after one 451 ${
      flags.join(" ")
    }`,
    // Windows refuses to remove a directory holding the server's open lock file.
    ignore: Deno.build.os === "windows",
    fn: async () => {
      await using s = await ehloed(flags);
      const body = stuff("Subject: again\r\n\r\nx\r\n");
      queuedId(await transaction(s.client, "a@example.com", ["b@example.com"], body));
      await Deno.remove(s.server.spool, { recursive: true });
      const lost = await transaction(s.client, "a@example.com", ["b@example.com"], body);
      assert.match(lost.raw, /^451 4\.3\.0/);
      await s.server.waitForStderr(/spool recreated/);
      const id = queuedId(await transaction(s.client, "a@example.com", ["b@example.com"], body));
      assert.deepEqual((await s.server.messages()).map((m) => m.id), [id]);
      assert.ok((await Deno.stat(`${s.server.spool}/.tmp`)).isDirectory);
    },
  });
}

/**
 * Root writes anywhere (CAP_DAC_OVERRIDE), so as root the server runs without
 * that capability: directory permissions count again, and it still reads
 * Deno's cache under /root (`runuser -u nobody` could not, and would download
 * the npm packages again).
 */
const DROP_DAC = [
  "--inh-caps=-dac_override,-dac_read_search",
  "--bounding-set=-dac_override,-dac_read_search",
];
const SETPRIV = Deno.build.os === "windows" ? null : findOnPath("setpriv");

Deno.test({
  name:
    "e2e: a spool directory that cannot be written exits 1 at start-up, even with a writable .tmp/",
  ignore: Deno.build.os === "windows",
  fn: async () => {
    const root = Deno.uid() === 0;
    if (root && !SETPRIV) {
      Deno.stderr.writeSync(
        new TextEncoder().encode(
          "skip unwritable-spool start-up check: running as root without setpriv(1)\n",
        ),
      );
      return;
    }
    const dir = await Deno.makeTempDir({ prefix: "smtpd-e2e-" });
    const spool = `${dir}/spool`;
    try {
      await Deno.mkdir(`${spool}/.tmp`, { recursive: true });
      await Deno.chmod(`${spool}/.tmp`, 0o777);
      if (root) await Deno.chown(spool, 65534, null); // nobody's: 755 bars everyone else
      await Deno.chmod(spool, root ? 0o755 : 0o555);
      const serverArgs = mainArgs([
        "--listen",
        "127.0.0.1:0",
        "--spool",
        spool,
        "--ready-file",
        `${dir}/ready.json`,
      ]);
      const env = Object.fromEntries(
        Object.entries(Deno.env.toObject()).filter(([k]) => !k.startsWith("SMTPD_")),
      );
      // A server that starts anyway runs until this kills it.
      const out = await new Deno.Command(root ? SETPRIV! : Deno.execPath(), {
        args: root ? [...DROP_DAC, "--", Deno.execPath(), ...serverArgs] : serverArgs,
        env: { ...env, NO_COLOR: "1" },
        clearEnv: true,
        stdin: "null",
        stdout: "piped",
        stderr: "piped",
        signal: AbortSignal.timeout(30_000),
      }).output();
      const stderr = new TextDecoder().decode(out.stderr);
      assert.equal(out.code, 1, stderr);
      assertOneLine(stderr, new RegExp(`spool directory "${spool}"`));
      await assert.rejects(Deno.stat(`${dir}/ready.json`), Deno.errors.NotFound);
      const names: string[] = [];
      for await (const e of Deno.readDir(spool)) names.push(e.name);
      assert.deepEqual(names, [".tmp"], "no probe left behind");
    } finally {
      await Deno.chmod(spool, 0o755).catch(() => {});
      await Deno.remove(dir, { recursive: true });
    }
  },
});

/** The server on a free port with its spool in `dir` and the given ready file (start-up fails). */
function serveWithReadyFile(dir: string, ready: string) {
  return runCli(["--listen", "127.0.0.1:0", "--spool", `${dir}/spool`, "--ready-file", ready]);
}

Deno.test("e2e: a ready file that cannot be written exits 1 with one line, leaving nothing", async () => {
  const dir = await Deno.makeTempDir({ prefix: "smtpd-e2e-" });
  try {
    const r = await serveWithReadyFile(dir, `${dir}/missing/ready.json`);
    assert.equal(r.code, 1, r.stderr);
    assertOneLine(r.stderr, /ready file .*missing\/ready\.json: no such file or directory/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test({
  name: "e2e: a ready file path holding a symlink or a FIFO is refused, and left as it was",
  ignore: Deno.build.os === "windows",
  fn: async () => {
    const dir = await Deno.makeTempDir({ prefix: "smtpd-e2e-" });
    try {
      await Deno.writeTextFile(`${dir}/target`, "keep");
      await Deno.symlink(`${dir}/target`, `${dir}/link`);
      const fifo = await new Deno.Command("mkfifo", { args: [`${dir}/fifo`] }).output();
      assert.ok(fifo.success);
      for (const [name, what] of [["link", "a symbolic link"], ["fifo", "not a regular file"]]) {
        const r = await serveWithReadyFile(dir, `${dir}/${name}`);
        assert.equal(r.code, 1, r.stderr);
        assertOneLine(r.stderr, new RegExp(`ready file .*/${name}: ${what}`));
      }
      assert.ok((await Deno.lstat(`${dir}/link`)).isSymlink);
      assert.equal(await Deno.readTextFile(`${dir}/target`), "keep");
      assert.ok((await Deno.lstat(`${dir}/fifo`)).isFifo);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test("e2e: a --timeout or fault delay past 2^31-1 ms is clamped: it waits, and warns nothing", async (t) => {
  // Past ~596 h a timer overflows: it fired after 1 ms, with a warning on stderr each time.
  for (const extra of [[], ["--tls-self-signed"]]) {
    await t.step(extra.length === 0 ? "native sockets" : "node:net sockets (TLS)", async () => {
      await using s = await ehloed([
        ...extra,
        "--timeout",
        "1000h",
        "--fault",
        "connect#2 delay 1000h",
        "--fault",
        "mail~^slow@ delay 1000h",
      ]);
      // Idle well past the 1 ms the overflowed timer would have waited.
      await new Promise((r) => setTimeout(r, 1500));
      assert.match((await s.client.command("NOOP")).raw, /^250 /, "still open after 1.5 s idle");
      await s.client.send("MAIL FROM:<slow@example.com>\r\n");
      await assert.rejects(s.client.readReply(1000), /no line within/);
      await using late = await s.server.connect();
      await assert.rejects(late.readReply(1000), /no line within/);
      const stderr = s.server.stderr();
      assert.doesNotMatch(stderr, /TimeoutOverflowWarning|does not fit/);
      assert.doesNotMatch(stderr, /4\.4\.2|timed out/i);
    });
  }
});

Deno.test("e2e: --listen with an impossible host is a usage error; an unknown name a run-time one", async () => {
  const dir = await Deno.makeTempDir({ prefix: "smtpd-e2e-" });
  try {
    const spool = ["--spool", `${dir}/spool`];
    for (const bad of ["*:41160", "a/b:41160", ":41160", "a b:41160"]) {
      const r = await runCli(["--listen", bad, ...spool]);
      assert.equal(r.code, 2, `${bad}: ${r.stderr}`);
      assertOneLine(r.stderr, /^smtpd: --listen: /);
    }
    // It might exist somewhere: only the resolver can tell (RFC 6761 keeps .invalid unresolvable).
    const unknown = await runCli(["--listen", "no-such-host.invalid:0", ...spool]);
    assert.equal(unknown.code, 1, unknown.stderr);
    assertOneLine(unknown.stderr, /cannot listen on no-such-host\.invalid:0/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("e2e: --tls-self-signed with --tls-cert/--tls-key exits 2 with one line naming both", async () => {
  const r = await runCli([
    "--listen",
    "127.0.0.1:0",
    "--tls-cert",
    "cert.pem",
    "--tls-key",
    "key.pem",
    "--tls-self-signed",
  ]);
  assert.equal(r.code, 2, r.stderr);
  assertOneLine(r.stderr, /^smtpd: --tls-self-signed: .*--tls-cert\/--tls-key/);
});

/** Starts a server with `--auth-file` set to what `prepare` returns in a temporary dir; it must exit 1. */
async function authFileFailure(
  prepare: (dir: string) => Promise<string>,
  expected: (path: string) => RegExp,
) {
  const dir = await Deno.makeTempDir({ prefix: "smtpd-e2e-" });
  try {
    const path = await prepare(dir);
    const r = await runCli([
      "--listen",
      "127.0.0.1:0",
      "--spool",
      `${dir}/spool`,
      "--auth-file",
      path,
    ]);
    assert.equal(r.code, 1, r.stderr);
    assertOneLine(r.stderr, expected(path));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("e2e: an auth file with a bad line exits 1 (like a bad certificate), naming file:line", async () => {
  await authFileFailure(async (dir) => {
    await Deno.writeTextFile(`${dir}/users.txt`, "bob:pw\nbadline\n");
    return `${dir}/users.txt`;
  }, (users) => new RegExp(`bad auth file ${users}:2: expected user:password`));
});

Deno.test("e2e: an auth file that is a directory exits 1 with the OS reason, not Deno's error text", async () => {
  await authFileFailure(
    (dir) => Promise.resolve(dir),
    (dir) => new RegExp(`^smtpd: cannot read auth file ${dir}: Is a directory$`),
  );
});

Deno.test({
  name: "e2e: a log file that stops taking lines (disk full) costs no message: lines go to stderr",
  ignore: Deno.build.os !== "linux", // /dev/full
  fn: async () => {
    await using s = await ehloed(["--log-file", "/dev/full"]);
    const c = s.client;
    for (let i = 0; i < 3; i++) {
      queuedId(await transaction(c, "a@example.com", ["b@example.com"], stuff(`n${i}\r\n`)));
    }
    assert.match((await c.command("NOOP")).raw, /^250 /);
    await s.server.waitForStderr(/(?:message stored[\s\S]*){3}/);
    const said = s.server.stderr().match(/cannot write log file \/dev\/full: [^\n]*/g) ?? [];
    assert.equal(said.length, 1, s.server.stderr());
    assert.doesNotMatch(s.server.stderr(), /^\s+at /m);
  },
});
