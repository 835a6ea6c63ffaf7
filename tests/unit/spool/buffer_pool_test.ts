import assert from "node:assert/strict";
import { BufferPool, SMALL_BUFFER_BYTES } from "../../../lib/spool/buffer_pool.ts";

Deno.test("BufferPool hands out small or large buffers and reuses what comes back", () => {
  const pool = new BufferPool(65536);
  const small = pool.take(1);
  assert.equal(small.length, SMALL_BUFFER_BYTES);
  assert.equal(pool.take(SMALL_BUFFER_BYTES).length, SMALL_BUFFER_BYTES);
  const large = pool.take(SMALL_BUFFER_BYTES + 1);
  assert.equal(large.length, 65536);
  pool.give(small);
  pool.give(large);
  assert.equal(pool.take(10), small);
  assert.equal(pool.take(40000), large);
  assert.notEqual(pool.take(10), small); // taken already: a new one
});

Deno.test("BufferPool keeps a bounded number of free buffers and ignores foreign ones", () => {
  const pool = new BufferPool(65536);
  const given = Array.from({ length: 100 }, () => new Uint8Array(SMALL_BUFFER_BYTES));
  for (const b of given) pool.give(b);
  pool.give(new Uint8Array(1000)); // not the pool's size: dropped
  const back = new Set<Uint8Array>();
  for (let i = 0; i < 100; i++) back.add(pool.take(1));
  const reused = given.filter((b) => back.has(b)).length;
  assert.ok(reused > 0 && reused < 100, `reused ${reused}`);
  for (const b of back) assert.equal(b.length, SMALL_BUFFER_BYTES);
});
