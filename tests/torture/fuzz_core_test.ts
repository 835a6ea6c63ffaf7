/**
 * The full fuzz of the pure core (issue 8): ≥ 1,000,000 fast-check sessions
 * (modelled, mutated, random) through `Session`, in ten seeded batches so a
 * failure names a replayable seed. `TORTURE_FUZZ_RUNS` overrides the count.
 */

import { ok } from "node:assert/strict";
import { fuzzCore, type FuzzFigures } from "./fuzz_core.ts";

Deno.test("torture full: 1,000,000 fuzzed sessions against Session", () => {
  const total = Number(Deno.env.get("TORTURE_FUZZ_RUNS") ?? "1000000");
  const batches = 10;
  const sum: FuzzFigures & { seeds: number[] } = {
    sessions: 0,
    modelled: 0,
    mutated: 0,
    random: 0,
    messagesChecked: 0,
    ms: 0,
    seeds: [],
  };
  const base = Date.now() % 2 ** 30;
  for (let b = 0; b < batches; b++) {
    const seed = base + b * 7;
    sum.seeds.push(seed);
    const f = fuzzCore(Math.ceil(total / batches), seed);
    sum.sessions += f.sessions;
    sum.modelled += f.modelled;
    sum.mutated += f.mutated;
    sum.random += f.random;
    sum.messagesChecked += f.messagesChecked;
    sum.ms += f.ms;
  }
  Deno.stderr.writeSync(new TextEncoder().encode(`FIGURE fuzz-core: ${JSON.stringify(sum)}\n`));
  ok(sum.sessions >= total);
});
