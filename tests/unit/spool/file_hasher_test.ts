import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { hashFile, HashWorker } from "../../../lib/spool/file_hasher.ts";

function bytes(length: number, seed: number): Uint8Array {
  const out = new Uint8Array(length);
  for (let i = 0; i < length; i++) out[i] = (i * 31 + seed) & 0xff;
  return out;
}

const sha256 = (data: Uint8Array): string => createHash("sha256").update(data).digest("hex");

/** A file written in `steps` pieces, told to `advance` after each. */
function writeInSteps(path: string, data: Uint8Array, steps: number, advance: (n: number) => void) {
  const file = Deno.openSync(path, { write: true, create: true, truncate: true });
  try {
    const step = Math.ceil(data.length / steps);
    for (let at = 0; at < data.length; at += step) {
      const piece = data.subarray(at, Math.min(data.length, at + step));
      let done = 0;
      while (done < piece.length) done += file.writeSync(piece.subarray(done));
      advance(at + piece.length);
    }
  } finally {
    file.close();
  }
}

Deno.test("HashWorker hashes files while they grow, several jobs interleaved", async () => {
  const dir = await Deno.makeTempDir();
  const worker = new HashWorker({ onFailure: (reason) => assert.fail(reason) });
  try {
    const data = [bytes(3_000_001, 1), bytes(700_000, 2), bytes(0, 3)];
    const jobs = data.map((_, i) => {
      Deno.writeFileSync(`${dir}/${i}`, new Uint8Array(0));
      return worker.start(`${dir}/${i}`, 0)!;
    });
    data.forEach((d, i) => writeInSteps(`${dir}/${i}`, d, 7, (n) => jobs[i]!.advance(n)));
    const hex = await Promise.all(jobs.map((job, i) => job.finish(data[i]!.length)));
    assert.deepEqual(hex, data.map(sha256));
  } finally {
    worker.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("HashWorker: a dropped job answers nothing and the worker goes on", async () => {
  const dir = await Deno.makeTempDir();
  const worker = new HashWorker({ onFailure: (reason) => assert.fail(reason) });
  try {
    const data = bytes(2_000_000, 5);
    Deno.writeFileSync(`${dir}/a`, data);
    Deno.writeFileSync(`${dir}/b`, data);
    worker.start(`${dir}/a`, 1_000_000)!.drop();
    assert.equal(await worker.start(`${dir}/b`, 1_000_000)!.finish(data.length), sha256(data));
  } finally {
    worker.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("HashWorker: a file shorter than said, or gone, rejects that job only", async () => {
  const dir = await Deno.makeTempDir();
  const worker = new HashWorker({ onFailure: (reason) => assert.fail(reason) });
  try {
    Deno.writeFileSync(`${dir}/short`, bytes(10, 1));
    await assert.rejects(worker.start(`${dir}/short`, 0)!.finish(11), /ends at 10 of 11 bytes/);
    const gone = worker.start(`${dir}/missing`, 5)!;
    gone.advance(6);
    await assert.rejects(gone.finish(7));
    const data = bytes(1234, 9);
    Deno.writeFileSync(`${dir}/ok`, data);
    assert.equal(await worker.start(`${dir}/ok`, 0)!.finish(data.length), sha256(data));
  } finally {
    worker.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("HashWorker: a missing module (compiled without --include) says null, once", () => {
  const reasons: string[] = [];
  const missing = new URL("./no_such_hash_worker.ts", import.meta.url);
  const worker = new HashWorker({
    onFailure: (reason) => reasons.push(reason),
    moduleUrl: missing,
  });
  assert.equal(worker.start("/any/path", 0), null);
  assert.equal(worker.start("/any/path", 0), null);
  assert.equal(reasons.length, 1);
  assert.match(reasons[0]!, /^[^\n]*no_such_hash_worker\.ts[^\n]*$/);
  worker.close();
});

// Deno prints the worker's uncaught error on stderr before the parent hears of it.
Deno.test("HashWorker: a worker that crashes fails its jobs once, then says null", async () => {
  const dir = await Deno.makeTempDir();
  const reasons: string[] = [];
  const worker = new HashWorker({
    onFailure: (reason) => reasons.push(reason),
    moduleUrl: new URL("data:application/javascript,throw new Error('no worker here')"),
  });
  try {
    Deno.writeFileSync(`${dir}/a`, bytes(100, 1));
    const job = worker.start(`${dir}/a`, 100);
    assert.ok(job, "the failure is only known once the module fails to load");
    await assert.rejects(job.finish(100));
    assert.equal(reasons.length, 1);
    assert.match(reasons[0]!, /^[^\n]*no worker here[^\n]*$/);
    assert.equal(worker.start(`${dir}/a`, 100), null);
  } finally {
    worker.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("HashWorker: close rejects a finish still waiting", async () => {
  const dir = await Deno.makeTempDir();
  const worker = new HashWorker();
  try {
    const data = bytes(5_000_000, 4);
    Deno.writeFileSync(`${dir}/a`, data);
    const waiting = worker.start(`${dir}/a`, 0)!.finish(data.length);
    worker.close();
    await assert.rejects(waiting, /stopped/);
    assert.equal(worker.start(`${dir}/a`, 0), null);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("hashFile hashes a whole file on the calling thread", async () => {
  const dir = await Deno.makeTempDir();
  try {
    for (const length of [0, 1, (1 << 20) - 1, (1 << 20) + 1]) {
      const data = bytes(length, length);
      Deno.writeFileSync(`${dir}/f`, data);
      assert.equal(hashFile(`${dir}/f`), sha256(data));
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
