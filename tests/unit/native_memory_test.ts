/**
 * The GC pacer behind node:crypto objects (lib/native_memory.ts): it asks for
 * an asynchronous major GC every N objects, never throws or leaves an
 * unhandled rejection, and the shipped runtime flags really expose `gc`.
 */

import assert from "node:assert/strict";
import { type GcFunction, GcPacer, hmac, sha256 } from "../../lib/native_memory.ts";
import { repoPath, runFlags } from "../helpers/launcher.ts";

Deno.test("GcPacer: asks for an async major GC every N objects", () => {
  const asked: unknown[] = [];
  const pacer = new GcPacer(3, (options) => asked.push(options));
  const answers = Array.from({ length: 9 }, () => pacer.note());
  assert.deepEqual(answers, [false, false, true, false, false, true, false, false, true]);
  assert.deepEqual(asked, Array(3).fill({ type: "major", execution: "async" }));
});

Deno.test("GcPacer: counts weighted notes (bytes) and asks for the GC type it was given", () => {
  const asked: unknown[] = [];
  const pacer = new GcPacer(100, (options) => asked.push(options), "minor");
  const answers = [60, 30, 20, 99, 1, 250].map((bytes) => pacer.note(bytes));
  assert.deepEqual(answers, [false, false, true, false, true, true]);
  assert.deepEqual(asked, Array(3).fill({ type: "minor", execution: "async" }));
});

Deno.test("GcPacer: without gc it never asks", () => {
  const pacer = new GcPacer(1, undefined);
  assert.equal(pacer.note(), false);
  assert.equal(pacer.note(), false);
});

Deno.test("GcPacer: a throwing or rejecting gc is swallowed", async () => {
  const throwing: GcFunction = () => {
    throw new Error("no gc here");
  };
  assert.equal(new GcPacer(1, throwing).note(), true);
  let rejected = false;
  const rejecting: GcFunction = () =>
    Promise.reject(new Error("gc failed")).finally(() => (rejected = true));
  assert.equal(new GcPacer(1, rejecting).note(), true);
  // Deno fails the test on an unhandled rejection; give it a turn to surface.
  await new Promise((resolve) => setTimeout(resolve, 10));
  assert.ok(rejected);
});

Deno.test("sha256 and hmac: node:crypto digests", () => {
  assert.equal(
    sha256().update("abc").digest("hex"),
    "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
  );
  // RFC 2202 test case 2 for HMAC-MD5.
  assert.equal(
    hmac("md5", "Jefe").update("what do ya want for nothing?").digest("hex"),
    "750c783e6ab0b503eaa86e310a5db738",
  );
});

Deno.test("the shipped runtime flags expose gc to the pacer", async () => {
  const script = await Deno.makeTempFile({ suffix: ".ts" });
  try {
    await Deno.writeTextFile(script, "console.log(typeof (globalThis as { gc?: unknown }).gc);\n");
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["run", ...runFlags(), script],
      cwd: repoPath("."),
      stdout: "piped",
      stderr: "piped",
    }).output();
    assert.equal(new TextDecoder().decode(out.stdout).trim(), "function");
  } finally {
    await Deno.remove(script);
  }
});
