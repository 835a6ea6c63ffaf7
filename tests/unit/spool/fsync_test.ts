import assert from "node:assert/strict";
import {
  absolutePath,
  DirSyncer,
  joinPath,
  renameOver,
  windowsAbsolute,
} from "../../../lib/spool/fsync.ts";

const POSIX = Deno.build.os !== "windows";

Deno.test({
  name: "DirSyncer shares one queued fsync among callers arriving while one is in flight",
  ignore: !POSIX,
  fn: async () => {
    const dir = await Deno.makeTempDir();
    try {
      const syncer = new DirSyncer(dir);
      const first = syncer.sync();
      const second = syncer.sync();
      const third = syncer.sync();
      assert.notEqual(first, second, "a sync in flight may predate the caller's change");
      assert.equal(second, third, "callers arriving meanwhile share the next sync");
      await Promise.all([first, second, third]);
      const later = syncer.sync();
      assert.notEqual(later, second);
      await later;
      await syncer.idle();
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name: "DirSyncer rejects for a missing directory and recovers afterwards",
  ignore: !POSIX,
  fn: async () => {
    const dir = await Deno.makeTempDir();
    const syncer = new DirSyncer(`${dir}/missing`);
    await assert.rejects(syncer.sync(), Deno.errors.NotFound);
    await Deno.mkdir(`${dir}/missing`);
    await syncer.sync();
    await Deno.remove(dir, { recursive: true });
  },
});

Deno.test({
  name: "DirSyncer: 200 concurrent callers all resolve",
  ignore: !POSIX,
  fn: async () => {
    const dir = await Deno.makeTempDir();
    try {
      const syncer = new DirSyncer(dir);
      const calls: Promise<void>[] = [];
      for (let i = 0; i < 200; i++) calls.push(syncer.sync());
      await Promise.all(calls);
      assert.equal(new Set(calls).size, 2, "one fsync in flight plus one shared by the rest");
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name: "absolutePath resolves against the working directory without a trailing slash",
  ignore: !POSIX,
  fn: () => {
    assert.equal(absolutePath("/srv/mail/"), "/srv/mail");
    assert.equal(absolutePath("/"), "/");
    assert.equal(absolutePath("spool"), `${Deno.cwd()}/spool`);
    assert.equal(joinPath("/", "a"), "/a");
    assert.equal(joinPath("/srv", "a"), "/srv/a");
  },
});

Deno.test("renameOver replaces an existing file", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(joinPath(dir, "a"), "new");
    await Deno.writeTextFile(joinPath(dir, "b"), "old");
    await renameOver(joinPath(dir, "a"), joinPath(dir, "b"));
    assert.equal(await Deno.readTextFile(joinPath(dir, "b")), "new");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("windowsAbsolute knows drive, UNC, rooted and drive-relative paths", () => {
  const cwd = "C:\\work\\app";
  const cases: [string, string][] = [
    ["D:\\mail\\", "D:\\mail"],
    ["D:/mail", "D:/mail"],
    ["\\\\srv\\share\\mail", "\\\\srv\\share\\mail"],
    // Rooted without a drive: on the working directory's drive, not under it.
    ["\\mail", "C:\\mail"],
    ["/tmp/mail", "C:/tmp/mail"],
    ["spool", "C:\\work\\app\\spool"],
    ["c:spool", "C:\\work\\app\\spool"],
    ["D:spool", "D:\\spool"],
    ["D:\\", "D:\\"],
    ["D:", "D:\\"],
  ];
  for (const [dir, want] of cases) assert.equal(windowsAbsolute(dir, cwd), want, dir);
  assert.equal(windowsAbsolute("spool", "C:\\"), "C:\\spool");
  assert.equal(windowsAbsolute("\\mail", "\\\\srv\\share\\x"), "\\\\srv\\share\\mail");
});
