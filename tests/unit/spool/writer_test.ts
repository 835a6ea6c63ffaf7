import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import fc from "fast-check";
import { SpoolError, SpoolWriter, toSpoolError } from "../../../lib/spool/writer.ts";
import type { MetaInput } from "../../../lib/spool/meta.ts";
import { IdGenerator, idTime, isMessageId } from "../../../lib/spool/id.ts";
import { withTempDir } from "../../helpers/temp_dir.ts";

const enc = (s: string): Uint8Array => new TextEncoder().encode(s);

/** The ID the next commit takes: fixed, so a test can put files in its way first. */
const NEXT_ID = "01M85TAA7D6H544FFN7G7EXWHT";

/**
 * Runs `fn` while every generator hands out {@linkcode NEXT_ID}. An ID is
 * allocated when a commit starts, so only this lets a test make it clash.
 */
async function withFixedId(fn: () => Promise<void>): Promise<void> {
  const next = Object.getOwnPropertyDescriptor(IdGenerator.prototype, "next")!;
  Object.defineProperty(IdGenerator.prototype, "next", { ...next, value: () => NEXT_ID });
  try {
    await fn();
  } finally {
    Object.defineProperty(IdGenerator.prototype, "next", next);
  }
}

function input(overrides: Partial<MetaInput> = {}): MetaInput {
  return {
    mailFrom: "alice@example.com",
    rcptTo: ["bob@example.com"],
    mailParams: { BODY: "8BITMIME" },
    rcptParams: [{}],
    helo: "client.example",
    protocol: "ESMTP",
    client: { address: "127.0.0.1", port: 50412 },
    server: { address: "127.0.0.1", port: 1025 },
    tls: null,
    auth: null,
    ...overrides,
  };
}

async function names(dir: string): Promise<string[]> {
  const out: string[] = [];
  // `.tmp/.lock` is the running writer's spool lock, not a message.
  for await (const e of Deno.readDir(dir)) if (e.name !== ".lock") out.push(e.name);
  return out.sort();
}

for (const fsync of [true, false]) {
  Deno.test(`SpoolWriter commit stores .eml and .json (fsync ${fsync})`, async () => {
    await withTempDir(async (dir) => {
      const spool = await SpoolWriter.open({ dir, fsync });
      const message = "Subject: =?utf-8?Q?h=C3=A9llo?=\r\nFrom: a@b\r\n\r\nbody\r\n.. dot\r\n";
      const sink = await spool.begin();
      const reused = enc(message);
      await sink.write(reused.subarray(0, 10));
      reused.fill(0, 0, 10); // the caller may reuse its buffer once write resolves
      await sink.write(enc(message).subarray(10));
      assert.equal(sink.size, reused.length);
      const meta = await sink.commit(input());
      const id = meta.id;
      assert.ok(isMessageId(id));

      const eml = await Deno.readFile(`${dir}/${id}.eml`);
      assert.equal(new TextDecoder().decode(eml), message);
      const stored = JSON.parse(await Deno.readTextFile(`${dir}/${id}.json`));
      assert.deepEqual(stored, meta);
      assert.equal(meta.size, eml.length);
      assert.equal(meta.sha256, createHash("sha256").update(eml).digest("hex"));
      assert.deepEqual(meta.headers, { subject: "héllo", from: "a@b" });
      assert.match(meta.receivedAt, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
      assert.equal(Date.parse(meta.receivedAt), idTime(id), "receivedAt is the ID's time");
      assert.equal(meta.mailFrom, "alice@example.com");
      assert.deepEqual(await names(dir), [".tmp", `${id}.eml`, `${id}.json`]);
      assert.deepEqual(await names(`${dir}/.tmp`), []);
      await spool.close();
    });
  });
}

Deno.test("SpoolWriter stores large and empty messages byte for byte", async () => {
  await withTempDir(async (dir) => {
    const spool = await SpoolWriter.open({ dir, fsync: false });
    const big = new Uint8Array(300_000);
    for (let i = 0; i < big.length; i++) big[i] = (i * 7) & 0xff;
    const sink = await spool.begin();
    // Chunks below, at and above the 64 KiB buffer.
    const cuts = [[0, 70_000], [70_000, 70_100], [70_100, 200_000], [200_000, 200_001], [
      200_001,
      300_000,
    ]];
    for (const [from, to] of cuts) {
      await sink.write(big.subarray(from!, to!));
    }
    const meta = await sink.commit(input());
    assert.deepEqual(await Deno.readFile(`${dir}/${meta.id}.eml`), big);
    assert.equal(meta.sha256, createHash("sha256").update(big).digest("hex"));

    const empty = await spool.begin();
    const emptyMeta = await empty.commit(input({ mailFrom: "" }));
    assert.equal((await Deno.stat(`${dir}/${emptyMeta.id}.eml`)).size, 0);
    assert.equal(emptyMeta.size, 0);
    assert.equal(
      emptyMeta.sha256,
      "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    );
    assert.deepEqual(emptyMeta.headers, {});
    assert.ok(meta.id < emptyMeta.id);
    await spool.close();
  });
});

Deno.test("SpoolWriter: a commit gate sees the .eml in place and no .json; false withdraws it", async () => {
  for (const fsync of [true, false]) {
    for (const size of [100, 100_000]) { // in the write buffer, and streamed to .tmp/
      await withTempDir(async (dir) => {
        const spool = await SpoolWriter.open({ dir, fsync });
        const seen: string[][] = [];
        const gate = (answer: boolean) => async (meta: { id: string }) => {
          assert.equal((await Deno.stat(`${dir}/${meta.id}.eml`)).size, size);
          seen.push(await names(dir));
          return answer;
        };
        const refused = spool.begin();
        refused.write(new Uint8Array(size).fill(0x61));
        assert.equal(await refused.commit(input(), gate(false)), null);
        assert.deepEqual(await names(dir), [".tmp"], `fsync ${fsync}, ${size} bytes`);
        assert.deepEqual(await names(`${dir}/.tmp`), [], "no temporary file left");
        const kept = spool.begin();
        kept.write(new Uint8Array(size).fill(0x62));
        const meta = await kept.commit(input(), gate(true));
        assert.ok(meta);
        assert.deepEqual(await names(dir), [".tmp", `${meta.id}.eml`, `${meta.id}.json`]);
        for (const listed of seen) {
          assert.ok(!listed.some((n) => n.endsWith(".json")), listed.join());
        }
        await spool.close();
      });
    }
  }
});

Deno.test("SpoolWriter: messages above 1 MiB are hashed by the worker, aborts drop their job", async () => {
  await withTempDir(async (dir) => {
    const failures: string[] = [];
    const spool = await SpoolWriter.open({
      dir,
      fsync: false,
      onHashWorkerFailure: (reason) => failures.push(reason),
    });
    const big = new Uint8Array(5 * 1024 * 1024 + 3);
    for (let i = 0; i < big.length; i++) big[i] = (i * 13) & 0xff;
    const [kept, dropped] = [spool.begin(), spool.begin()];
    for (let at = 0; at < big.length; at += 100_000) {
      const piece = big.subarray(at, at + 100_000);
      kept.write(piece);
      if (at < 3_000_000) dropped.write(piece);
    }
    dropped.abort();
    const meta = await kept.commit(input());
    assert.equal(meta.size, big.length);
    assert.equal(meta.sha256, createHash("sha256").update(big).digest("hex"));
    assert.deepEqual(await Deno.readFile(`${dir}/${meta.id}.eml`), big);
    assert.deepEqual(await names(`${dir}/.tmp`), []);
    assert.deepEqual(failures, []);
    await spool.close();
  });
});

Deno.test("SpoolWriter: with fsync, a 40 MiB message synced while it arrives is stored whole", async () => {
  await withTempDir(async (dir) => {
    const spool = await SpoolWriter.open({ dir, fsync: true });
    const piece = new Uint8Array(256 * 1024).map((_, i) => i & 0xff);
    const sink = spool.begin();
    const hash = createHash("sha256");
    for (let i = 0; i < 160; i++) {
      piece[0] = i;
      sink.write(piece);
      hash.update(piece);
      if (i % 16 === 0) await new Promise((r) => setTimeout(r, 0)); // let early syncs finish
    }
    const meta = await sink.commit(input());
    assert.equal(meta.size, 160 * piece.length);
    assert.equal(meta.sha256, hash.digest("hex"));
    assert.equal((await Deno.stat(`${dir}/${meta.id}.eml`)).size, meta.size);
    await spool.close();
  });
});

Deno.test("SpoolWriter: abort leaves nothing and is idempotent", async () => {
  await withTempDir(async (dir) => {
    const spool = await SpoolWriter.open({ dir, fsync: true });
    const sink = await spool.begin();
    await sink.write(enc("Subject: x\r\n\r\n"));
    await sink.abort();
    await sink.abort();
    assert.deepEqual(await names(dir), [".tmp"]);
    assert.deepEqual(await names(`${dir}/.tmp`), []);
    assert.throws(() => sink.write(enc("x")), SpoolError);
    await assert.rejects(sink.commit(input()), SpoolError);
    await spool.close();
  });
});

Deno.test("SpoolWriter: abort after commit does not remove the message", async () => {
  await withTempDir(async (dir) => {
    const spool = await SpoolWriter.open({ dir, fsync: false });
    const sink = await spool.begin();
    const meta = await sink.commit(input());
    await sink.abort();
    assert.deepEqual(await names(dir), [".tmp", `${meta.id}.eml`, `${meta.id}.json`]);
    await spool.close();
  });
});

Deno.test("SpoolWriter: many concurrent commits with fsync all land (group commit)", async () => {
  await withTempDir(async (dir) => {
    const spool = await SpoolWriter.open({ dir, fsync: true });
    const metas = await Promise.all(
      Array.from({ length: 40 }, async (_, i) => {
        const sink = await spool.begin();
        await sink.write(enc(`Subject: ${i}\r\n\r\n`));
        return await sink.commit(input());
      }),
    );
    assert.equal(new Set(metas.map((m) => m.id)).size, 40);
    assert.equal((await names(dir)).length, 81);
    await spool.close();
  });
});

Deno.test("SpoolWriter.open creates the spool with parents and makes dir absolute", async () => {
  const base = await Deno.makeTempDir();
  const cwd = Deno.cwd();
  try {
    Deno.chdir(base);
    const spool = await SpoolWriter.open({ dir: "a/b/", fsync: false });
    assert.equal(spool.dir, `${Deno.cwd()}/a/b`);
    assert.ok((await Deno.stat(`${base}/a/b/.tmp`)).isDirectory);
    await spool.close();
    assert.throws(() => spool.begin(), SpoolError);
  } finally {
    Deno.chdir(cwd);
    await Deno.remove(base, { recursive: true });
  }
});

Deno.test("SpoolWriter.open fails with a one-line unwritable SpoolError", async () => {
  const base = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(`${base}/file`, "");
    const error = await SpoolWriter.open({ dir: `${base}/file/spool`, fsync: true }).then(
      () => null,
      (e: unknown) => e,
    );
    assert.ok(error instanceof SpoolError);
    assert.equal(error.kind, "unwritable");
    assert.ok(error.message.includes(`"${base}/file/spool"`), error.message);
    assert.ok(!error.message.includes("\n"));
  } finally {
    await Deno.remove(base, { recursive: true });
  }
});

Deno.test("SpoolWriter: a spool removed underneath fails every commit with SpoolError", async () => {
  const dir = await Deno.makeTempDir();
  const spool = await SpoolWriter.open({ dir, fsync: true });
  const sink = await spool.begin();
  await sink.write(enc("x"));
  await Deno.remove(dir, { recursive: true });
  await assert.rejects(sink.commit(input()), (e: unknown) => {
    assert.ok(e instanceof SpoolError);
    assert.equal(e.kind, "unwritable");
    return true;
  });
  // The file of a message is created when its bytes leave memory: commit is where it fails.
  const next = spool.begin();
  next.write(enc("y"));
  await assert.rejects(next.commit(input()), SpoolError);
  await sink.abort();
  await spool.close();
});

Deno.test("SpoolWriter.repair recreates a removed spool and its lock, and nothing else", async () => {
  const dir = await Deno.makeTempDir();
  const spool = await SpoolWriter.open({ dir, fsync: true });
  assert.equal(await spool.repair(), false, "nothing to repair");
  await Deno.remove(dir, { recursive: true });
  // Concurrent failures share one repair.
  assert.deepEqual(await Promise.all([spool.repair(), spool.repair()]), [true, true]);
  assert.ok((await Deno.stat(`${dir}/.tmp/.lock`)).isFile);
  // Another server's start-up recovery must still see this one: the lock is held again.
  const probe = await Deno.open(`${dir}/.tmp/.lock`, { read: true, write: true });
  assert.equal(await probe.tryLock(true), false);
  probe.close();
  const sink = spool.begin();
  sink.write(enc("after"));
  const meta = await sink.commit(input());
  assert.equal(await Deno.readTextFile(`${dir}/${meta.id}.eml`), "after");
  await spool.close();
  await Deno.remove(dir, { recursive: true });
  assert.equal(await spool.repair(), false, "a closed writer recreates nothing");
  await assert.rejects(Deno.stat(dir), Deno.errors.NotFound);
});

Deno.test("SpoolWriter.repair: a writer whose spool another one recreated takes the new lock", async () => {
  const dir = await Deno.makeTempDir();
  const first = await SpoolWriter.open({ dir, fsync: false });
  const second = await SpoolWriter.open({ dir, fsync: false, recover: false });
  await Deno.remove(dir, { recursive: true });
  assert.equal(await first.repair(), true);
  assert.equal(await second.repair(), true, "its lock sits on the removed file");
  assert.equal(await second.repair(), false);
  await first.close();
  const probe = await Deno.open(`${dir}/.tmp/.lock`, { read: true, write: true });
  assert.equal(await probe.tryLock(true), false, "the second writer still holds the new lock");
  probe.close();
  await second.close();
  await Deno.remove(dir, { recursive: true });
});

Deno.test("SpoolWriter: a writer whose spool another one made anew takes the new lock at its next commit", async () => {
  for (const fsync of [false, true]) {
    const dir = await Deno.makeTempDir();
    const first = await SpoolWriter.open({ dir, fsync });
    const second = await SpoolWriter.open({ dir, fsync, recover: false });
    await Deno.remove(dir, { recursive: true });
    assert.equal(await first.repair(), true);
    // No failure tells the second writer: its commits succeed in the new spool.
    const sink = second.begin();
    sink.write(enc("kept"));
    const meta = await sink.commit(input());
    // The commit waited for the repair its begin() started: the lock is held now.
    await first.close();
    // Had it kept its lock on the removed file, a server starting now would
    // run its recovery beside it (and remove the .eml of its next commit).
    const probe = await Deno.open(`${dir}/.tmp/.lock`, { read: true, write: true });
    assert.equal(await probe.tryLock(true), false, `fsync ${fsync}`);
    probe.close();
    assert.equal(await Deno.readTextFile(`${dir}/${meta.id}.eml`), "kept");
    await second.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("SpoolWriter: a spool made anew while a message streams is relocked at its commit", async () => {
  const dir = await Deno.makeTempDir();
  const first = await SpoolWriter.open({ dir, fsync: false });
  const second = await SpoolWriter.open({ dir, fsync: false, recover: false, lockCheckMs: 0 });
  const sink = second.begin(); // before the spool goes: begin() saw nothing amiss
  sink.write(enc("late"));
  await Deno.remove(dir, { recursive: true });
  assert.equal(await first.repair(), true);
  const meta = await sink.commit(input());
  await first.close();
  const probe = await Deno.open(`${dir}/.tmp/.lock`, { read: true, write: true });
  assert.equal(await probe.tryLock(true), false, "the commit took the new lock first");
  probe.close();
  assert.equal(await Deno.readTextFile(`${dir}/${meta.id}.eml`), "late");
  await second.close();
  await Deno.remove(dir, { recursive: true });
});

for (const fsync of [false, true]) {
  for (const [what, bytes] of [["small", 1024], ["streamed", 200 * 1024]] as const) {
    Deno.test(`SpoolWriter: a failed commit of a ${what} body leaves no .eml (fsync ${fsync})`, async () => {
      await withTempDir((dir) =>
        withFixedId(async () => {
          const spool = await SpoolWriter.open({ dir, fsync });
          const sink = await spool.begin();
          await sink.write(enc("Subject: x\r\n\r\n" + "a".repeat(bytes)));
          // The small body is written as <id>.eml directly, the streamed one renamed there.
          await Deno.mkdir(`${dir}/${NEXT_ID}.json/sub`, { recursive: true });
          await assert.rejects(sink.commit(input()), SpoolError);
          assert.deepEqual(await names(dir), [".tmp", `${NEXT_ID}.json`]);
          assert.deepEqual(await names(`${dir}/.tmp`), []);
          await spool.close();
        })
      );
    });
  }
}

Deno.test("toSpoolError maps ENOSPC, EDQUOT and EFBIG to full and other errors to unwritable", async () => {
  if (Deno.build.os === "linux") {
    // /dev/full fails every write with ENOSPC: the real error object, not a mock.
    const real = await Deno.writeFile("/dev/full", new Uint8Array(1)).then(() => null, (e) => e);
    assert.equal(toSpoolError(real, "Cannot write").kind, "full");
  }
  assert.equal(toSpoolError(Object.assign(new Error("x"), { code: "ENOSPC" }), "a").kind, "full");
  assert.equal(toSpoolError(Object.assign(new Error("x"), { code: "EDQUOT" }), "a").kind, "full");
  // Deno's error for a write past `ulimit -f` (SIGXFSZ ignored) has no code.
  assert.equal(toSpoolError(new Error("File too large (os error 27)"), "a").kind, "full");
  // Quotas and size limits as Deno words them, with no code (Linux, macOS, Windows).
  for (
    const text of [
      "Disk quota exceeded (os error 122)",
      "Disc quota exceeded (os error 69)",
      "The file size exceeds the limit allowed and cannot be saved. (os error 223)",
    ]
  ) {
    assert.equal(toSpoolError(new Error(text), "a").kind, "full", text);
  }
  const denied = toSpoolError(new Deno.errors.PermissionDenied("Permission denied\nmore"), "Do");
  assert.equal(denied.kind, "unwritable");
  assert.equal(denied.message, "Do: Permission denied");
  assert.equal(toSpoolError("odd", "Do").kind, "unwritable");
});

Deno.test("SpoolWriter: interleaved messages in random chunks keep their bytes, hash and headers", async () => {
  await withTempDir(async (dir) => {
    const spool = await SpoolWriter.open({ dir, fsync: false });
    await fc.assert(
      fc.asyncProperty(
        fc.array(
          fc.record({
            subject: fc.string({ unit: "grapheme-ascii", maxLength: 40 }).map((s) =>
              s.replace(/[\r\n]/g, "")
            ),
            bodyBytes: fc.oneof(fc.nat(5000), fc.nat(200_000)),
            chunks: fc.array(fc.integer({ min: 1, max: 70_000 }), { minLength: 1, maxLength: 8 }),
          }),
          { minLength: 1, maxLength: 4 },
        ),
        async (specs) => {
          const messages = specs.map((spec, i) => {
            const head = enc(`Subject: ${spec.subject}\r\nX-N: ${i}\r\n\r\n`);
            const body = new Uint8Array(spec.bodyBytes).map((_, j) => (j * 7 + i) & 0xff);
            const all = new Uint8Array(head.length + body.length);
            all.set(head);
            all.set(body, head.length);
            return { all, chunks: spec.chunks, offset: 0, sink: spool.begin() };
          });
          // Round-robin, one chunk each, reusing one scratch buffer as the socket layer does.
          const scratch = new Uint8Array(70_000);
          for (let round = 0; messages.some((m) => m.offset < m.all.length); round++) {
            for (const m of messages) {
              if (m.offset >= m.all.length) continue;
              const size = m.chunks[round % m.chunks.length]!;
              const piece = m.all.subarray(m.offset, m.offset + size);
              scratch.set(piece);
              m.sink.write(scratch.subarray(0, piece.length));
              scratch.fill(0xee, 0, piece.length);
              m.offset += piece.length;
            }
          }
          for (const m of messages) {
            const meta = await m.sink.commit(input());
            const eml = await Deno.readFile(`${dir}/${meta.id}.eml`);
            assert.deepEqual(eml, m.all);
            assert.equal(meta.sha256, createHash("sha256").update(m.all).digest("hex"));
            const subject = new TextDecoder().decode(m.all.subarray(9, m.all.indexOf(0x0d)));
            assert.equal(meta.headers.subject ?? "", subject.trim());
          }
        },
      ),
      { numRuns: 40 },
    );
    await spool.close();
  });
});

Deno.test("SpoolWriter: close waits for commits in flight before it releases the lock", async () => {
  await withTempDir(async (dir) => {
    const spool = await SpoolWriter.open({ dir, fsync: true });
    const sink = spool.begin();
    sink.write(enc("Subject: late\r\n\r\nhi\r\n"));
    let settled = false;
    const commit = sink.commit(input()).finally(() => (settled = true));
    await spool.close();
    assert.ok(settled, "the commit ended before close resolved");
    const { id } = await commit;
    assert.deepEqual(await names(dir), [".tmp", `${id}.eml`, `${id}.json`]);
  });
});

for (const fsync of [true, false]) {
  Deno.test(`SpoolWriter: a small message touches the disk only at commit (fsync ${fsync})`, async () => {
    await withTempDir(async (dir) => {
      const spool = await SpoolWriter.open({ dir, fsync });
      const small = spool.begin();
      small.write(enc("Subject: small\r\n\r\nhi\r\n"));
      assert.deepEqual(await names(`${dir}/.tmp`), [], "a small body goes straight to <id>.eml");
      const big = spool.begin();
      big.write(new Uint8Array(70 * 1024).fill(0x61));
      assert.equal((await names(`${dir}/.tmp`)).length, 1, "a big one streams to .tmp/");
      const empty = spool.begin();
      const [smallMeta, bigMeta, emptyMeta] = [
        await small.commit(input()),
        await big.commit(input()),
        await empty.commit(input()),
      ];
      assert.equal(
        await Deno.readTextFile(`${dir}/${smallMeta.id}.eml`),
        "Subject: small\r\n\r\nhi\r\n",
      );
      assert.equal((await Deno.readFile(`${dir}/${emptyMeta.id}.eml`)).length, 0);
      assert.equal((await Deno.readFile(`${dir}/${bigMeta.id}.eml`)).length, 70 * 1024);
      const aborted = spool.begin();
      aborted.write(enc("x"));
      aborted.abort();
      assert.deepEqual(await names(`${dir}/.tmp`), []);
      await spool.close();
    });
  });
}

for (const fsync of [false, true]) {
  for (const [what, bytes] of [["small", 1024], ["streamed", 200 * 1024]] as const) {
    Deno.test(`SpoolWriter: a commit whose ID is taken leaves the other message's files (${what}, fsync ${fsync})`, async () => {
      await withTempDir((dir) =>
        withFixedId(async () => {
          const spool = await SpoolWriter.open({ dir, fsync });
          // The final .eml is taken (only a small body is created there; a streamed one is renamed).
          if (what === "small") {
            const sink = spool.begin();
            sink.write(enc("Subject: mine\r\n\r\n" + "a".repeat(bytes)));
            await Deno.writeTextFile(`${dir}/${NEXT_ID}.eml`, "theirs\r\n");
            await Deno.writeTextFile(`${dir}/${NEXT_ID}.json`, "{}\n");
            await assert.rejects(sink.commit(input()), SpoolError);
            assert.equal(await Deno.readTextFile(`${dir}/${NEXT_ID}.eml`), "theirs\r\n");
            assert.equal(await Deno.readTextFile(`${dir}/${NEXT_ID}.json`), "{}\n");
            assert.deepEqual(await names(`${dir}/.tmp`), []);
            for (const ext of [".eml", ".json"]) await Deno.remove(`${dir}/${NEXT_ID}${ext}`);
          }
          // The .json in .tmp/ is taken: this commit removes its own body, not that file.
          const sink = spool.begin();
          sink.write(enc("Subject: mine\r\n\r\n" + "a".repeat(bytes)));
          await Deno.writeTextFile(`${dir}/.tmp/${NEXT_ID}.json`, "{}\n");
          await assert.rejects(sink.commit(input()), SpoolError);
          assert.ok(
            !(await names(dir)).includes(`${NEXT_ID}.eml`),
            "this commit's .eml is removed",
          );
          assert.deepEqual(await names(`${dir}/.tmp`), [`${NEXT_ID}.json`]);
          await spool.close();
        })
      );
    });
  }
}

Deno.test("SpoolWriter: a header cut by the 64 KiB prefix is left out of the metadata", async () => {
  await withTempDir(async (dir) => {
    const spool = await SpoolWriter.open({ dir, fsync: false });
    const store = async (text: string) => {
      const sink = await spool.begin();
      const bytes = enc(text);
      for (let at = 0; at < bytes.length; at += 10_000) {
        await sink.write(bytes.subarray(at, at + 10_000));
      }
      return (await sink.commit(input())).headers;
    };
    const pad = `X-Pad: ${"b".repeat(65_507)}\r\n`; // Subject starts 20 bytes before 64 KiB
    const subject = "Subject: boundary subject that crosses the sixty four KiB limit\r\n";
    assert.deepEqual(await store(`To: t@x\r\n${pad}${subject}\r\nbody\r\n`), { to: "t@x" });
    // A message that ends inside the prefix has its last field whole.
    assert.deepEqual(await store(`${"X: y\r\n".repeat(10_000)}${subject}`), {
      subject: "boundary subject that crosses the sixty four KiB limit",
    });
    await spool.close();
  });
});
