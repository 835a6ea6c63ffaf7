/**
 * The full torture suite (issue 8), run by `make torture` through
 * `tests/torture/run.sh`; the same cases run scaled down in
 * `tests/e2e/torture_short_test.ts` (`make test`). Each prints a `FIGURE`
 * line; run.sh writes them to `tests/torture/RESULTS.md`.
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

Deno.test("torture full: kill -9 under load, 20 cycles, loses no acknowledged message", async () => {
  await killNineUnderLoad({ cycles: 20, sessions: 4 });
});

Deno.test("torture full: a full 4 MiB tmpfs spool gives 452 4.3.1 and recovers", async () => {
  await diskFull();
});

Deno.test("torture full: an unwritable spool gives 451 4.3.0 and recovers", async () => {
  await spoolUnwritable();
});

Deno.test("torture full: 10,000 random and mutated raw sessions, server up, RSS flat", async () => {
  await liveFuzz({ sessions: 10_000, concurrency: 16 });
});

Deno.test("torture full: 1,000 idle connections, --max-connections 200 --timeout 2s", async () => {
  await connectionFlood(1000);
});

Deno.test("torture full: a body sent one byte per second for 20 s is stored", async () => {
  await slowClient(20);
});

Deno.test("torture full: up to 5,000,000 pipelined NOOPs never read", async () => {
  await neverReads(5_000_000);
});

Deno.test("torture full: a 300 MB command line without CRLF", async () => {
  await hugeCommandLine(300);
});

Deno.test("torture full: smuggling end-of-data variants", async () => {
  await smuggling();
});

Deno.test("torture full: commands pipelined after STARTTLS", async () => {
  await starttlsInjection();
});

Deno.test("torture full: SIZE lies, 200 MB sent against --max-size 100000", async () => {
  await sizeLies(200);
});

Deno.test("torture full: AUTH secrets in no spool file and no debug log line", async () => {
  await secrets();
});
