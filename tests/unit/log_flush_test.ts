import assert from "node:assert/strict";

Deno.test("flushStderr starts the queued lines out at once, even when told to stop waiting", async () => {
  const program = `import { flushStderr, Logger } from ${
    JSON.stringify(new URL("../../lib/log.ts", import.meta.url).href)
  };
new Logger().info("stopped", { stored: 1 });
await flushStderr(1000, () => true);
Deno.exit(0);`;
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["eval", program],
    stdout: "null",
    stderr: "piped",
  }).output();
  assert.match(new TextDecoder().decode(out.stderr), /INFO {2}stopped stored=1\n$/);
});
