/**
 * Drift test (STYLE §6): the product has one list of runtime flags
 * (permissions, V8 flags). `deno.json` `tasks.run` (what `deno task run` and
 * the e2e launcher use), `tasks.compile` (baked into the binary) and the
 * Makefile's `RUNTIME_FLAGS` must name the same flags,
 * or a feature works in tests and fails in the shipped executable.
 */

import assert from "node:assert/strict";
import { includedModules, repoPath, runFlags, runtimeFlags } from "../helpers/launcher.ts";

/** Reads `deno.json`'s tasks. */
function tasks(): Record<string, string> {
  return JSON.parse(Deno.readTextFileSync(repoPath("deno.json"))).tasks ?? {};
}

/** The Makefile's `RUNTIME_FLAGS := …` value, with `\`-continued lines joined. */
function makefileFlags(): string[] {
  const text = Deno.readTextFileSync(repoPath("Makefile")).replace(/\\\n/g, " ");
  const m = /^RUNTIME_FLAGS\s*:?=(.*)$/m.exec(text);
  assert.ok(m, "Makefile defines RUNTIME_FLAGS");
  return runtimeFlags(m[1]!);
}

function sorted(flags: string[]): string[] {
  return [...flags].sort();
}

Deno.test("permissions: deno.json run and compile tasks name the same flags", () => {
  const t = tasks();
  assert.ok(t.run && t.compile, "deno.json has tasks.run and tasks.compile");
  assert.deepEqual(sorted(runtimeFlags(t.compile)), sorted(runtimeFlags(t.run)));
});

Deno.test("permissions: the Makefile RUNTIME_FLAGS equal deno.json tasks.run", () => {
  assert.deepEqual(sorted(makefileFlags()), sorted(runtimeFlags(tasks().run ?? "")));
});

Deno.test("permissions: --allow-all, unstable-net and the memory flags (the Makefile says why)", () => {
  // Unscoped --allow-run grants everything anyway; scoped file permissions
  // make Deno resolve every path of every spool file call. --unstable-net
  // gives reusePort to the second serving thread. --expose-gc lets
  // lib/native_memory.ts collect node:crypto state; the semispace cap keeps
  // the young generation small.
  assert.deepEqual(runFlags(), [
    "--allow-all",
    "--unstable-net",
    "--v8-flags=--expose-gc,--max-semi-space-size=2,--invocation-count-for-turbofan=100000",
  ]);
});

Deno.test("permissions: run and compile tasks start main.ts", () => {
  const t = tasks();
  assert.match(t.run ?? "", /^deno run .*\bmain\.ts\b/);
  assert.match(t.compile ?? "", /^deno compile .*\bmain\.ts\b/);
});

Deno.test("permissions: the Makefile run, build and release use RUNTIME_FLAGS", () => {
  const text = Deno.readTextFileSync(repoPath("Makefile"));
  const compiles = text.split("\n").filter((l) => /\$\(DENO\) compile /.test(l));
  assert.ok(compiles.length >= 2, "build and release compile");
  for (const line of compiles) assert.match(line, /compile \$\(RUNTIME_FLAGS\) /, line.trim());
  const runs = text.split("\n").filter((l) => /\$\(DENO\) run /.test(l));
  for (const line of runs) assert.match(line, /run \$\(RUNTIME_FLAGS\) /, line.trim());
});

/** Every `new URL("./x_worker.ts", import.meta.url)` in lib/, as repository paths. */
function workerModules(): string[] {
  const found: string[] = [];
  const walk = (dir: string) => {
    for (const entry of Deno.readDirSync(repoPath(dir))) {
      const path = `${dir}/${entry.name}`;
      if (entry.isDirectory) walk(path);
      else if (path.endsWith(".ts")) {
        const text = Deno.readTextFileSync(repoPath(path));
        for (
          const m of text.matchAll(/new URL\("\.\/([\w./-]+_worker\.ts)", import\.meta\.url\)/g)
        ) {
          found.push(`${dir}/${m[1]}`);
        }
      }
    }
  };
  walk("lib");
  return found.sort();
}

Deno.test("compile includes: deno.json, the Makefile and lib's workers agree", () => {
  const workers = workerModules();
  assert.deepEqual(workers, ["lib/server/helper_worker.ts", "lib/spool/hash_worker.ts"]);
  assert.deepEqual(includedModules(tasks().compile ?? "").sort(), workers);
  const text = Deno.readTextFileSync(repoPath("Makefile"));
  const m = /^INCLUDES\s*:?=(.*)$/m.exec(text);
  assert.ok(m, "Makefile defines INCLUDES");
  assert.deepEqual(includedModules(m[1]!).sort(), workers);
  const compiles = text.split("\n").filter((l) => /\$\(DENO\) compile /.test(l));
  for (const line of compiles) {
    assert.match(line, /\$\(RUNTIME_FLAGS\) \$\(INCLUDES\) /, line.trim());
  }
});

Deno.test("runtimeFlags keeps permission and V8 flags and drops the rest", () => {
  assert.deepEqual(
    runtimeFlags(
      "deno compile --allow-net --output dist/smtpd -A --v8-flags=--expose-gc --deny-env=X main.ts",
    ),
    ["--allow-net", "-A", "--v8-flags=--expose-gc", "--deny-env=X"],
  );
});
