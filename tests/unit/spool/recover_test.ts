import assert from "node:assert/strict";
import { recoverSpool } from "../../../lib/spool/recover.ts";
import { SpoolWriter } from "../../../lib/spool/writer.ts";
import { IdGenerator } from "../../../lib/spool/id.ts";
import { withTempDir } from "../../helpers/temp_dir.ts";

async function names(dir: string): Promise<string[]> {
  const out: string[] = [];
  // `.tmp/.lock` is the running writer's spool lock, not a message.
  for await (const e of Deno.readDir(dir)) if (e.name !== ".lock") out.push(e.name);
  return out.sort();
}

Deno.test("recoverSpool removes .tmp contents and orphan .eml, keeps complete messages", async () => {
  await withTempDir(async (dir) => {
    const ids = new IdGenerator();
    const [complete, orphan, inFlight] = [ids.next(), ids.next(), ids.next()];
    // A crash after the .eml rename, before the .json rename (no 250 was sent).
    await Deno.mkdir(`${dir}/.tmp/nested`, { recursive: true });
    await Deno.writeTextFile(`${dir}/.tmp/${inFlight}.eml`, "partial");
    await Deno.writeTextFile(`${dir}/.tmp/${orphan}.json`, "{}");
    await Deno.writeTextFile(`${dir}/.tmp/nested/x`, "");
    await Deno.writeTextFile(`${dir}/${orphan}.eml`, "orphan");
    await Deno.writeTextFile(`${dir}/${complete}.eml`, "ok");
    await Deno.writeTextFile(`${dir}/${complete}.json`, "{}");

    const report = await recoverSpool(dir);
    assert.deepEqual(report, { tmpRemoved: 3, orphansRemoved: 1, skipped: false });
    assert.deepEqual(await names(dir), [".tmp", `${complete}.eml`, `${complete}.json`]);
    assert.deepEqual(await names(`${dir}/.tmp`), []);
  });
});

Deno.test("recoverSpool removes a .json whose .eml is missing (a crash without a journal)", async () => {
  await withTempDir(async (dir) => {
    const ids = new IdGenerator();
    const [complete, lone, beside] = [ids.next(), ids.next(), ids.next()];
    await Deno.writeTextFile(`${dir}/${complete}.eml`, "ok");
    await Deno.writeTextFile(`${dir}/${complete}.json`, "{}");
    await Deno.writeTextFile(`${dir}/${lone}.json`, "{}");
    // Something else under the .eml's name: not ours to judge, so its .json stays.
    await Deno.mkdir(`${dir}/${beside}.eml`);
    await Deno.writeTextFile(`${dir}/${beside}.json`, "{}");

    const report = await recoverSpool(dir);
    assert.deepEqual(report, { tmpRemoved: 0, orphansRemoved: 1, skipped: false });
    assert.deepEqual(
      await names(dir),
      [`${complete}.eml`, `${complete}.json`, `${beside}.eml`, `${beside}.json`].sort(),
    );
  });
});

Deno.test("recoverSpool never touches files that are not <id>.eml/<id>.json", async () => {
  await withTempDir(async (dir) => {
    const others = [
      "notes.eml",
      "README",
      "config.json",
      "01ARZ3NDEKTSV4RRFFQ69G5FAV.eml.bak",
      "01arz3ndektsv4rrffq69g5fav.eml",
      ".hidden.eml",
    ];
    for (const name of others) await Deno.writeTextFile(`${dir}/${name}`, "mine");
    await Deno.mkdir(`${dir}/01ARZ3NDEKTSV4RRFFQ69G5FAW.eml`);
    const report = await recoverSpool(dir);
    assert.deepEqual(report, { tmpRemoved: 0, orphansRemoved: 0, skipped: false });
    assert.deepEqual(await names(dir), [...others, "01ARZ3NDEKTSV4RRFFQ69G5FAW.eml"].sort());
  });
});

Deno.test("recoverSpool treats a missing spool as empty", async () => {
  await withTempDir(async (dir) => {
    assert.deepEqual(await recoverSpool(`${dir}/none`), {
      tmpRemoved: 0,
      orphansRemoved: 0,
      skipped: false,
    });
  });
});

Deno.test("SpoolWriter.open recovers a simulated crash and reports it", async () => {
  await withTempDir(async (dir) => {
    const first = await SpoolWriter.open({ dir, fsync: false });
    const kept = await first.begin();
    await kept.write(new TextEncoder().encode("Subject: kept\r\n\r\n"));
    const meta = await kept.commit({
      mailFrom: "",
      rcptTo: ["a@b"],
      mailParams: {},
      rcptParams: [{}],
      helo: null,
      protocol: "SMTP",
      client: { address: "127.0.0.1", port: 1 },
      server: { address: "127.0.0.1", port: 2 },
      tls: null,
      auth: null,
    });
    const lost = await first.begin(); // the process "dies" here mid-DATA
    // Past the 64 KiB write buffer, so part of it is in .tmp/ when the process dies.
    await lost.write(new Uint8Array(70 * 1024));
    const orphanId = new IdGenerator().next();
    await Deno.writeTextFile(`${dir}/${orphanId}.eml`, "renamed but no json");

    // While the first server lives, a second one must not touch its work in flight.
    const beside = await SpoolWriter.open({ dir, fsync: false });
    assert.deepEqual(beside.recovery, { tmpRemoved: 0, orphansRemoved: 0, skipped: true });
    await beside.close();
    await first.close(); // releases the lock as the death of the process would

    const second = await SpoolWriter.open({ dir, fsync: false });
    assert.deepEqual(second.recovery, { tmpRemoved: 1, orphansRemoved: 1, skipped: false });
    assert.deepEqual(await names(dir), [".tmp", `${meta.id}.eml`, `${meta.id}.json`]);
    await lost.abort();
    await second.close();
  });
});
