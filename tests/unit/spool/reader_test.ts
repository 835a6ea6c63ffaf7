import assert from "node:assert/strict";
import { isMessageId, matchesFilter, SpoolReader } from "../../../lib/spool/reader.ts";
import { SpoolWriter } from "../../../lib/spool/writer.ts";
import type { Meta, MetaInput } from "../../../lib/spool/meta.ts";

function input(mailFrom: string, rcptTo: string[]): MetaInput {
  return {
    mailFrom,
    rcptTo,
    mailParams: {},
    rcptParams: rcptTo.map(() => ({})),
    helo: "h",
    protocol: "ESMTP",
    client: { address: "127.0.0.1", port: 1 },
    server: { address: "127.0.0.1", port: 2 },
    tls: null,
    auth: null,
  };
}

async function store(
  spool: SpoolWriter,
  from: string,
  to: string[],
  headers: string,
): Promise<Meta> {
  const sink = await spool.begin();
  await sink.write(new TextEncoder().encode(`${headers}\r\n\r\nbody\r\n`));
  return await sink.commit(input(from, to));
}

async function withSpool(fn: (dir: string, spool: SpoolWriter) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir();
  const spool = await SpoolWriter.open({ dir, fsync: false });
  try {
    await fn(dir, spool);
  } finally {
    await spool.close();
    await Deno.remove(dir, { recursive: true });
  }
}

async function collect(it: AsyncIterable<Meta>): Promise<Meta[]> {
  const out: Meta[] = [];
  for await (const m of it) out.push(m);
  return out;
}

Deno.test("SpoolReader lists complete messages in id order and filters them", async () => {
  await withSpool(async (dir, spool) => {
    const a = await store(spool, "alice@example.com", ["bob@example.com"], "Subject: Hello Bob");
    const b = await store(spool, "", ["carol@example.org"], "Subject: Reset\r\nFrom: Shop <n@x>");
    const c = await store(spool, "dave@x", ["x@y", "BOB@example.com"], "To: T <t@z>");
    const pending = await spool.begin(); // not committed: never listed
    await Deno.writeTextFile(`${dir}/config.json`, JSON.stringify(a)); // not a message id
    await Deno.writeTextFile(`${dir}/01ARZ3NDEKTSV4RRFFQ69G5FAV.json`, "{ torn"); // unparsable
    await Deno.writeTextFile(`${dir}/01ARZ3NDEKTSV4RRFFQ69G5FAW.eml`, "orphan");

    const reader = new SpoolReader(dir);
    assert.equal(reader.dir, dir);
    const ids = await reader.ids();
    assert.deepEqual(ids, ["01ARZ3NDEKTSV4RRFFQ69G5FAV", a.id, b.id, c.id]);
    const ids3 = (metas: Meta[]): string[] => metas.map((m) => m.id);
    assert.deepEqual(ids3(await collect(reader.list())), [a.id, b.id, c.id]);
    assert.deepEqual(ids3(await collect(reader.list({ to: "bob@EXAMPLE" }))), [a.id, c.id]);
    assert.deepEqual(ids3(await collect(reader.list({ to: "t@z" }))), [c.id]);
    assert.deepEqual(ids3(await collect(reader.list({ from: "shop" }))), [b.id]);
    assert.deepEqual(ids3(await collect(reader.list({ from: "ALICE" }))), [a.id]);
    assert.deepEqual(ids3(await collect(reader.list({ subject: "reset" }))), [b.id]);
    assert.deepEqual(ids3(await collect(reader.list({ from: "alice", subject: "reset" }))), []);
    assert.deepEqual(ids3(await collect(reader.list({ subject: "" }))), [a.id, b.id]);
    const skipped: string[] = [];
    const onUnreadable = (id: string, reason: string) => skipped.push(`${id}: ${reason}`);
    assert.deepEqual(ids3(await collect(reader.list(undefined, { onUnreadable }))), [
      a.id,
      b.id,
      c.id,
    ]);
    assert.deepEqual(skipped, ["01ARZ3NDEKTSV4RRFFQ69G5FAV: not valid JSON"]);
    await pending.abort();
  });
});

Deno.test({
  name: "SpoolReader: a .json that cannot be read is skipped by list and unreadable to read",
  // ELOOP's number and symlinks without privileges are Linux's.
  ignore: Deno.build.os !== "linux",
}, async () => {
  await withSpool(async (dir, spool) => {
    const reader = new SpoolReader(dir);
    const a = await store(spool, "a@x", ["b@x"], "Subject: one");
    // A symlink loop: a read error (ELOOP) that even root gets, unlike mode 000.
    const looped = "01ARZ3NDEKTSV4RRFFQ69G5FAV";
    await Deno.symlink(`${dir}/${looped}.json`, `${dir}/${looped}.json`);
    const skipped: string[] = [];
    const onUnreadable = (id: string, reason: string) => skipped.push(`${id}: ${reason}`);
    assert.deepEqual((await collect(reader.list(undefined, { onUnreadable }))).map((m) => m.id), [
      a.id,
    ]);
    assert.equal(skipped.length, 1);
    assert.match(skipped[0]!, /^01ARZ3NDEKTSV4RRFFQ69G5FAV: cannot read it: .*\(os error 40\)$/);
    const read = await reader.read(looped);
    assert.equal(read.status, "unreadable");
  });
});

Deno.test("SpoolReader.read tells a missing message from one whose .json is not valid", async () => {
  await withSpool(async (dir, spool) => {
    const reader = new SpoolReader(dir);
    const a = await store(spool, "a@x", ["b@x"], "Subject: one");
    const b = await store(spool, "a@x", ["b@x"], "Subject: two");
    assert.deepEqual(await reader.read(a.id), { status: "ok", meta: a });
    assert.deepEqual(await reader.read("01ARZ3NDEKTSV4RRFFQ69G5FAV"), { status: "missing" });
    assert.deepEqual(await reader.read("../x"), { status: "missing" });
    const cases: [string, string][] = [
      ["", "empty file"],
      ["{ torn", "not valid JSON"],
      ['{"id": 1}', "required fields missing or of the wrong type"],
      [JSON.stringify(a), "its id is another message's"],
    ];
    for (const [text, reason] of cases) {
      await Deno.writeTextFile(`${dir}/${b.id}.json`, text);
      assert.deepEqual(await reader.read(b.id), { status: "unreadable", reason }, text);
      assert.equal(await reader.meta(b.id), null);
      // latest is the newest readable message.
      assert.deepEqual(await reader.read("latest"), { status: "ok", meta: a });
    }
  });
});

Deno.test("SpoolReader.meta: by id, latest, unknown and invalid ids", async () => {
  await withSpool(async (dir, spool) => {
    const reader = new SpoolReader(dir);
    assert.equal(await reader.meta("latest"), null);
    const a = await store(spool, "a@x", ["b@x"], "Subject: one");
    const b = await store(spool, "a@x", ["b@x"], "Subject: two");
    assert.deepEqual(await reader.meta(a.id), a);
    assert.deepEqual(await reader.meta("latest"), b);
    assert.equal(await reader.meta("01ARZ3NDEKTSV4RRFFQ69G5FAV"), null);
    for (const bad of ["../x", "", "config", `${a.id}/../${a.id}`, a.id.toLowerCase()]) {
      assert.equal(await reader.meta(bad), null, bad);
    }
    assert.equal(reader.emlPath(a.id), `${dir}/${a.id}.eml`);
    assert.ok(isMessageId(a.id));
    for (const bad of ["../x", "", `${a.id}/../x`]) {
      assert.throws(() => reader.emlPath(bad), { name: "RangeError", message: /not a message ID/ });
      assert.throws(() => reader.metaPath(bad), {
        name: "RangeError",
        message: /not a message ID/,
      });
    }
  });
});

Deno.test("SpoolReader on a missing directory is empty", async () => {
  const reader = new SpoolReader("/nonexistent/spool/dir");
  assert.deepEqual(await reader.ids(), []);
  assert.equal(await reader.meta("latest"), null);
  assert.equal(await reader.purge(), 0);
  const result = await reader.wait({ count: 1, timeoutMs: 0 });
  assert.deepEqual(result, { matched: [], timedOut: true });
});

Deno.test("SpoolReader.wait returns at once when enough messages already match", async () => {
  await withSpool(async (dir, spool) => {
    const a = await store(spool, "a@x", ["bob@x"], "Subject: s");
    await store(spool, "a@x", ["carol@x"], "Subject: s");
    const result = await new SpoolReader(dir).wait({
      count: 1,
      timeoutMs: 5_000,
      filter: { to: "bob" },
    });
    assert.deepEqual(result, { matched: [a], timedOut: false });
  });
});

Deno.test("SpoolReader.wait is resolved by a message committed after it started", async () => {
  await withSpool(async (dir, spool) => {
    const reader = new SpoolReader(dir);
    const started = Date.now();
    const waiting = reader.wait({ count: 2, timeoutMs: 10_000, filter: { subject: "go" } });
    await new Promise((resolve) => setTimeout(resolve, 50));
    const a = await store(spool, "a@x", ["b@x"], "Subject: go 1");
    await store(spool, "a@x", ["b@x"], "Subject: other");
    await new Promise((resolve) => setTimeout(resolve, 50));
    const b = await store(spool, "a@x", ["b@x"], "Subject: go 2");
    const result = await waiting;
    assert.deepEqual(result, { matched: [a, b], timedOut: false });
    assert.ok(Date.now() - started < 5_000);
  });
});

Deno.test("SpoolReader.wait stops counting a match that is purged while it waits", async () => {
  await withSpool(async (dir, spool) => {
    const reader = new SpoolReader(dir);
    await store(spool, "a@x", ["b@x"], "Subject: 1");
    const waiting = reader.wait({ count: 2, timeoutMs: 1_500 });
    await new Promise((resolve) => setTimeout(resolve, 300));
    assert.equal(await reader.purge(), 1);
    const b = await store(spool, "a@x", ["b@x"], "Subject: 2");
    assert.deepEqual(await waiting, { matched: [b], timedOut: true });
  });
});

Deno.test("SpoolReader.wait works when the spool is created after it started", async () => {
  const base = await Deno.makeTempDir();
  try {
    const dir = `${base}/later`;
    const waiting = new SpoolReader(dir).wait({ count: 1, timeoutMs: 10_000 });
    await new Promise((resolve) => setTimeout(resolve, 100));
    const spool = await SpoolWriter.open({ dir, fsync: false });
    const a = await store(spool, "a@x", ["b@x"], "Subject: s");
    assert.deepEqual(await waiting, { matched: [a], timedOut: false });
    await spool.close();
  } finally {
    await Deno.remove(base, { recursive: true });
  }
});

Deno.test("SpoolReader.wait times out with the matches so far", async () => {
  await withSpool(async (dir, spool) => {
    const a = await store(spool, "a@x", ["b@x"], "Subject: s");
    const started = Date.now();
    const result = await new SpoolReader(dir).wait({ count: 2, timeoutMs: 300 });
    const elapsed = Date.now() - started;
    assert.deepEqual(result, { matched: [a], timedOut: true });
    assert.ok(elapsed >= 290 && elapsed < 3_000, `${elapsed} ms`);
  });
});

Deno.test("SpoolReader.wait stops when its signal aborts", async () => {
  await withSpool(async (dir) => {
    const controller = new AbortController();
    const started = Date.now();
    const waiting = new SpoolReader(dir).wait({
      count: 1,
      timeoutMs: 30_000,
      signal: controller.signal,
    });
    setTimeout(() => controller.abort(), 100);
    assert.deepEqual(await waiting, { matched: [], timedOut: true });
    assert.ok(Date.now() - started < 5_000);
  });
});

Deno.test("SpoolReader.purge removes complete messages only", async () => {
  await withSpool(async (dir, spool) => {
    await store(spool, "a@x", ["b@x"], "Subject: 1");
    await store(spool, "a@x", ["b@x"], "Subject: 2");
    const pending = await spool.begin();
    // Past the 64 KiB write buffer: the in-flight message has its .tmp file.
    pending.write(new Uint8Array(70 * 1024));
    const others = ["notes.eml", "config.json", "01ARZ3NDEKTSV4RRFFQ69G5FAW.eml"];
    for (const name of others) await Deno.writeTextFile(`${dir}/${name}`, "x");

    const reader = new SpoolReader(dir);
    assert.equal(await reader.purge({ olderThanMs: 60_000 }), 0, "nothing that old");
    assert.equal(await reader.purge(), 2);
    assert.equal(await reader.purge(), 0);
    const left: string[] = [];
    for await (const e of Deno.readDir(dir)) left.push(e.name);
    assert.deepEqual(left.sort(), [".tmp", ...others].sort());
    assert.equal(
      [...Deno.readDirSync(`${dir}/.tmp`)].filter((e) => e.name !== ".lock").length,
      1,
      "the message in flight keeps its file in .tmp/",
    );
    await pending.abort();
  });
});

Deno.test("SpoolReader.purge keeps a directory that bears a message's .eml name", async () => {
  await withSpool(async (dir, spool) => {
    const { id } = await store(spool, "a@x", ["b@x"], "Subject: 1");
    await Deno.remove(`${dir}/${id}.eml`);
    await Deno.mkdir(`${dir}/${id}.eml`);
    assert.equal(await new SpoolReader(dir).purge(), 1);
    assert.ok((await Deno.lstat(`${dir}/${id}.eml`)).isDirectory, "not a file: not touched");
  });
});

Deno.test("SpoolReader.purge --older-than measures by the id's time", async () => {
  await withSpool(async (dir, spool) => {
    const a = await store(spool, "a@x", ["b@x"], "Subject: 1");
    const reader = new SpoolReader(dir);
    const received = Date.parse(a.receivedAt);
    assert.equal(await reader.purge({ olderThanMs: 60_000, now: new Date(received + 1_000) }), 0);
    assert.equal(await reader.purge({ olderThanMs: 60_000, now: new Date(received + 61_000) }), 1);
    assert.deepEqual(await reader.ids(), []);
  });
});

Deno.test("matchesFilter: all given conditions must hold", () => {
  const meta = {
    mailFrom: "",
    rcptTo: ["bob@x"],
    headers: { from: "Shop <s@x>", subject: "Hi" },
  } as unknown as Meta;
  assert.ok(matchesFilter(meta));
  assert.ok(matchesFilter(meta, { from: "shop", to: "BOB", subject: "hi" }));
  assert.ok(!matchesFilter(meta, { from: "shop", to: "carol" }));
  assert.ok(!matchesFilter(meta, { subject: "bye" }));
  assert.ok(!matchesFilter({ ...meta, headers: {} }, { subject: "" }));
});

Deno.test("matchesFilter: from <> selects the null sender only", () => {
  const bounce = { mailFrom: "", rcptTo: ["bob@x"], headers: {} } as unknown as Meta;
  const quoted = { ...bounce, mailFrom: "a@x", headers: { from: "<>" } } as unknown as Meta;
  assert.ok(matchesFilter(bounce, { from: "<>" }));
  assert.ok(!matchesFilter(quoted, { from: "<>" }), "not a substring of the From header");
  assert.ok(!matchesFilter(bounce, { from: "<>", to: "carol" }));
});
