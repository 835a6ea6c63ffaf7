/**
 * The benchmark harness behind `make bench` (bench/run.sh installs the peers,
 * then runs this): every selected server on its own 127.0.0.1 port, every
 * selected case, BENCH_RUNS runs each, a Markdown table of medians on stdout
 * and in bench/RESULTS.md.
 *
 * Environment:
 * - `BENCH_RUNS` (default 3): runs per case and server; the table shows medians.
 * - `BENCH_CASES` (default all): e.g. `small10,single`.
 * - `BENCH_SERVERS` (default all): names or families, e.g. `smtpd,sink`
 *   (`smtpd` selects smtpd, smtpd-nofsync and smtpd-tls).
 * - `BENCH_RESULTS` (default bench/RESULTS.md): where the Markdown goes.
 * - `BENCH_SPOOL_DIR` (default bench/out): where each run's spool is made.
 * - `BENCH_REMOVE_SPOOLS` (default `end`): `each` removes a run's spool right
 *   after it (a size-limited tmpfs), `end` after the last measurement.
 *
 * @module
 */

import { type BenchCase, CASES } from "./_cases.ts";
import {
  commandOutput,
  loadAverage,
  machineFacts,
  memoryOf,
  probeDirs,
  progress,
} from "./_measure.ts";
import { headlines, legend, type MeasuredRun, type Row, table } from "./_report.ts";
import { type BenchContext, SERVERS, type ServerSpec, stopAll } from "./_servers.ts";

/** Most runs per case: keeps a mistyped BENCH_RUNS from running for a day. */
const MAX_RUNS = 20;

const ENCODER = new TextEncoder();

function selectCases(text: string | undefined): BenchCase[] {
  if (!text) return CASES;
  const names = text.split(",").map((s) => s.trim()).filter(Boolean);
  for (const name of names) {
    if (!CASES.some((c) => c.name === name)) {
      throw new SyntaxError(
        `Cannot parse BENCH_CASES "${text}": unknown case "${name}", expected ${
          CASES.map((c) => c.name).join(", ")
        }`,
      );
    }
  }
  return CASES.filter((c) => names.includes(c.name));
}

function selectServers(text: string | undefined): ServerSpec[] {
  if (!text) return SERVERS;
  const tokens = text.split(",").map((s) => s.trim()).filter(Boolean);
  const matches = (server: ServerSpec, token: string) =>
    server.name === token || server.name.startsWith(`${token}-`);
  for (const token of tokens) {
    if (!SERVERS.some((server) => matches(server, token))) {
      throw new SyntaxError(
        `Cannot parse BENCH_SERVERS "${text}": unknown server "${token}", expected ${
          SERVERS.map((s) => s.name).join(", ")
        }`,
      );
    }
  }
  return SERVERS.filter((server) => tokens.some((token) => matches(server, token)));
}

function runCount(text: string | undefined): number {
  const runs = text === undefined || text === "" ? 3 : Number(text);
  if (!Number.isInteger(runs) || runs < 1 || runs > MAX_RUNS) {
    throw new RangeError(
      `Cannot use BENCH_RUNS "${text}": expected an integer from 1 to ${MAX_RUNS}`,
    );
  }
  return runs;
}

/** A throwaway certificate for smtp-server's STARTTLS (its bundled one is X.509 v1). */
async function peerCertificate(out: string): Promise<BenchContext["tls"]> {
  const dir = `${out}/tls`;
  await Deno.mkdir(dir, { recursive: true });
  const cert = `${dir}/cert.pem`;
  const key = `${dir}/key.pem`;
  await Deno.remove(cert).catch(() => {});
  await commandOutput([
    "openssl",
    "req",
    "-x509",
    "-newkey",
    "ec",
    "-pkeyopt",
    "ec_paramgen_curve:P-256",
    "-nodes",
    "-days",
    "2",
    "-subj",
    "/CN=localhost",
    "-addext",
    "subjectAltName=IP:127.0.0.1,DNS:localhost",
    // rustls refuses a CA certificate as the server's own (CaUsedAsEndEntity).
    "-addext",
    "basicConstraints=critical,CA:FALSE",
    "-addext",
    "extendedKeyUsage=serverAuth",
    "-keyout",
    key,
    "-out",
    cert,
  ]);
  return await Deno.stat(cert).then(() => ({ cert, key }), () => null);
}

/**
 * Spools removed only after the last measurement. On this ext4 volume
 * (mounted with `discard`) removing 20,000 files slowed file creation for
 * the next runs from ~20 µs to ~200 µs; only the 1 GiB case's spools, too
 * big to keep, go at once.
 */
const spoolsToRemove: string[] = [];
const REMOVE_AT_ONCE = new Set(["big"]);
const REMOVE_EACH = Deno.env.get("BENCH_REMOVE_SPOOLS") === "each";

/**
 * Writes back every dirty page before a run starts. The runs before leave
 * gigabytes unwritten (`large`, `--no-fsync`, the peers' writers), and a run
 * that shares the disk with their writeback measures it: the 1 GiB message
 * took 1.65 s right after other runs against 0.95 s alone.
 */
async function settleDisk(): Promise<void> {
  await new Deno.Command("sync").output().catch(() => {});
}

async function removeSpool(spool: string): Promise<void> {
  await Deno.remove(spool, { recursive: true }).catch(() => {});
  await Deno.remove(`${spool}.ready`).catch(() => {});
}

/** Runs one case against one server `runs` times; a failure ends that row. */
async function measure(
  context: BenchContext,
  benchCase: BenchCase,
  server: ServerSpec,
  runs: number,
  unavailable: Map<string, string>,
): Promise<Row> {
  const row: Row = { caseName: benchCase.name, server: server.name, runs: [], error: null };
  for (let run = 1; run <= runs; run++) {
    const known = unavailable.get(server.name);
    if (known !== undefined) {
      row.error = `not available: ${known}`;
      return row;
    }
    const spool = `${context.spools}/spool-${server.name}-${benchCase.name}-${run}`;
    await removeSpool(spool);
    await settleDisk();
    let running;
    try {
      running = await server.start(context, spool);
    } catch (e: unknown) {
      const reason = e instanceof Error ? e.message : String(e);
      unavailable.set(server.name, reason);
      row.error = `not available: ${reason}`;
      progress(`  ${server.name}: not available: ${reason}`);
      await removeSpool(spool);
      return row;
    }
    try {
      const result = await benchCase.run(context, server, running);
      const memory = await memoryOf(running.pid);
      const measured: MeasuredRun = { ...result, peakKiB: memory?.peakKiB ?? 0 };
      row.runs.push(measured);
      const rate = result.messagesPerSecond === null
        ? ""
        : ` ${result.messagesPerSecond.toFixed(0)} msg/s`;
      progress(
        `  ${server.name} run ${run}/${runs}: ${
          result.seconds.toFixed(2)
        } s${rate} ${result.stored}`,
      );
    } catch (e: unknown) {
      const reason = e instanceof Error ? e.message : String(e);
      // Stopped first, so that a server that died has its exit and last words collected.
      await running.stop();
      const tail = running.outputTail();
      row.error = tail ? `${reason} (server: ${tail})` : reason;
      progress(`  ${server.name} run ${run}/${runs}: FAILED: ${row.error}`);
      return row;
    } finally {
      await running.stop();
      if (REMOVE_EACH || REMOVE_AT_ONCE.has(benchCase.name)) await removeSpool(spool);
      else spoolsToRemove.push(spool);
    }
  }
  return row;
}

async function main(): Promise<number> {
  const runs = runCount(Deno.env.get("BENCH_RUNS"));
  const cases = selectCases(Deno.env.get("BENCH_CASES"));
  const servers = selectServers(Deno.env.get("BENCH_SERVERS"));
  const root = new URL("..", import.meta.url).pathname.replace(/\/$/, "");
  const out = `${root}/bench/out`;
  await Deno.mkdir(out, { recursive: true });
  // Where the servers' spools go: a slow directory slows every server that
  // stores, so the report probes it (machine facts, "file creation in it").
  const spools = Deno.env.get("BENCH_SPOOL_DIR") || out;
  await Deno.mkdir(spools, { recursive: true });
  const resultsPath = Deno.env.get("BENCH_RESULTS") || `${root}/bench/RESULTS.md`;
  const context: BenchContext = {
    root,
    out,
    spools,
    deno: Deno.execPath(),
    tls: await peerCertificate(out),
  };

  const facts = await machineFacts(context.deno, spools);
  const header = [
    "| machine | |",
    "|---|---|",
    ...facts.map(([key, value]) => `| ${key} | ${value} |`),
    `| runs per row | ${runs} (median) |`,
  ].join("\n");
  await Deno.stdout.write(ENCODER.encode(`${header}\n\n`));

  const rows: Row[] = [];
  const unavailable = new Map<string, string>();
  for (const benchCase of cases) {
    progress(`case ${benchCase.name}: ${benchCase.title}`);
    for (const server of servers.filter((s) => benchCase.applies(s))) {
      rows.push(await measure(context, benchCase, server, runs, unavailable));
    }
  }

  const report = [
    `Load average at the end: ${await loadAverage()}.`,
    "",
    table(cases, rows),
    "",
    legend(cases),
    "",
    "Headline ratios:",
    "",
    headlines(rows),
  ].join("\n");
  await Deno.stdout.write(ENCODER.encode(`${report}\n`));
  const markdown = [
    "# Benchmark results",
    "",
    "Produced by `make bench` (bench/run.sh → bench/run.ts) in one run on the machine below.",
    `Selection: BENCH_CASES=${cases.map((c) => c.name).join(",")} ` +
    `BENCH_SERVERS=${servers.map((s) => s.name).join(",")} BENCH_RUNS=${runs}.`,
    "",
    header,
    "",
    report,
    "",
  ].join("\n");
  await Deno.writeTextFile(resultsPath, markdown);
  // `make test` runs `deno fmt --check` over the tree, RESULTS.md included.
  await commandOutput([context.deno, "fmt", "--quiet", resultsPath], "");
  progress(`wrote ${resultsPath}`);
  for (const spool of [...spoolsToRemove, ...probeDirs]) await removeSpool(spool);
  // A peer that fails a case is a result (the table shows why); smtpd failing is not.
  const failed = rows.filter((row) => row.error !== null && row.server.startsWith("smtpd"));
  return failed.length > 0 ? 1 : 0;
}

if (import.meta.main) {
  for (const signal of ["SIGINT", "SIGTERM"] as const) {
    Deno.addSignalListener(signal, () => {
      stopAll().finally(() => Deno.exit(130));
    });
  }
  try {
    Deno.exitCode = await main();
  } catch (e: unknown) {
    progress(`bench: ${e instanceof Error ? e.message : String(e)}`);
    Deno.exitCode = 1;
  } finally {
    await stopAll();
  }
}
