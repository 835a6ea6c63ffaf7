import assert from "node:assert/strict";
import { type Io, run, VERSION } from "../../../lib/cli/main.ts";
import { findOnPath } from "../../helpers/clients.ts";
import { poll, readReadyFile } from "../../helpers/launcher.ts";

const decoder = new TextDecoder();
const encoder = new TextEncoder();

interface Captured extends Io {
  out: string;
  err: string;
  bytes: Uint8Array[];
}

function capture(stdin = ""): Captured {
  const io: Captured = {
    out: "",
    err: "",
    bytes: [],
    stdout: (text) => {
      io.out += text;
    },
    stderr: (text) => {
      io.err += text;
    },
    stdoutBytes: (bytes) => {
      io.bytes.push(bytes.slice());
      return Promise.resolve();
    },
    stdin: ReadableStream.from([encoder.encode(stdin)]),
  };
  return io;
}

const ID_1 = "01KAQ3Z9X8M4N5P6Q7R8S9T0VW";
const ID_2 = "01KAQ3Z9X9M4N5P6Q7R8S9T0VW";

function meta(id: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    id,
    receivedAt: "2026-11-23T06:53:00.123Z",
    mailFrom: "alice@example.com",
    rcptTo: ["bob@example.com"],
    mailParams: {},
    rcptParams: [{}],
    helo: "client.test",
    protocol: "ESMTP",
    client: { address: "127.0.0.1", port: 50000 },
    server: { address: "127.0.0.1", port: 1025 },
    tls: null,
    auth: null,
    size: 5,
    sha256: "0".repeat(64),
    headers: { subject: "First" },
    ...extra,
  };
}

/** A spool with two messages and one unrelated file. */
async function spool(): Promise<string> {
  const dir = await Deno.makeTempDir();
  await Deno.writeTextFile(`${dir}/${ID_1}.eml`, "one\r\n");
  await Deno.writeTextFile(`${dir}/${ID_1}.json`, JSON.stringify(meta(ID_1)));
  await Deno.writeFile(`${dir}/${ID_2}.eml`, new Uint8Array([0x00, 0xff, 0x0d, 0x0a]));
  await Deno.writeTextFile(
    `${dir}/${ID_2}.json`,
    JSON.stringify(meta(ID_2, { rcptTo: ["carol@example.org"], headers: { subject: "Second" } })),
  );
  await Deno.writeTextFile(`${dir}/notes.txt`, "not mail");
  return dir;
}

async function withSpool(body: (dir: string) => Promise<void>): Promise<void> {
  const dir = await spool();
  try {
    await body(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("run prints the version and help, exit 0", async () => {
  const io = capture();
  assert.equal(await run(["--version"], {}, io), 0);
  assert.equal(io.out, `smtpd ${VERSION}\n`);
  assert.equal(VERSION, "0.1.0");
  const help = capture();
  assert.equal(await run(["--help"], {}, help), 0);
  assert.match(help.out, /^Usage: smtpd \[serve\] \[flags\]/);
  const helpHelp = capture();
  assert.equal(await run(["help", "help"], {}, helpHelp), 0);
  assert.equal(helpHelp.out, help.out);
  for (const command of ["list", "show", "wait", "purge", "send"]) {
    const text = capture();
    assert.equal(await run([command, "--help"], {}, text), 0);
    assert.match(text.out, new RegExp(`^Usage: smtpd ${command} `));
  }
});

Deno.test("run prints one line and exits 2 on a usage error", async () => {
  const io = capture();
  assert.equal(await run(["--max-size", "10XB"], {}, io), 2);
  assert.equal(
    io.err,
    'smtpd: --max-size: Cannot parse "10XB": expected bytes, KB, MB, GB, KiB, MiB or GiB\n',
  );
  assert.equal(io.out, "");
});

Deno.test("run exits 2 with the flag when serve() rejects an option", async () => {
  const io = capture();
  const dir = await Deno.makeTempDir();
  try {
    const code = await run(
      ["--listen", "127.0.0.1:0", "--spool", dir, "--fault", "nonsense"],
      {},
      io,
    );
    assert.equal(code, 2);
    assert.match(io.err, /^smtpd: --fault: .+\n$/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("run names the variable when serve() rejects a value set by one", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const cases: [Record<string, string>, RegExp][] = [
      [
        { SMTPD_FAULT: "nonsense" },
        /^smtpd: SMTPD_FAULT \(--fault\): Cannot parse fault rule .+\n$/,
      ],
      [
        { SMTPD_TRUST_PROXY: "abc" },
        /^smtpd: SMTPD_TRUST_PROXY \(--trust-proxy\): Cannot parse CIDR "abc".*\n$/,
      ],
      [
        { SMTPD_TLS_CERT: "/x" },
        /^smtpd: SMTPD_TLS_CERT \(--tls-cert\): needs --tls-key as well\n$/,
      ],
      [
        { SMTPD_REQUIRE_TLS: "1" },
        /^smtpd: SMTPD_REQUIRE_TLS \(--require-tls\): needs --tls-cert .+\n$/,
      ],
    ];
    for (const [env, expected] of cases) {
      const io = capture();
      assert.equal(await run(["--listen", "127.0.0.1:0", "--spool", dir], env, io), 2);
      assert.match(io.err, expected);
    }
    // A flag given on the command line is still named as the flag.
    const io = capture();
    const argv = ["--listen", "127.0.0.1:0", "--spool", dir, "--trust-proxy", "abc"];
    assert.equal(await run(argv, { SMTPD_TRUST_PROXY: "10.0.0.0/8" }, io), 2);
    assert.match(io.err, /^smtpd: --trust-proxy: /);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("run list in a pipe prints long values whole, on a terminal cut", async () => {
  await withSpool(async (dir) => {
    const id = "01KAQ3Z9XAM4N5P6Q7R8S9T0VW";
    const subject = "Quarterly report for the finance department, second half";
    const rcptTo = ["first.recipient@example.com", "second@example.org"];
    await Deno.writeTextFile(`${dir}/${id}.eml`, "three");
    await Deno.writeTextFile(
      `${dir}/${id}.json`,
      JSON.stringify(meta(id, { rcptTo, headers: { subject } })),
    );
    const piped = capture();
    assert.equal(await run(["list", "--spool", dir], {}, piped), 0);
    const row = piped.out.trimEnd().split("\n")[2]!;
    assert.ok(row.includes(`  ${rcptTo.join(",")}  ${subject}  `), row);
    const terminal = { ...capture(), stdoutIsTerminal: true };
    let out = "";
    terminal.stdout = (text) => void (out += text);
    assert.equal(await run(["list", "--spool", dir], {}, terminal), 0);
    assert.doesNotMatch(out, /second@example\.org/);
    assert.match(out, /Quarterly report for the finance de… /);
  });
});

Deno.test("run list prints nothing for a missing spool", async () => {
  const io = capture();
  assert.equal(await run(["list", "--spool", "/nonexistent/smtpd-spool"], {}, io), 0);
  assert.equal(io.out, "");
  assert.equal(io.err, "");
});

Deno.test("run list prints one row per message, oldest first; a header only on a terminal", async () => {
  await withSpool(async (dir) => {
    // SPEC §2 "one line per message": `smtpd list | wc -l` counts messages.
    const piped = capture();
    assert.equal(await run(["list"], { SMTPD_SPOOL: dir }, piped), 0);
    const rows = piped.out.trimEnd().split("\n");
    assert.equal(rows.length, 2, piped.out);
    assert.match(rows[0]!, new RegExp(`^${ID_1} .* bob@example\\.com +First +5$`));
    assert.match(rows[1]!, new RegExp(`^${ID_2} .* carol@example\\.org +Second +5$`));
    const terminal = { ...capture(), stdoutIsTerminal: true };
    let out = "";
    terminal.stdout = (text) => void (out += text);
    assert.equal(await run(["list"], { SMTPD_SPOOL: dir }, terminal), 0);
    const lines = out.trimEnd().split("\n");
    assert.equal(lines.length, 3);
    assert.match(lines[0]!, /^ID +RECEIVED +FROM +TO +SUBJECT +SIZE$/);
    assert.deepEqual(lines.slice(1), rows);
  });
});

Deno.test("run list skips a .json without valid metadata with one warning each, exit 0", async () => {
  await withSpool(async (dir) => {
    const torn = "01KAQ3Z9X7M4N5P6Q7R8S9T0VW";
    const empty = "01KAQ3Z9XAM4N5P6Q7R8S9T0VW";
    await Deno.writeTextFile(`${dir}/${torn}.json`, '{ "id": "01KA');
    await Deno.writeTextFile(`${dir}/${empty}.json`, "");
    for (const json of [false, true]) {
      const io = capture();
      assert.equal(await run(["list", "--spool", dir, ...(json ? ["--json"] : [])], {}, io), 0);
      assert.equal(io.out.trimEnd().split("\n").length, 2, io.out);
      assert.equal(
        io.err,
        `smtpd: list: skipped ${torn}: unreadable metadata (not valid JSON)\n` +
          `smtpd: list: skipped ${empty}: unreadable metadata (empty file)\n`,
      );
    }
  });
});

Deno.test("run show of a message whose .json holds no valid metadata says so, exit 1", async () => {
  await withSpool(async (dir) => {
    await Deno.writeTextFile(`${dir}/${ID_1}.json`, '{"id":"x"}');
    for (const extra of [[], ["--meta"]]) {
      const io = capture();
      assert.equal(await run(["show", ID_1, "--spool", dir, ...extra], {}, io), 1);
      assert.equal(
        io.err,
        `smtpd: message "${ID_1}" has unreadable metadata ` +
          "(required fields missing or of the wrong type)\n",
      );
      assert.equal(io.out, "");
    }
    // latest is the newest readable message.
    const latest = capture();
    assert.equal(await run(["show", "latest", "--spool", dir], {}, latest), 0);
    assert.deepEqual([...latest.bytes[0]!], [0x00, 0xff, 0x0d, 0x0a]);
  });
});

Deno.test("run list --json prints one meta object per line", async () => {
  await withSpool(async (dir) => {
    const io = capture();
    assert.equal(await run(["list", "--json", "--spool", dir], {}, io), 0);
    const lines = io.out.trimEnd().split("\n").map((l) => JSON.parse(l));
    assert.deepEqual(lines.map((m) => m.id), [ID_1, ID_2]);
    assert.deepEqual(lines[0], meta(ID_1));
  });
});

Deno.test("run show writes the raw bytes; latest is the newest", async () => {
  await withSpool(async (dir) => {
    const io = capture();
    assert.equal(await run(["show", ID_1, "--spool", dir], {}, io), 0);
    assert.equal(decoder.decode(io.bytes[0]), "one\r\n");
    const latest = capture();
    assert.equal(await run(["show", "latest", "--spool", dir], {}, latest), 0);
    assert.deepEqual([...latest.bytes[0]!], [0x00, 0xff, 0x0d, 0x0a]);
  });
});

Deno.test("run show --meta prints the metadata as indented JSON", async () => {
  await withSpool(async (dir) => {
    const io = capture();
    assert.equal(await run(["show", "--meta", ID_1, "--spool", dir], {}, io), 0);
    assert.equal(io.out, JSON.stringify(meta(ID_1), null, 2) + "\n");
  });
});

Deno.test("run show exits 1 for an unknown message", async () => {
  await withSpool(async (dir) => {
    for (const id of ["01KAQ3Z9X8M4N5P6Q7R8S9T0ZZ", "../etc/passwd"]) {
      const io = capture();
      assert.equal(await run(["show", id, "--spool", dir], {}, io), 1);
      assert.equal(io.err, `smtpd: no message "${id}"\n`);
    }
    const empty = await Deno.makeTempDir();
    const io = capture();
    assert.equal(await run(["show", "latest", "--spool", empty], {}, io), 1);
    assert.equal(io.err, 'smtpd: no message "latest"\n');
    await Deno.remove(empty);
  });
});

Deno.test({
  name: "run show: a .eml removed by hand, or a FIFO in its place, is one line and exit 1",
  ignore: Deno.build.os === "windows",
  fn: async () => {
    await withSpool(async (dir) => {
      await Deno.remove(`${dir}/${ID_1}.eml`);
      let io = capture();
      assert.equal(await run(["show", ID_1, "--spool", dir], {}, io), 1);
      assert.equal(io.err, `smtpd: message "${ID_1}" has no .eml (removed by hand?)\n`);
      const fifo = await new Deno.Command("mkfifo", { args: [`${dir}/${ID_1}.eml`] }).output();
      assert.ok(fifo.success);
      io = capture();
      assert.equal(await run(["show", ID_1, "--spool", dir], {}, io), 1);
      assert.equal(io.err, `smtpd: message "${ID_1}": its .eml is not a regular file\n`);
      // A FIFO named like metadata is no message: list does not wait on it.
      await new Deno.Command("mkfifo", { args: [`${dir}/01KAQ3Z9X8M4N5P6Q7R8S9T0ZZ.json`] })
        .output();
      io = capture();
      assert.equal(await run(["list", "--spool", dir], {}, io), 0);
      assert.doesNotMatch(io.out, /01KAQ3Z9X8M4N5P6Q7R8S9T0ZZ/);
      // Nor a link to one, and show names it instead of waiting on it.
      const linked = "01KAQ3Z9X8M4N5P6Q7R8S9T0ZY";
      await Deno.symlink(`${dir}/01KAQ3Z9X8M4N5P6Q7R8S9T0ZZ.json`, `${dir}/${linked}.json`);
      io = capture();
      assert.equal(await run(["list", "--spool", dir], {}, io), 0);
      assert.doesNotMatch(io.out, new RegExp(linked));
      io = capture();
      assert.equal(await run(["show", linked, "--spool", dir], {}, io), 1);
      assert.match(io.err, /not a regular file/);
    });
  },
});

Deno.test("run wait prints the IDs of every matching message", async () => {
  await withSpool(async (dir) => {
    const io = capture();
    assert.equal(await run(["wait", "--spool", dir, "--to", "CAROL"], {}, io), 0);
    assert.equal(io.out, `${ID_2}\n`);
    const both = capture();
    assert.equal(await run(["wait", "--spool", dir, "--count", "2"], {}, both), 0);
    assert.equal(both.out, `${ID_1}\n${ID_2}\n`);
  });
});

Deno.test("run wait exits 1 with a one-line reason on time-out", async () => {
  await withSpool(async (dir) => {
    const io = capture();
    const code = await run(["wait", "--spool", dir, "--count", "3", "--timeout", "300ms"], {}, io);
    assert.equal(code, 1);
    assert.equal(io.err, "smtpd: wait: timed out after 300ms: 2 of 3 messages matched\n");
    assert.equal(io.out, "");
    const none = capture();
    assert.equal(
      await run(["wait", "--spool", dir, "--subject", "zzz", "--timeout", "0s"], {}, none),
      1,
    );
    assert.equal(none.err, "smtpd: wait: timed out after 0s: 0 of 1 messages matched\n");
    const bare = capture();
    assert.equal(
      await run(["wait", "--spool", dir, "--count", "2", "--timeout", "0"], {}, bare),
      0,
    );
    assert.equal(bare.out, `${ID_1}\n${ID_2}\n`, "0 looks once");
  });
});

Deno.test("run purge deletes messages only and says how many", async () => {
  await withSpool(async (dir) => {
    const io = capture();
    assert.equal(await run(["purge", "--spool", dir, "--older-than", "1h"], {}, io), 0);
    assert.equal(io.out, "purged 2 messages\n");
    const names = [];
    for await (const entry of Deno.readDir(dir)) names.push(entry.name);
    assert.deepEqual(names, ["notes.txt"]);
    const again = capture();
    assert.equal(await run(["purge", "--spool", dir], {}, again), 0);
    assert.equal(again.out, "purged 0 messages\n");
  });
});

Deno.test("run purge says message for one", async () => {
  await withSpool(async (dir) => {
    const [first] = [...await Array.fromAsync(Deno.readDir(dir))].map((e) => e.name)
      .filter((n) => n.endsWith(".json")).sort();
    await Deno.remove(`${dir}/${first}`);
    const io = capture();
    assert.equal(await run(["purge", "--spool", dir], {}, io), 0);
    assert.equal(io.out, "purged 1 message\n");
  });
});

const CHATTR = Deno.build.os === "linux" && Deno.uid() === 0 ? findOnPath("chattr") : null;

Deno.test({
  name: "run purge: a message that cannot be removed keeps no other, and exits 1 naming it",
  // An immutable file is the one thing root cannot remove (chattr +i).
  ignore: CHATTR === null,
  fn: async () => {
    await withSpool(async (dir) => {
      const chattr = (flag: string) =>
        new Deno.Command(CHATTR!, { args: [flag, `${dir}/${ID_1}.json`] }).output();
      if (!(await chattr("+i")).success) return; // a file system without the attribute (tmpfs)
      try {
        const io = capture();
        assert.equal(await run(["purge", "--spool", dir], {}, io), 1);
        assert.equal(io.out, "purged 1 message\n");
        assert.equal(io.err, `smtpd: could not remove message ${ID_1}: Operation not permitted\n`);
        assert.ok(await Deno.stat(`${dir}/${ID_1}.json`));
        await assert.rejects(Deno.stat(`${dir}/${ID_2}.json`), Deno.errors.NotFound);
      } finally {
        await chattr("-i");
      }
    });
  },
});

Deno.test("run send exits 1 with one line when the server is unreachable", async () => {
  const probe = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (probe.addr as Deno.NetAddr).port;
  probe.close();
  const io = capture("Subject: x\n\nbody\n");
  const argv = ["send", "--server", `127.0.0.1:${port}`, "--from", "a@x", "--to", "b@x"];
  assert.equal(await run(argv, {}, io), 1);
  assert.match(
    io.err,
    new RegExp(`^smtpd: send: cannot connect to 127\\.0\\.0\\.1:${port}: [^\\n]+\\n$`),
  );
});

Deno.test("run send exits 1 when the message file is missing", async () => {
  const io = capture();
  const argv = [
    "send",
    "--server",
    "127.0.0.1:1",
    "--from",
    "a@x",
    "--to",
    "b@x",
    "/nonexistent.eml",
  ];
  assert.equal(await run(argv, {}, io), 1);
  assert.match(io.err, /^smtpd: send: cannot read \/nonexistent\.eml: [^\n]+\n$/);
});

/** One scripted SMTP session on 127.0.0.1:0; `rcpt` answers every RCPT. */
function scriptedServer(
  rcpt: (line: string) => string,
): { port: number; done: Promise<string> } {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  const done = (async () => {
    const conn = await listener.accept();
    listener.close();
    const say = (text: string) => conn.write(encoder.encode(text + "\r\n"));
    await say("220 scripted ESMTP");
    let received = "";
    let pending = "";
    let inData = false;
    const buf = new Uint8Array(4096);
    for (let i = 0; i < 1000; i++) {
      const n = await conn.read(buf);
      if (n === null) break;
      pending += decoder.decode(buf.subarray(0, n));
      for (let nl = pending.indexOf("\r\n"); nl >= 0; nl = pending.indexOf("\r\n")) {
        const line = pending.slice(0, nl);
        pending = pending.slice(nl + 2);
        if (inData) {
          if (line === ".") {
            inData = false;
            await say("250 2.0.0 Ok: queued as SCRIPTED1");
          } else received += line + "\n";
          continue;
        }
        const verb = line.slice(0, 4).toUpperCase();
        if (verb === "QUIT") {
          await say("221 2.0.0 Bye");
          conn.close();
          return received;
        }
        if (verb === "RCPT") await say(rcpt(line));
        else if (verb === "DATA") {
          inData = true;
          await say("354 Go ahead");
        } else await say("250 2.0.0 Ok");
      }
    }
    conn.close();
    return received;
  })();
  return { port, done };
}

Deno.test("run send prints the final reply and reads stdin", async () => {
  const server = scriptedServer(() => "250 2.1.5 Ok");
  const io = capture("Subject: x\n\nbody\n");
  const argv = ["send", "--server", `127.0.0.1:${server.port}`, "--from", "a@x", "--to", "b@x"];
  assert.equal(await run(argv, {}, io), 0);
  assert.equal(io.out, "250 2.0.0 Ok: queued as SCRIPTED1\n");
  assert.equal(await server.done, "Subject: x\n\nbody\n");
});

Deno.test("run send prints a refusal and exits 1", async () => {
  const server = scriptedServer(() => "550 5.1.1 No such user");
  const io = capture("x\n");
  const argv = ["send", "--server", `127.0.0.1:${server.port}`, "--from", "a@x", "--to", "b@x"];
  assert.equal(await run(argv, {}, io), 1);
  assert.equal(io.err, "smtpd: send: 550 5.1.1 No such user\n");
  await server.done;
});

Deno.test("run send exits 1 and names each refused recipient when others took the message", async () => {
  const server = scriptedServer((line) =>
    line.includes("bad@") ? "550 5.1.1 No such user" : "250 Ok"
  );
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(`${dir}/m.eml`, "Subject: file\r\n\r\nhi\r\n");
    const io = capture();
    const argv = [
      "send",
      "--server",
      `127.0.0.1:${server.port}`,
      "--from",
      "a@x",
      "--to",
      "bad@x",
      "--to",
      "good@x",
      `${dir}/m.eml`,
    ];
    assert.equal(await run(argv, {}, io), 1);
    assert.equal(io.out, "250 2.0.0 Ok: queued as SCRIPTED1\n");
    assert.equal(io.err, "smtpd: send: 550 5.1.1 No such user (bad@x)\n");
    assert.equal(await server.done, "Subject: file\n\nhi\n");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("run serves until --exit-after, and send, list and show work against it", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const ready = `${dir}/ready.json`;
    const spoolDir = `${dir}/spool`;
    const serving = run(
      [
        "--listen",
        "127.0.0.1:0",
        "--ready-file",
        ready,
        "--exit-after",
        "1",
        "--log-level",
        "error",
      ],
      { SMTPD_SPOOL: spoolDir, SMTPD_NO_FSYNC: "1" },
      capture(),
    );
    const { port } = (await poll("the ready file", 10_000, () => readReadyFile(ready)))
      .listeners[0]!;
    const sent = capture("Subject: round trip\n\n.dot\n");
    const argv = [
      "send",
      "--server",
      `127.0.0.1:${port}`,
      "--from",
      "a@x.test",
      "--to",
      "b@x.test",
    ];
    assert.equal(await run(argv, {}, sent), 0, sent.err);
    const id = /^250 2\.0\.0 Ok: queued as (\S+)\n$/.exec(sent.out)?.[1];
    assert.ok(id, sent.out);
    assert.equal(await serving, 0);

    const shown = capture();
    assert.equal(await run(["show", id, "--spool", spoolDir], {}, shown), 0);
    assert.equal(decoder.decode(shown.bytes[0]), "Subject: round trip\r\n\r\n.dot\r\n");
    const listed = capture();
    assert.equal(await run(["list", "--spool", spoolDir], {}, listed), 0);
    assert.match(listed.out, /<?a@x\.test +b@x\.test +round trip +\d+\n$/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("run send: a --ca file without a PEM certificate is named, before any connection", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(`${dir}/ca.txt`, "root:x:0:0:root:/root:/bin/sh\n");
    const io = capture();
    const args = ["send", "--server", "127.0.0.1:1", "--from", "a@x", "--to", "b@x"];
    assert.equal(await run([...args, "--ca", `${dir}/ca.txt`, "-"], {}, io), 1);
    assert.equal(
      io.err,
      `smtpd: send: --ca ${dir}/ca.txt holds no PEM certificate (-----BEGIN CERTIFICATE-----)\n`,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
