import assert from "node:assert/strict";
import { FsSyncer, SYNCFS_FILE_SYSTEMS, syncfsReportsErrors } from "../../../lib/spool/syncfs.ts";
import { withTempDir } from "../../helpers/temp_dir.ts";

/** The temporary directory's file system: syncfs is used on it only if listed. */
async function tempFileSystem(): Promise<string | null> {
  if (Deno.build.os !== "linux") return null;
  const out = await new Deno.Command("stat", {
    args: ["-f", "-c", "%t", Deno.env.get("TMPDIR") ?? "/tmp"],
  })
    .output().catch(() => null);
  if (out === null || !out.success) return null;
  return SYNCFS_FILE_SYSTEMS.get(parseInt(new TextDecoder().decode(out.stdout), 16)) ?? null;
}

Deno.test("syncfsReportsErrors: Linux 5.8 and later only", () => {
  for (const release of ["5.8.0", "5.10.0-28-amd64", "6.1.0-18-amd64", "6.18.44-fc-v782", "10.0"]) {
    assert.ok(syncfsReportsErrors(release), release);
  }
  for (const release of ["5.7.19", "4.19.0-26-amd64", "3.10.0-1160.el7.x86_64", "", "x5.10", "6"]) {
    assert.ok(!syncfsReportsErrors(release), release);
  }
});

Deno.test("FsSyncer.open: null off Linux, else the temporary directory's file system", async () => {
  const expected = await tempFileSystem();
  await withTempDir(async (dir) => {
    const syncer = FsSyncer.open(dir);
    if (expected === null) {
      assert.equal(syncer, null);
      return;
    }
    assert.ok(syncer !== null, `syncfs on ${expected}`);
    assert.equal(syncer.fileSystem, expected);
    await syncer.close();
  });
});

Deno.test("FsSyncer: callers arriving during a round share the next one; close waits", async () => {
  await withTempDir(async (dir) => {
    const syncer = FsSyncer.open(dir);
    if (syncer === null) return; // per-file fsync here: nothing to test
    const calls: Promise<void>[] = [];
    for (let i = 0; i < 100; i++) calls.push(syncer.sync());
    assert.equal(new Set(calls).size, 2, "one round in flight plus one shared by the rest");
    const closed = syncer.close();
    await Promise.all(calls);
    await closed;
    assert.equal(syncer.failures, 0);
    await assert.rejects(syncer.sync(), /closed/);
  });
});

Deno.test("FsSyncer.open: a missing directory gives null, never a throw", () => {
  assert.equal(FsSyncer.open("/nonexistent-smtpd-test/spool"), null);
});
