/**
 * Turns the runs into the Markdown that `make bench` prints and writes to
 * bench/RESULTS.md: machine facts, one table, the headline ratios.
 *
 * @module
 */

import type { BenchCase, RunResult } from "./_cases.ts";
import { formatKiB, median } from "./_measure.ts";

/** One run plus the server's peak RSS (VmHWM) in that run. */
export interface MeasuredRun extends RunResult {
  peakKiB: number;
}

/** All runs of one case against one server, or why there are none. */
export interface Row {
  caseName: string;
  server: string;
  runs: MeasuredRun[];
  /** Set when the server could not start or a run failed: the row shows it. */
  error: string | null;
}

/** The ratio baseline named in the issue: smtpd with `--no-fsync`. */
export const BASELINE = "smtpd-nofsync";

function medianOf(row: Row, pick: (run: MeasuredRun) => number | null): number | null {
  const values = row.runs.map(pick).filter((v): v is number => v !== null && Number.isFinite(v));
  return values.length > 0 ? median(values) : null;
}

/** The run closest to the median metric: its notes speak for the row. */
function typicalRun(row: Row): MeasuredRun | undefined {
  const middle = medianOf(row, (run) => run.metric);
  if (middle === null) return undefined;
  return [...row.runs].sort((a, b) => Math.abs(a.metric - middle) - Math.abs(b.metric - middle))[0];
}

function number(value: number | null, digits = 0): string {
  if (value === null) return "—";
  return value.toLocaleString("en", {
    minimumFractionDigits: digits,
    maximumFractionDigits: digits,
  });
}

function ratioOf(rows: Row[], row: Row): string {
  const base = rows.find((r) => r.caseName === row.caseName && r.server === BASELINE);
  const mine = medianOf(row, (run) => run.metric);
  const theirs = base ? medianOf(base, (run) => run.metric) : null;
  if (mine === null || theirs === null || theirs === 0) return "—";
  return `${(mine / theirs).toFixed(2)}×`;
}

/** Lowest–highest metric over the runs: on 2 shared cores the spread is part of the result. */
function spread(row: Row, metricName: string): string {
  const values = row.runs.map((run) => run.metric);
  const low = Math.min(...values);
  const high = Math.max(...values);
  if (metricName === "RSS") return `${formatKiB(low)}–${formatKiB(high)}`;
  return `${number(low)}–${number(high)} ${metricName}`;
}

function cell(text: string): string {
  return text.replaceAll("|", "\\|").replaceAll("\n", " ");
}

/** The results table, one line per (case, server), medians over the runs. */
export function table(cases: BenchCase[], rows: Row[]): string {
  const lines = [
    "| server | case | messages/s | seconds | peak RSS | ratio | stored | notes |",
    "|---|---|---:|---:|---:|---:|---|---|",
  ];
  for (const benchCase of cases) {
    for (const row of rows.filter((r) => r.caseName === benchCase.name)) {
      if (row.runs.length === 0) {
        lines.push(
          `| ${row.server} | ${row.caseName} | — | — | — | — | — | ${cell(row.error ?? "")} |`,
        );
        continue;
      }
      const rate = medianOf(row, (run) => run.messagesPerSecond);
      const seconds = medianOf(row, (run) => run.seconds);
      const peak = medianOf(row, (run) => run.peakKiB);
      const notes = [...(typicalRun(row)?.notes ?? [])];
      if (row.error) notes.push(`FAILED: ${row.error}`);
      if (row.runs.length > 1) notes.push(`range ${spread(row, benchCase.metricName)}`);
      lines.push(
        `| ${row.server} | ${row.caseName} | ${number(rate)} | ${number(seconds, 2)} | ` +
          `${formatKiB(peak ?? 0)} | ${ratioOf(rows, row)} | ${typicalRun(row)?.stored ?? "—"} | ` +
          `${cell(notes.join("; "))} |`,
      );
    }
  }
  return lines.join("\n");
}

/** Legend: what each case is and what its ratio compares. */
export function legend(cases: BenchCase[]): string {
  const lines = cases.map((c) => `- \`${c.name}\`: ${c.title}; ratio compares ${c.metricName}.`);
  return [
    `Ratio = the server's median metric ÷ \`${BASELINE}\`'s (messages/s, MB/s: above 1 is faster ` +
    "than smtpd; RSS: above 1 uses more memory). Peak RSS is VmHWM of the server process, a fresh one per run.",
    ...lines,
  ].join("\n");
}

function metricOf(rows: Row[], caseName: string, server: string): number | null {
  const row = rows.find((r) => r.caseName === caseName && r.server === server);
  return row ? medianOf(row, (run) => run.metric) : null;
}

function peakOf(rows: Row[], caseName: string, server: string): number | null {
  const row = rows.find((r) => r.caseName === caseName && r.server === server);
  return row ? medianOf(row, (run) => run.peakKiB) : null;
}

/** The comparisons the issue asks for, as sentences, where both sides ran. */
export function headlines(rows: Row[]): string {
  const lines: string[] = [];
  const pairs: [string, string, string][] = [
    ["smtpd-nofsync", "sink", "smtpd --no-fsync vs smtp-sink (the ceiling)"],
    ["smtpd", "aiosmtpd", "smtpd (fsync) vs aiosmtpd durable"],
    ["smtpd", "smtp-server", "smtpd (fsync) vs smtp-server durable"],
    ["smtpd-nofsync", "aiosmtpd-nofsync", "smtpd --no-fsync vs aiosmtpd --no-fsync"],
    ["smtpd-nofsync", "smtp-server-nofsync", "smtpd --no-fsync vs smtp-server --no-fsync"],
    ["smtpd-nofsync", "maildev", "smtpd --no-fsync vs maildev"],
  ];
  for (const [ours, theirs, label] of pairs) {
    const parts: string[] = [];
    for (const caseName of ["small10", "steady10", "single", "large"]) {
      const a = metricOf(rows, caseName, ours);
      const b = metricOf(rows, caseName, theirs);
      if (a !== null && b !== null && b > 0) parts.push(`${caseName} ${(a / b).toFixed(2)}×`);
    }
    if (parts.length > 0) lines.push(`- ${label}, messages/s: ${parts.join(", ")}`);
  }
  const bigPeaks = [
    "smtpd",
    "smtpd-nofsync",
    "aiosmtpd",
    "smtp-server",
    "maildev",
    "sink",
    "raw",
    "raw-fsync",
  ]
    .map((server) => [server, peakOf(rows, "big", server), metricOf(rows, "big", server)] as const)
    .filter(([, peak]) => peak !== null);
  if (bigPeaks.length > 0) {
    lines.push(
      "- 1 GiB message, peak RSS (MB/s): " +
        bigPeaks.map(([s, peak, rate]) => `${s} ${formatKiB(peak ?? 0)} (${number(rate)})`).join(
          ", ",
        ),
    );
  }
  const bigLimits: [string, string][] = [
    ["smtpd", "raw-fsync"],
    ["smtpd", "raw"],
    ["smtpd-nofsync", "raw"],
  ];
  for (const [ours, limit] of bigLimits) {
    const a = metricOf(rows, "big", ours);
    const b = metricOf(rows, "big", limit);
    if (a !== null && b !== null && b > 0) {
      lines.push(`- 1 GiB message, ${ours} vs ${limit}: ${(a / b).toFixed(2)}×`);
    }
  }
  const tlsRate = metricOf(rows, "tls", "smtpd-tls");
  const plainRate = metricOf(rows, "tls", "smtpd-nofsync");
  if (tlsRate !== null && plainRate !== null && plainRate > 0) {
    lines.push(`- smtpd STARTTLS vs plain, same client: ${(tlsRate / plainRate).toFixed(2)}×`);
  }
  return lines.length > 0 ? lines.join("\n") : "- (no pair of servers ran in the same case)";
}
