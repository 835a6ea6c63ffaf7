import assert from "node:assert/strict";
import { Logger } from "../../../lib/log.ts";
import { guardUncaught } from "../../../lib/server/uncaught.ts";

Deno.test("guardUncaught logs an uncaught error and an unhandled rejection, and the thread goes on", async () => {
  const lines: string[] = [];
  const unguard = guardUncaught(new Logger({ format: "json", sink: (l) => lines.push(l) }));
  try {
    setTimeout(() => {
      throw new TypeError("boom in a callback");
    }, 0);
    void Promise.reject(new Error("boom in a promise"));
    await new Promise((r) => setTimeout(r, 50));
  } finally {
    unguard();
  }
  const logged = lines.map((l) => JSON.parse(l));
  assert.deepEqual(logged.map((l) => [l.level, l.msg, l.error]).sort(), [
    ["error", "internal error: serving goes on", "boom in a callback"],
    ["error", "internal error: serving goes on", "boom in a promise"],
  ]);
  assert.ok(logged.every((l) => /^at .*uncaught_test\.ts/.test(l.at)), lines.join("\n"));
});
