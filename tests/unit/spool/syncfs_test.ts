import assert from "node:assert/strict";
import {
  deviceNumbers,
  FsSyncer,
  SYNCFS_FILE_SYSTEMS,
  syncfsReportsErrors,
} from "../../../lib/spool/syncfs.ts";
import { withSyncfsDir } from "../../helpers/temp_dir.ts";

/** Runs a command; its trimmed stdout, or null when it cannot run or fails. */
async function output(command: string, ...args: string[]): Promise<string | null> {
  const out = await new Deno.Command(command, { args }).output().catch(() => null);
  return out?.success ? new TextDecoder().decode(out.stdout).trim() : null;
}

/**
 * What FsSyncer.open should say for `dir`, found another way: `stat -f` for
 * the file system, `df` for its device and jbd2's list for an ext4's journal.
 */
async function expectedFileSystem(dir: string): Promise<string | null> {
  if (Deno.build.os !== "linux") return null;
  const type = await output("stat", "-f", "-c", "%t", dir);
  const fs = type === null ? undefined : SYNCFS_FILE_SYSTEMS.get(parseInt(type, 16));
  if (fs !== "ext4") return fs ?? null;
  const source = (await output("df", "--output=source", dir))?.split("\n").pop() ?? "";
  const device = source.split("/").pop();
  const journal = await Deno.stat(`/proc/fs/jbd2/${device}-8`).catch(() => null);
  return journal === null ? null : "ext4";
}

Deno.test("syncfsReportsErrors: Linux 5.17 and later only", () => {
  for (
    const release of ["5.17.0", "5.19.0-50-generic", "6.1.0-18-amd64", "6.18.44-fc-v782", "10.0"]
  ) {
    assert.ok(syncfsReportsErrors(release), release);
  }
  for (
    const release of ["5.16.20", "5.10.0-28-amd64", "5.8.0", "4.19.0-26-amd64", "", "x5.10", "6"]
  ) {
    assert.ok(!syncfsReportsErrors(release), release);
  }
});

Deno.test("deviceNumbers decodes glibc's st_dev", () => {
  assert.deepEqual(deviceNumbers(0xfe00), [254, 0]); // vda
  assert.deepEqual(deviceNumbers(0x10301), [259, 1]); // nvme0n1p1 (major 259)
  assert.deepEqual(deviceNumbers(0x801), [8, 1]); // sda1
  assert.deepEqual(deviceNumbers(0x100000 + 0x1234), [0x12, 0x134]); // minor above 255
});

Deno.test("FsSyncer.open: the file system of the directory, ext4 only with a journal", async () => {
  for (const base of [undefined, "/dev/shm"]) {
    if (base !== undefined && (await Deno.stat(base).catch(() => null)) === null) continue;
    const dir = await Deno.makeTempDir(base === undefined ? {} : { dir: base });
    try {
      const expected = await expectedFileSystem(dir);
      const syncer = FsSyncer.open(dir);
      assert.equal(syncer?.fileSystem ?? null, expected, dir);
      await syncer?.close();
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  }
});

Deno.test("FsSyncer: callers arriving during a round share the next one; close waits", async () => {
  await withSyncfsDir(async (dir) => {
    const syncer = FsSyncer.open(dir)!;
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

Deno.test("FsSyncer: a round asked for while close waits runs before the descriptor closes", async () => {
  await withSyncfsDir(async (dir) => {
    const syncer = FsSyncer.open(dir)!;
    const first = syncer.sync();
    const closed = syncer.close();
    await first;
    const late = syncer.sync(); // after the last round ended, before close resumed
    await late;
    await closed;
    assert.equal(syncer.failures, 0, "no round ran on a closed descriptor");
    await assert.rejects(syncer.sync(), /closed/);
    // Idle at close: closed at once, and a round asked for right after is refused.
    const idle = FsSyncer.open(dir)!;
    const closing = idle.close();
    await assert.rejects(idle.sync(), /closed/);
    await closing;
    assert.equal(idle.failures, 0);
  });
});

Deno.test("FsSyncer.open: a missing directory gives null, never a throw", () => {
  assert.equal(FsSyncer.open("/nonexistent-smtpd-test/spool"), null);
});
