/**
 * The companion commands of SPEC §2 against a spool a running server fills:
 * `list [--json]`, `show ID|latest [--meta]`, `wait` (started before the
 * mail, filters, count, time-out, two servers on one spool), `purge
 * [--older-than]` and `send` (plain, STARTTLS with the server's own
 * certificate, AUTH, a 5xx, and Postfix `smtp-sink` as the peer).
 */

import assert from "node:assert/strict";
import {
  assertStored,
  mainArgs,
  poll,
  readSpool,
  runCli,
  type ServerProc,
  sha256Hex,
  startServer,
  type StoredMessage,
} from "../helpers/launcher.ts";
import { queuedId, stuff, transaction } from "../helpers/raw_client.ts";
import { findOnPath } from "../helpers/clients.ts";

const enc = new TextEncoder();
const dec = new TextDecoder();

/** One EHLO + transaction + QUIT on a fresh connection; returns the queued id. */
async function deliver(
  server: ServerProc,
  from: string,
  to: string[],
  message: string,
): Promise<string> {
  await using c = await server.connect();
  assert.equal((await c.readReply()).code, 220);
  assert.equal((await c.command("EHLO client.example")).code, 250);
  const id = queuedId(await transaction(c, from, to, stuff(message)));
  assert.match((await c.command("QUIT")).raw, /^221 2\.0\.0/);
  return id;
}

/** A running companion command with raw stdout (SPEC: `show` is byte for byte). */
interface Spawned {
  pid: number;
  done: Promise<{ code: number; stdout: Uint8Array; stderr: string }>;
}

function spawnCli(args: string[], timeoutMs = 60_000, stdin?: Uint8Array): Spawned {
  const signal = AbortSignal.timeout(timeoutMs);
  const child = new Deno.Command(Deno.execPath(), {
    args: mainArgs(args),
    // Like runCli: a developer's SMTPD_* variables must not change the test.
    env: {
      ...Object.fromEntries(
        Object.entries(Deno.env.toObject()).filter(([k]) => !k.startsWith("SMTPD_")),
      ),
      NO_COLOR: "1",
    },
    clearEnv: true,
    stdin: stdin ? "piped" : "null",
    stdout: "piped",
    stderr: "piped",
    signal,
  }).spawn();
  const done = (async () => {
    if (stdin) {
      const w = child.stdin.getWriter();
      await w.write(stdin);
      await w.close();
    }
    const out = await child.output();
    return { code: out.code, stdout: out.stdout, stderr: dec.decode(out.stderr) };
  })();
  return { pid: child.pid, done };
}

/**
 * Waits until a `wait` process watches the spool (an inotify descriptor in
 * /proc/PID/fd: it has scanned once and found too little), so mail sent
 * afterwards is provably sent after `wait` started. Without /proc (macOS)
 * there is nothing to observe and the caller relies on `wait`'s own rescans.
 */
async function watching(pid: number): Promise<void> {
  try {
    Deno.statSync("/proc/self/fd");
  } catch {
    return;
  }
  await poll(`pid ${pid} to watch the spool`, 30_000, async () => {
    for await (const fd of Deno.readDir(`/proc/${pid}/fd`)) {
      const target = await Deno.readLink(`/proc/${pid}/fd/${fd.name}`).catch(() => "");
      if (target.includes("inotify")) return true;
    }
    return undefined;
  });
}

function lines(text: string): string[] {
  return text.split("\n").filter((l) => l !== "");
}

Deno.test("e2e: list prints one row per message (no header in a pipe); --json one meta per line", async () => {
  await using server = await startServer();
  const m1 = "From: alice@example.com\r\nSubject: first one\r\n\r\nbody 1\r\n";
  const m2 = "From: carol@example.org\r\nSubject: =?utf-8?q?Gr=C3=BC=C3=9Fe?=\r\n\r\nbody 2\r\n";
  const id1 = await deliver(server, "alice@example.com", ["bob@example.com"], m1);
  const id2 = await deliver(server, "", ["x@example.net", "y@example.net"], m2);
  const stored = await readSpool(server.spool);
  await assertStored(stored[0]!, m1);
  await assertStored(stored[1]!, m2);

  // SPEC §2 "one line per message": `smtpd list | wc -l` counts them.
  const table = await runCli(["list", "--spool", server.spool]);
  assert.equal(table.code, 0, table.stderr);
  const rows = lines(table.stdout);
  assert.equal(rows.length, 2, table.stdout);
  assert.ok(rows[0]!.startsWith(id1 + " "), rows[0]);
  assert.match(rows[0]!, /alice@example\.com/);
  assert.match(rows[0]!, /bob@example\.com/);
  assert.match(rows[0]!, /first one/);
  assert.match(rows[0]!, new RegExp(`\\s${enc.encode(m1).length}$`));
  assert.ok(rows[1]!.startsWith(id2 + " "), rows[1]);
  assert.match(rows[1]!, /<>/, "the null sender is shown as <>");
  assert.match(rows[1]!, /Grüße/, "the subject is decoded");
  assert.match(rows[1]!, /x@example\.net,y@example\.net/);

  const json = await runCli(["list", "--json"], { SMTPD_SPOOL: server.spool });
  assert.equal(json.code, 0, json.stderr);
  const metas = lines(json.stdout).map((l) => JSON.parse(l));
  assert.deepEqual(metas, stored.map((m) => m.meta), "--json prints the stored .json objects");
  assert.equal(metas[1]!.mailFrom, "");
  assert.equal(metas[1]!.headers.subject, "Grüße");

  // A .json that holds no metadata: skipped, one warning line, still exit 0.
  const torn = id2.slice(0, -1) + (id2.endsWith("Z") ? "Y" : "Z");
  await Deno.writeTextFile(`${server.spool}/${torn}.json`, '{"id": "');
  const skipping = await runCli(["list", "--spool", server.spool]);
  assert.equal(skipping.code, 0, skipping.stderr);
  assert.deepEqual(lines(skipping.stdout), rows);
  assert.deepEqual(lines(skipping.stderr), [
    `smtpd: list: skipped ${torn}: unreadable metadata (not valid JSON)`,
  ]);
  const shown = await runCli(["show", torn, "--spool", server.spool]);
  assert.equal(shown.code, 1, shown.stderr);
  assert.deepEqual(lines(shown.stderr), [
    `smtpd: message "${torn}" has unreadable metadata (not valid JSON)`,
  ]);
});

Deno.test("e2e: list on an empty spool prints nothing and exits 0", async () => {
  await using server = await startServer();
  const r = await runCli(["list", "--spool", server.spool]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, "");
});

Deno.test("e2e: every reader on a spool path that is a file exits 1 with one line naming the spool", async () => {
  const dir = await Deno.makeTempDir({ prefix: "smtpd-e2e-" });
  try {
    const file = `${dir}/file`;
    await Deno.writeTextFile(file, "x");
    for (const command of [["list"], ["show", "latest"], ["wait", "--timeout", "0"], ["purge"]]) {
      const r = await runCli([...command, "--spool", file]);
      assert.equal(r.code, 1, `${command[0]}: ${r.stderr}`);
      assert.match(r.stderr, new RegExp(`^smtpd: cannot read spool ${file}: \\S.*\n$`), command[0]);
      assert.doesNotMatch(r.stderr, /os error/);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("e2e: show ID and show latest print the .eml byte for byte; --meta its JSON", async () => {
  await using server = await startServer();
  const m1 = "Subject: one\r\n\r\n.leading dot\r\n";
  // 8-bit bytes that are not UTF-8 (BODY=8BITMIME): any text decoding would change them.
  const body2 = Uint8Array.of(
    ...enc.encode("Subject: two\r\n\r\ncaf"),
    0xe9,
    0xff,
    0x00,
    ...enc.encode(" bare\nLF and bare\rCR\r\n"),
  );
  const id1 = await deliver(server, "a@example.com", ["b@example.com"], m1);
  let id2: string;
  {
    await using c = await server.connect();
    await c.readReply();
    await c.command("EHLO client.example");
    assert.equal((await c.command("MAIL FROM:<a@example.com> BODY=8BITMIME")).code, 250);
    assert.equal((await c.command("RCPT TO:<b@example.com>")).code, 250);
    assert.equal((await c.command("DATA")).code, 354);
    await c.send(body2);
    await c.send(".\r\n");
    id2 = queuedId(await c.readReply());
  }
  const [s1, s2] = await readSpool(server.spool);
  await assertStored(s1!, m1);
  await assertStored(s2!, body2);

  for (const [arg, id, want] of [[id1, id1, m1], [id2, id2, body2], ["latest", id2, body2]]) {
    const r = await spawnCli(["show", arg as string, "--spool", server.spool]).done;
    assert.equal(r.code, 0, r.stderr);
    const wantBytes = typeof want === "string" ? enc.encode(want) : want as Uint8Array;
    assert.equal(await sha256Hex(r.stdout), await sha256Hex(wantBytes), `show ${arg}`);
    assert.deepEqual(r.stdout, await Deno.readFile(`${server.spool}/${id}.eml`));
  }
  const meta = await runCli(["show", "latest", "--meta", "--spool", server.spool]);
  assert.equal(meta.code, 0, meta.stderr);
  assert.deepEqual(JSON.parse(meta.stdout), s2!.meta);
  assert.equal(JSON.parse(meta.stdout).sha256, await sha256Hex(body2));
});

Deno.test("e2e: show of an unknown ID (or latest of an empty spool) exits 1 with one line", async () => {
  await using server = await startServer();
  for (const id of ["01JBZ7Y0000000000000000000", "latest", "../etc/passwd"]) {
    const r = await runCli(["show", id, "--spool", server.spool]);
    assert.equal(r.code, 1, `show ${id}: ${r.stdout}${r.stderr}`);
    assert.equal(r.stdout, "");
    assert.equal(lines(r.stderr).length, 1, r.stderr);
    assert.doesNotMatch(r.stderr, /^\s+at /m);
  }
});

Deno.test("e2e: wait started before the mail is satisfied by it, with case-insensitive filters", async () => {
  await using server = await startServer();
  const waiter = spawnCli([
    "wait",
    "--spool",
    server.spool,
    "--count",
    "2",
    "--from",
    "ALICE@",
    "--to",
    "Bob@Example.COM",
    "--subject",
    "invoice",
    "--timeout",
    "30s",
  ]);
  await watching(waiter.pid);
  const matching = "From: Alice <alice@example.com>\r\nSubject: Your INVOICE 42\r\n\r\nx\r\n";
  // Each of these fails exactly one filter.
  const wrongFrom = "Subject: Invoice\r\n\r\nx\r\n";
  const wrongTo = "Subject: Invoice\r\n\r\nx\r\n";
  const wrongSubject = "Subject: Receipt\r\n\r\nx\r\n";
  await deliver(server, "mallory@example.com", ["bob@example.com"], wrongFrom);
  await deliver(server, "alice@example.com", ["carol@example.com"], wrongTo);
  const first = await deliver(server, "alice@example.com", ["bob@example.com"], matching);
  await deliver(server, "alice@example.com", ["bob@example.com"], wrongSubject);
  const second = await deliver(server, "alice@example.com", ["x@y", "bob@example.com"], matching);
  const r = await waiter.done;
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(lines(dec.decode(r.stdout)), [first, second]);
  const stored = await readSpool(server.spool);
  assert.equal(stored.length, 5);
  for (const m of stored.filter((m) => m.id === first || m.id === second)) {
    await assertStored(m, matching);
  }
});

Deno.test("e2e: wait times out with exit 1 and one line naming the timeout", async () => {
  await using server = await startServer();
  await deliver(server, "a@example.com", ["b@example.com"], "Subject: other\r\n\r\n");
  const started = Date.now();
  const r = await runCli([
    "wait",
    "--spool",
    server.spool,
    "--to",
    "nobody@",
    "--timeout",
    "1s",
  ]);
  const took = Date.now() - started;
  assert.equal(r.code, 1, r.stdout + r.stderr);
  assert.equal(r.stdout, "");
  const errLines = lines(r.stderr);
  assert.equal(errLines.length, 1, r.stderr);
  assert.match(errLines[0]!, /timed out after 1s/);
  assert.match(errLines[0]!, /0 of 1/);
  assert.ok(took >= 1000, `returned after ${took} ms`);
  assert.equal((await readSpool(server.spool)).length, 1);
});

Deno.test("e2e: wait counts messages from two servers writing one spool at once", async () => {
  const spool = await Deno.makeTempDir({ prefix: "smtpd-shared-" });
  try {
    await using a = await startServer(["--spool", spool]);
    await using b = await startServer(["--spool", spool]);
    const waiter = spawnCli(["wait", "--spool", spool, "--count", "6", "--to", "bob@"]);
    await watching(waiter.pid);
    const msg = (n: number) => `Subject: shared ${n}\r\n\r\nbody ${n}\r\n`;
    const ids = await Promise.all(
      [0, 1, 2, 3, 4, 5].map((n) =>
        deliver(n % 2 ? a : b, "s@example.com", ["bob@example.com"], msg(n))
      ),
    );
    const r = await waiter.done;
    assert.equal(r.code, 0, r.stderr);
    const printed = lines(dec.decode(r.stdout));
    assert.deepEqual(printed, [...ids].sort(), "every ID, in ID order");
    assert.equal(new Set(printed).size, 6, "IDs unique across the two servers");
    const stored = await readSpool(spool);
    assert.equal(stored.length, 6);
    for (const m of stored) {
      const n = ids.indexOf(m.id);
      await assertStored(m, msg(n));
      assert.equal(m.meta.server.port, (n % 2 ? a : b).port, "stored by the server it was sent to");
    }
  } finally {
    await Deno.remove(spool, { recursive: true });
  }
});

Deno.test("e2e: two servers on one spool: IDs sort in the order the messages were received", async () => {
  const spool = await Deno.makeTempDir({ prefix: "smtpd-shared-" });
  try {
    await using a = await startServer(["--spool", spool, "--no-fsync"]);
    await using b = await startServer(["--spool", spool, "--no-fsync"]);
    await using ca = await a.connect();
    await using cb = await b.connect();
    for (const c of [ca, cb]) {
      await c.readReply();
      await c.command("EHLO client.example");
    }
    // Each message starts after the previous one's 250, alternating servers:
    // many pairs fall in one millisecond, where only the microseconds order them.
    const ids: string[] = [];
    for (let n = 0; n < 300; n++) {
      const c = n % 2 ? ca : cb;
      ids.push(queuedId(await transaction(c, "s@example.com", ["bob@example.com"], "x\r\n.\r\n")));
    }
    const misordered = ids.slice(1).filter((id, i) => id <= ids[i]!);
    assert.deepEqual(misordered, [], "every ID sorts after the one acknowledged before it");
  } finally {
    await Deno.remove(spool, { recursive: true });
  }
});

Deno.test("e2e: a message whose DATA began first but ended last sorts last and is `latest`", async () => {
  await using server = await startServer();
  await using slow = await server.connect();
  await slow.readReply();
  await slow.command("EHLO slow.example");
  assert.equal((await slow.command("MAIL FROM:<slow@example.com>")).code, 250);
  assert.equal((await slow.command("RCPT TO:<bob@example.com>")).code, 250);
  assert.equal((await slow.command("DATA")).code, 354);
  await slow.send("Subject: slow\r\n\r\nfirst half, ");
  const quick = await deliver(
    server,
    "quick@example.com",
    ["bob@example.com"],
    "Subject: quick\r\n\r\nhi\r\n",
  );
  await slow.send("second half\r\n.\r\n");
  const late = queuedId(await slow.readReply());
  assert.ok(quick < late, `${quick} < ${late}`);
  const stored = await readSpool(server.spool);
  assert.deepEqual(stored.map((m) => m.id), [quick, late]);
  assert.ok(stored[0]!.meta.receivedAt <= stored[1]!.meta.receivedAt, "receivedAt agrees");
  const r = await runCli(["show", "latest", "--meta", "--spool", server.spool]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(JSON.parse(r.stdout).id, late);
});

/** Like readSpool, but only `<ULID>.json` (the purge test adds a `config.json`). */
async function messagesOnly(spool: string): Promise<StoredMessage[]> {
  const ids: string[] = [];
  for await (const e of Deno.readDir(spool)) {
    const m = /^([0-7][0-9A-HJKMNP-TV-Z]{25})\.json$/.exec(e.name);
    if (m) ids.push(m[1]!);
  }
  ids.sort();
  return await Promise.all(ids.map(async (id) => ({
    id,
    meta: JSON.parse(await Deno.readTextFile(`${spool}/${id}.json`)),
    eml: await Deno.readFile(`${spool}/${id}.eml`),
  })));
}

/** Crockford base32 of a time, the first 10 characters of an ID. */
function idForTime(ms: number, suffix: string): string {
  const alphabet = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";
  let t = ms;
  let out = "";
  for (let i = 0; i < 10; i++) {
    out = alphabet[t % 32] + out;
    t = Math.floor(t / 32);
  }
  return out + suffix;
}

Deno.test("e2e: purge removes messages and nothing else; --older-than by receipt time", async () => {
  await using server = await startServer();
  const fresh = "Subject: fresh\r\n\r\nnew\r\n";
  const old = "Subject: old\r\n\r\nold\r\n";
  const freshId = await deliver(server, "a@example.com", ["b@example.com"], fresh);
  const oldSource = await deliver(server, "a@example.com", ["b@example.com"], old);
  // Age the second message by two hours: same files, an ID of two hours ago.
  const oldId = idForTime(Date.now() - 2 * 3600_000, oldSource.slice(10));
  const oldMeta = JSON.parse(await Deno.readTextFile(`${server.spool}/${oldSource}.json`));
  oldMeta.id = oldId;
  await Deno.rename(`${server.spool}/${oldSource}.eml`, `${server.spool}/${oldId}.eml`);
  await Deno.writeTextFile(`${server.spool}/${oldId}.json`, JSON.stringify(oldMeta));
  await Deno.remove(`${server.spool}/${oldSource}.json`);
  const extras = ["notes.txt", "notes.eml", "config.json", "README"];
  for (const f of extras) await Deno.writeTextFile(`${server.spool}/${f}`, `keep ${f}\n`);

  const partial = await runCli(["purge", "--older-than", "1h", "--spool", server.spool]);
  assert.equal(partial.code, 0, partial.stderr);
  let left = await messagesOnly(server.spool);
  assert.deepEqual(left.map((m) => m.id), [freshId], "only the two-hour-old message went");
  await assertStored(left[0]!, fresh);
  await assert.rejects(Deno.stat(`${server.spool}/${oldId}.eml`), Deno.errors.NotFound);

  const all = await runCli(["purge"], { SMTPD_SPOOL: server.spool });
  assert.equal(all.code, 0, all.stderr);
  left = await messagesOnly(server.spool);
  assert.deepEqual(left, []);
  const names: string[] = [];
  for await (const e of Deno.readDir(server.spool)) names.push(e.name);
  for (const f of extras) {
    assert.equal(await Deno.readTextFile(`${server.spool}/${f}`), `keep ${f}\n`, `${f} survives`);
  }
  assert.ok(!names.some((n) => n.startsWith(freshId)), names.join(" "));
  // The server still stores into the purged spool.
  const again = await deliver(server, "a@example.com", ["b@example.com"], fresh);
  assert.deepEqual((await messagesOnly(server.spool)).map((m) => m.id), [again]);
});

const SEND_MESSAGE = "From: app@example.com\r\nTo: bob@example.com\r\nSubject: via send\r\n\r\n" +
  ".starts with a dot\r\nline 2\r\n";

/** `smtpd send` of `file` from app@example.com to bob@example.com. */
function sendFile(port: number, file: string): ReturnType<typeof runCli> {
  return runCli([
    "send",
    "--server",
    `127.0.0.1:${port}`,
    "--from",
    "app@example.com",
    "--to",
    "bob@example.com",
    file,
  ]);
}

async function messageFile(dir: string): Promise<string> {
  const path = `${dir}/message.eml`;
  await Deno.writeTextFile(path, SEND_MESSAGE);
  return path;
}

Deno.test("e2e: send delivers a file to this server and prints the 250", async () => {
  await using server = await startServer();
  const file = await messageFile(server.dir);
  const r = await runCli([
    "send",
    "--server",
    `127.0.0.1:${server.port}`,
    "--from",
    "app@example.com",
    "--to",
    "bob@example.com",
    "--to",
    "<carol@example.org>",
    file,
  ]);
  assert.equal(r.code, 0, r.stderr);
  const id = /queued as (\S+)/.exec(r.stdout)?.[1];
  assert.match(r.stdout, /^250 /);
  const [msg] = await readSpool(server.spool);
  assert.ok(msg);
  assert.equal(msg.id, id);
  await assertStored(msg, SEND_MESSAGE);
  assert.equal(msg.meta.mailFrom, "app@example.com");
  assert.deepEqual(msg.meta.rcptTo, ["bob@example.com", "carol@example.org"]);
  assert.equal(msg.meta.tls, null);
  assert.equal(msg.meta.auth, null);
});

Deno.test({
  name: "e2e: send FILE that is a pipe (/dev/stdin) reads it once and sends it whole",
  ignore: Deno.build.os === "windows",
  fn: async () => {
    await using server = await startServer();
    const r = await runCli(
      ["send", "--server", `127.0.0.1:${server.port}`, "--from", "a@example.com"]
        .concat(["--to", "b@example.com", "/dev/stdin"]),
      {},
      { stdin: new TextEncoder().encode(SEND_MESSAGE) },
    );
    assert.equal(r.code, 0, r.stderr);
    const [msg] = await readSpool(server.spool);
    assert.ok(msg);
    await assertStored(msg, SEND_MESSAGE);
    // A pipe cannot be measured before it is read: no SIZE is declared.
    assert.equal(msg.meta.mailParams["SIZE"], undefined);
  },
});

Deno.test("e2e: send of a directory fails before any SMTP, naming it", async () => {
  await using server = await startServer();
  const r = await sendFile(server.port, server.dir);
  assert.equal(r.code, 1, r.stderr);
  assert.equal(r.stderr, `smtpd: send: cannot read ${server.dir}: is a directory\n`);
  assert.deepEqual(await readSpool(server.spool), []);
});

Deno.test("e2e: send turns bare LF and bare CR into CRLF, declares SIZE and BODY=8BITMIME", async () => {
  await using server = await startServer();
  const file = `${server.dir}/mixed.eml`;
  // CRLF lines, then a smuggling attempt with bare LFs, a bare CR and an 8-bit byte.
  await Deno.writeTextFile(
    file,
    "Subject: caf\u00e9\r\n\r\nline1\r\nsmuggle\n.\nMAIL FROM:<evil@x>\r\nabc\rdef",
  );
  const r = await sendFile(server.port, file);
  assert.equal(r.code, 0, r.stderr);
  const [msg] = await readSpool(server.spool);
  assert.ok(msg);
  const expected =
    "Subject: caf\u00e9\r\n\r\nline1\r\nsmuggle\r\n.\r\nMAIL FROM:<evil@x>\r\nabc\r\ndef\r\n";
  await assertStored(msg, expected);
  assert.deepEqual(msg.meta.mailParams, {
    SIZE: String(new TextEncoder().encode(expected).length),
    BODY: "8BITMIME",
  });
});

Deno.test("e2e: send --starttls --ca SPOOL/.tls/cert.pem --auth against --tls-self-signed", async () => {
  const dir = await Deno.makeTempDir({ prefix: "smtpd-send-" });
  try {
    await Deno.writeTextFile(`${dir}/users.txt`, "app:s3cret\n");
    await using server = await startServer([
      "--tls-self-signed",
      "--hostname",
      "mx.test",
      "--auth-file",
      `${dir}/users.txt`,
    ]);
    const ca = `${server.spool}/.tls/cert.pem`;
    const r = await spawnCli(
      [
        "send",
        "--server",
        `127.0.0.1:${server.port}`,
        "--starttls",
        "--ca",
        ca,
        "--auth",
        "app:s3cret",
        "--from",
        "app@example.com",
        "--to",
        "bob@example.com",
        "-",
      ],
      60_000,
      enc.encode(SEND_MESSAGE),
    ).done;
    assert.equal(r.code, 0, r.stderr);
    assert.match(dec.decode(r.stdout), /^250 2\.0\.0 /);
    const [msg] = await readSpool(server.spool);
    assert.ok(msg);
    await assertStored(msg, SEND_MESSAGE);
    assert.equal(msg.meta.protocol, "ESMTPSA");
    assert.match(msg.meta.tls?.protocol ?? "", /^TLSv1\.[23]$/);
    assert.equal(msg.meta.auth?.username, "app");
    assert.ok(["PLAIN", "LOGIN", "CRAM-MD5"].includes(msg.meta.auth?.mechanism));
    assert.doesNotMatch(await Deno.readTextFile(`${server.spool}/${msg.id}.json`), /s3cret/);
    // The STARTTLS session is over: SIGTERM has no transfer in flight to wait for (SPEC §4).
    await server.waitForStderr(/connection closed/);
    const stopping = Date.now();
    assert.equal(await server.stop(), 0);
    const took = Date.now() - stopping;
    assert.ok(took < 5000, `exit took ${took} ms after a finished STARTTLS session`);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("e2e: send exits 1 with the server's reply on a 5xx (wrong AUTH, refused RCPT)", async () => {
  const dir = await Deno.makeTempDir({ prefix: "smtpd-send-" });
  try {
    await Deno.writeTextFile(`${dir}/users.txt`, "app:s3cret\n");
    await using server = await startServer([
      "--auth-file",
      `${dir}/users.txt`,
      "--accept-rcpt",
      "^a@",
    ]);
    const base = ["send", "--server", `127.0.0.1:${server.port}`, "--from", "app@example.com"];
    const file = await messageFile(dir);
    const badAuth = await runCli([...base, "--auth", "app:wrong", "--to", "a@example.com", file]);
    assert.equal(badAuth.code, 1, badAuth.stdout + badAuth.stderr);
    assert.match(badAuth.stdout + badAuth.stderr, /535 5\.7\.8/);
    assert.equal(lines(badAuth.stderr).length, 1, badAuth.stderr);
    const refused = await runCli([...base, "--to", "z@example.com", file]);
    assert.equal(refused.code, 1, refused.stdout + refused.stderr);
    assert.match(refused.stdout + refused.stderr, /550 5\.1\.1/);
    assert.doesNotMatch(refused.stderr, /^\s+at /m);
    assert.deepEqual(await readSpool(server.spool), [], "nothing stored");
    // The good case on the same server, for contrast.
    const ok = await runCli([...base, "--auth", "app:s3cret", "--to", "a@example.com", file]);
    assert.equal(ok.code, 0, ok.stderr);
    const [msg] = await readSpool(server.spool);
    assert.ok(msg);
    await assertStored(msg, SEND_MESSAGE);
    assert.deepEqual(msg.meta.auth, { mechanism: msg.meta.auth.mechanism, username: "app" });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("e2e: send refuses a message over the server's SIZE in its own words, exit 1", async () => {
  await using server = await startServer(["--max-size", "50"]);
  const file = await messageFile(server.dir);
  const size = enc.encode(SEND_MESSAGE).length;
  const r = await sendFile(server.port, file);
  assert.equal(r.code, 1, r.stdout + r.stderr);
  assert.equal(r.stdout, "");
  // Not "552 5.3.4 …": no server said that.
  assert.deepEqual(lines(r.stderr), [
    `smtpd: send: the message is ${size} bytes; the server accepts at most 50 (SIZE)`,
  ]);
  assert.deepEqual(await readSpool(server.spool), []);
});

Deno.test("e2e: send refuses an address with CR LF, <, > or a space as a usage error, sending nothing", async () => {
  await using server = await startServer();
  const file = await messageFile(server.dir);
  const injected = "ok@y>\r\nRCPT TO:<ok2@y";
  for (const [flag, value] of [["--to", injected], ["--from", "a b@example.com"]] as const) {
    const args = ["send", "--server", `127.0.0.1:${server.port}`, "--from", "a@example.com"];
    const r = await runCli([
      ...args,
      "--to",
      "bob@example.com",
      flag,
      value,
      file,
    ]);
    assert.equal(r.code, 2, r.stdout + r.stderr);
    assert.equal(lines(r.stderr).length, 1, r.stderr);
    assert.ok(r.stderr.startsWith(`smtpd: ${flag}: `), r.stderr);
  }
  assert.deepEqual(await readSpool(server.spool), []);
  assert.doesNotMatch(server.stderr(), /connection opened/, "never connected");
});

/** A port that was free a moment ago (for tools that cannot take port 0). */
function freePort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return port;
}

const SMTP_SINK = findOnPath("smtp-sink");
if (!SMTP_SINK) {
  Deno.stderr.writeSync(
    enc.encode('skip "send to smtp-sink": /usr/sbin/smtp-sink not installed\n'),
  );
}

Deno.test({
  name: "e2e: send delivers to Postfix smtp-sink (another server's dialect)",
  ignore: !SMTP_SINK,
  fn: async () => {
    const dir = await Deno.makeTempDir({ prefix: "smtpd-sink-" });
    const port = freePort();
    const dump = `${dir}/dump`;
    // -u: smtp-sink drops root privileges to this user; -D: append each message to a file.
    const sink = new Deno.Command(SMTP_SINK!, {
      args: ["-u", "nobody", "-D", dump, "-c", `127.0.0.1:${port}`, "10"],
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
      signal: AbortSignal.timeout(60_000),
    }).spawn();
    try {
      await Deno.chmod(dir, 0o777);
      await poll("smtp-sink to listen", 10_000, async () => {
        try {
          (await Deno.connect({ hostname: "127.0.0.1", port })).close();
          return true;
        } catch {
          return undefined;
        }
      });
      const file = await messageFile(dir);
      const r = await sendFile(port, file);
      assert.equal(r.code, 0, r.stdout + r.stderr);
      assert.match(r.stdout, /^250 /);
      const dumped = await poll("smtp-sink dump", 10_000, async () => {
        const text = await Deno.readTextFile(dump).catch(() => "");
        return text.includes("line 2") ? text : undefined;
      });
      // smtp-sink writes LF line ends; the leading dot arriving intact proves `send` stuffed it.
      assert.ok(dumped.includes(SEND_MESSAGE.replaceAll("\r\n", "\n")), JSON.stringify(dumped));
      assert.match(dumped, /^X-Mail-Args: <app@example\.com>$/m);
      assert.match(dumped, /^X-Rcpt-Args: <bob@example\.com>$/m);
    } finally {
      try {
        sink.kill("SIGTERM");
      } catch {
        // already gone
      }
      await sink.output();
      await Deno.remove(dir, { recursive: true });
    }
  },
});
