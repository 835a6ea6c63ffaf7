/**
 * The compiled binary (SPEC §1): `deno compile` with `deno.json`'s
 * `tasks.compile` flags, then the executable must behave as `deno run`
 * does. `deno compile` downloads its runtime (denort) unless `DENORT_BIN`
 * names a local one; without it this test is skipped, saying why.
 */

import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import {
  includedModules,
  poll,
  readReadyFile,
  readSpool,
  READY_TIMEOUT_MS,
  repoPath,
  runtimeFlags,
} from "../helpers/launcher.ts";
import { RawClient } from "../helpers/raw_client.ts";
import { withTempDir } from "../helpers/temp_dir.ts";

const DENORT = Deno.env.get("DENORT_BIN");
if (!DENORT) {
  Deno.stderr.writeSync(new TextEncoder().encode(
    "compiled_test: skipped: DENORT_BIN is not set, and deno compile cannot download denort here\n",
  ));
}

/** 3 MiB of 64-octet lines: big enough for the hash worker. */
const BIG_BODY = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ\r\n".repeat(49152);

/**
 * `deno compile` with `deno.json` `tasks.compile`'s runtime flags (and its
 * `--include`s when `includes`); returns `base` with the platform's suffix.
 */
async function compile(entry: string, base: string, includes: boolean): Promise<string> {
  const task: string = JSON.parse(Deno.readTextFileSync(repoPath("deno.json"))).tasks.compile;
  const binary = `${base}${Deno.build.os === "windows" ? ".exe" : ""}`;
  const included = includes ? includedModules(task) : [];
  const compiled = await output(Deno.execPath(), [
    "compile",
    ...runtimeFlags(task),
    ...included.flatMap((path) => ["--include", repoPath(path)]),
    "--output",
    binary,
    entry,
  ], { DENORT_BIN: DENORT! });
  assert.equal(compiled.code, 0, compiled.stderr);
  return binary;
}

async function output(cmd: string, args: string[], env: Record<string, string> = {}) {
  const out = await new Deno.Command(cmd, { args, env, stdout: "piped", stderr: "piped" }).output();
  const text = (b: Uint8Array) => new TextDecoder().decode(b);
  return { code: out.code, stdout: text(out.stdout), stderr: text(out.stderr) };
}

Deno.test({
  name: "compiled binary: serves, stores, exits 2 on a bad flag and 0 on SIGTERM",
  ignore: !DENORT,
  async fn() {
    await withTempDir(async (dir) => {
      const binary = await compile(repoPath("main.ts"), `${dir}/smtpd`, true);

      const version = await output(binary, ["--version"]);
      assert.equal(version.code, 0);
      assert.match(version.stdout, /^smtpd \d+\.\d+\.\d+/);
      const usage = await output(binary, ["--max-size", "10XB"]);
      assert.equal(usage.code, 2);
      assert.equal(usage.stderr.trim().split("\n").length, 1, usage.stderr);

      const ready = `${dir}/ready.json`;
      const spool = `${dir}/spool`;
      const child = new Deno.Command(binary, {
        args: ["--listen", "127.0.0.1:0", "--ready-file", ready, "--spool", spool],
        stdout: "null",
        stderr: "piped",
      }).spawn();
      const stderr = new Response(child.stderr).text();
      const { port } = (await poll("the ready file", READY_TIMEOUT_MS, () => readReadyFile(ready)))
        .listeners[0]!;
      const client = await RawClient.connect(port);
      try {
        await client.readReply();
        for (const line of ["EHLO test", "MAIL FROM:<a@example.com>", "RCPT TO:<b@example.com>"]) {
          assert.equal((await client.command(line)).code, 250);
        }
        assert.equal((await client.command("DATA")).code, 354);
        assert.equal((await client.command("Subject: compiled\r\n\r\nhi\r\n.")).code, 250);
        // Above 1 MiB the hash worker takes over: it must be in the binary.
        for (const line of ["MAIL FROM:<a@example.com>", "RCPT TO:<b@example.com>", "DATA"]) {
          assert.ok((await client.command(line)).code < 400, line);
        }
        assert.equal((await client.command(`Subject: big\r\n\r\n${BIG_BODY}.`)).code, 250);
      } finally {
        client.close();
      }
      child.kill("SIGTERM");
      assert.equal((await child.status).code, 0);
      assert.doesNotMatch(await stderr, /hash worker unavailable/);
      const [message, big] = await readSpool(spool);
      assert.equal(message?.meta.headers.subject, "compiled");
      assert.equal(new TextDecoder().decode(message?.eml), "Subject: compiled\r\n\r\nhi\r\n");
      const bigEml = `Subject: big\r\n\r\n${BIG_BODY}`;
      assert.equal(big?.meta.sha256, createHash("sha256").update(bigEml).digest("hex"));
    }, "smtpd-compiled-");
  },
});

Deno.test({
  name: "compiled binary: the pinned V8 flags are baked in (gc exposed for lib/native_memory.ts)",
  ignore: !DENORT,
  async fn() {
    await withTempDir(async (dir) => {
      const probe = `${dir}/probe.ts`;
      await Deno.writeTextFile(probe, "console.log(typeof (globalThis as { gc?: unknown }).gc);\n");
      const binary = await compile(probe, `${dir}/probe`, false);
      const run = await output(binary, []);
      assert.equal(run.stdout.trim(), "function", run.stderr);
    }, "smtpd-compiled-gc-");
  },
});
