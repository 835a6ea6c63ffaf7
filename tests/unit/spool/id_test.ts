import assert from "node:assert/strict";
import {
  clockMicros,
  ID_STATE_BYTES,
  IdGenerator,
  idTime,
  isMessageId,
  isValidId,
} from "../../../lib/spool/id.ts";

Deno.test("IdGenerator makes 10,000 unique, sorted, valid IDs in a tight loop", () => {
  const ids = new IdGenerator();
  const out: string[] = [];
  for (let i = 0; i < 10_000; i++) out.push(ids.next());
  assert.equal(new Set(out).size, out.length);
  assert.deepEqual([...out].sort(), out);
  for (const id of out) {
    assert.ok(isMessageId(id), id);
    assert.ok(isValidId(id), id);
    assert.equal(id.length, 26);
  }
});

Deno.test("IdGenerator: two generators interleaved never collide", () => {
  const a = new IdGenerator();
  const b = new IdGenerator();
  const all = new Set<string>();
  const now = clockMicros();
  for (let i = 0; i < 5_000; i++) {
    all.add(a.next(now));
    all.add(b.next(now));
  }
  assert.equal(all.size, 10_000);
});

Deno.test("IdGenerator is monotonic when the clock stands still or goes back", () => {
  const ids = new IdGenerator();
  const first = ids.next(1_700_000_000_000_000);
  const same = ids.next(1_700_000_000_000_000);
  const back = ids.next(1_600_000_000_000_000);
  const later = ids.next(1_700_000_000_001_000);
  assert.ok(first < same && same < back && back < later);
  assert.equal(idTime(back), 1_700_000_000_000, "clamped to the last time used");
  assert.equal(idTime(later), 1_700_000_000_001);
});

Deno.test("IdGenerator orders IDs by time across generators", () => {
  const early = new IdGenerator().next(1_000_000);
  const late = new IdGenerator().next(1_000_001);
  assert.ok(early < late);
  assert.equal(idTime(early), 1_000);
});

Deno.test("IdGenerator: the microsecond orders IDs of separate generators within a millisecond", () => {
  // Two servers sharing a spool: message B arrives after A's 250, in the same millisecond.
  for (let i = 0; i < 1_000; i++) {
    const ms = 1_795_000_000_000 + i;
    const within = i % 999;
    const a = new IdGenerator().next(ms * 1000 + within);
    const b = new IdGenerator().next(ms * 1000 + within + 1);
    assert.ok(a < b, `${a} < ${b}`);
    assert.equal(idTime(a), ms);
    assert.equal(idTime(b), ms);
  }
  const last = new IdGenerator().next(1_795_000_000_000_999);
  const next = new IdGenerator().next(1_795_000_000_001_000);
  assert.ok(last < next);
});

Deno.test("clockMicros follows the wall clock", () => {
  const before = Date.now();
  const micros = clockMicros();
  const after = Date.now();
  assert.ok(Number.isSafeInteger(micros));
  assert.ok(micros >= before * 1000 && micros < (after + 1) * 1000, `${before} ${micros} ${after}`);
});

Deno.test("IdGenerator stays ordered over 100,000 IDs in one microsecond (carries)", () => {
  const ids = new IdGenerator();
  let previous = ids.next(5_000);
  for (let i = 0; i < 100_000; i++) {
    const next = ids.next(5_000);
    assert.ok(previous < next);
    previous = next;
  }
});

Deno.test("isValidId accepts SPEC §3 IDs and rejects paths", () => {
  for (const ok of ["a", "01J9ZX", "a.b-c_d", "x".repeat(64)]) assert.ok(isValidId(ok), ok);
  for (const bad of ["", "x".repeat(65), "../etc", "a/b", "a\\b", "a:b", "a b", "é"]) {
    assert.ok(!isValidId(bad), bad);
  }
});

Deno.test("isMessageId accepts only the generated form", () => {
  assert.ok(isMessageId("01ARZ3NDEKTSV4RRFFQ69G5FAV"));
  for (
    const bad of [
      "latest",
      "notes",
      "01arz3ndektsv4rrffq69g5fav",
      "01ARZ3NDEKTSV4RRFFQ69G5FA",
      "81ARZ3NDEKTSV4RRFFQ69G5FAV",
      "01ARZ3NDEKTSV4RRFFQ69G5FAI",
    ]
  ) {
    assert.ok(!isMessageId(bad), bad);
  }
  assert.ok(Number.isNaN(idTime("latest")));
});

Deno.test("IdGenerator: generators on one shared state form one increasing sequence", () => {
  const state = new SharedArrayBuffer(ID_STATE_BYTES);
  const a = new IdGenerator(state);
  const b = new IdGenerator(state);
  const now = clockMicros();
  const out: string[] = [];
  for (let i = 0; i < 5_000; i++) out.push(a.next(now), b.next(now), a.next(now - 5_000));
  assert.deepEqual([...out].sort(), out);
  assert.equal(new Set(out).size, out.length);
});

Deno.test("IdGenerator: two threads on one shared state never collide", async () => {
  const state = new SharedArrayBuffer(ID_STATE_BYTES);
  const idModule = new URL("../../../lib/spool/id.ts", import.meta.url).href;
  const source = `import { IdGenerator } from ${JSON.stringify(idModule)};
    self.onmessage = (e) => {
      const ids = new IdGenerator(e.data);
      const out = [];
      for (let i = 0; i < 20000; i++) out.push(ids.next());
      self.postMessage(out);
    };`;
  const url = URL.createObjectURL(new Blob([source], { type: "text/javascript" }));
  const run = () =>
    new Promise<string[]>((resolve, reject) => {
      const worker = new Worker(url, { type: "module" });
      worker.onmessage = (e: MessageEvent<string[]>) => {
        worker.terminate();
        resolve(e.data);
      };
      worker.onerror = (e) => {
        e.preventDefault();
        worker.terminate();
        reject(new Error(e.message));
      };
      worker.postMessage(state);
    });
  try {
    const [first, second] = await Promise.all([run(), run()]);
    for (const list of [first!, second!]) assert.deepEqual([...list].sort(), list);
    assert.equal(new Set([...first!, ...second!]).size, 40_000);
  } finally {
    URL.revokeObjectURL(url);
  }
});
