/**
 * The torture cases of issue 8 as one table, at two scales: `short` runs
 * inside `make test` (tests/e2e/torture_short_test.ts, well under 90 s),
 * `full` in `make torture` (tests/torture/torture_test.ts). Each case prints
 * its `FIGURE` line; run.sh collects the full figures in RESULTS.md.
 */

import {
  connectionFlood,
  diskFull,
  hugeCommandLine,
  killNineUnderLoad,
  liveFuzz,
  neverReads,
  secrets,
  sizeLies,
  slowClient,
  smuggling,
  spoolUnwritable,
  starttlsInjection,
} from "./cases.ts";

type Scale = "short" | "full";

interface TortureCase {
  name: string;
  run: (scale: Scale) => Promise<unknown>;
}

const CASES: TortureCase[] = [
  {
    name: "kill -9 under load loses no acknowledged message",
    run: (s) =>
      killNineUnderLoad(s === "full" ? { cycles: 20, sessions: 4 } : { cycles: 3, sessions: 3 }),
  },
  { name: "a full disk gives 452 4.3.1, leaves nothing, recovers", run: () => diskFull() },
  { name: "an unwritable spool gives 451 4.3.0 and recovers", run: () => spoolUnwritable() },
  {
    name: "random and mutated raw sessions leave the server up, RSS flat",
    run: (s) => liveFuzz({ sessions: s === "full" ? 10_000 : 500, concurrency: 16 }),
  },
  {
    name: "1,000 idle connections against --max-connections 200 --timeout 2s",
    run: () => connectionFlood(1000),
  },
  {
    name: "a client sending a byte per second is served; a stalled one timed out",
    run: (s) => slowClient(s === "full" ? 20 : 3),
  },
  {
    name: "a client that never reads its replies is bounded and dropped",
    run: (s) => neverReads(s === "full" ? 5_000_000 : 2_000_000),
  },
  {
    name: "a command line of many MB without CRLF gets 500 5.5.2, RSS flat",
    run: (s) => hugeCommandLine(s === "full" ? 300 : 10),
  },
  {
    name: "smuggling end-of-data variants, pipelined and split, store one message",
    run: () => smuggling(),
  },
  { name: "commands pipelined after STARTTLS are never executed", run: () => starttlsInjection() },
  {
    name: "SIZE lies are caught while streaming with 552 5.3.4",
    run: (s) => sizeLies(s === "full" ? 200 : 5),
  },
  { name: "AUTH secrets occur in no spool file and no debug log line", run: () => secrets() },
];

/** Registers every case as a `Deno.test` at the given scale. */
export function registerTortureTests(scale: Scale): void {
  for (const c of CASES) {
    Deno.test(`torture${scale === "full" ? " full" : ""}: ${c.name}`, async () => {
      await c.run(scale);
    });
  }
}
