/**
 * The short torture suite (issue 8) inside `make test`: the same cases as
 * `make torture` (`tests/torture/`), scaled down to stay well under 90 s.
 * Each prints its `FIGURE` line; the full figures are in
 * `tests/torture/RESULTS.md`.
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
} from "../torture/cases.ts";

Deno.test("torture: kill -9 under load loses no acknowledged message (3 cycles)", async () => {
  await killNineUnderLoad({ cycles: 3, sessions: 3 });
});

Deno.test("torture: a full disk gives 452 4.3.1, leaves nothing, recovers", async () => {
  await diskFull();
});

Deno.test("torture: an unwritable spool gives 451 4.3.0 and recovers", async () => {
  await spoolUnwritable();
});

Deno.test("torture: 500 random and mutated raw sessions leave the server up, RSS flat", async () => {
  await liveFuzz({ sessions: 500, concurrency: 16 });
});

Deno.test("torture: 1,000 idle connections against --max-connections 200 --timeout 2s", async () => {
  await connectionFlood(1000);
});

Deno.test("torture: a client sending a byte per second is served; a stalled one timed out", async () => {
  await slowClient(3);
});

Deno.test("torture: a client that never reads its replies is bounded and dropped", async () => {
  await neverReads(2_000_000);
});

Deno.test("torture: a 10 MB command line without CRLF gets 500 5.5.2, RSS flat", async () => {
  await hugeCommandLine(10);
});

Deno.test("torture: smuggling end-of-data variants, pipelined and split, store one message", async () => {
  await smuggling();
});

Deno.test("torture: commands pipelined after STARTTLS are never executed", async () => {
  await starttlsInjection();
});

Deno.test("torture: SIZE lies are caught while streaming with 552 5.3.4", async () => {
  await sizeLies(5);
});

Deno.test("torture: AUTH secrets occur in no spool file and no debug log line", async () => {
  await secrets();
});
