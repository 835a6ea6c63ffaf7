/**
 * Measurements the harness takes outside the servers: memory from
 * `/proc/<pid>/status`, machine facts, medians and counts of stored files.
 *
 * @module
 */

/** Progress on stderr, so stdout carries only the report. */
export function progress(text: string): void {
  Deno.stderr.writeSync(new TextEncoder().encode(`${text}\n`));
}

/** Memory of one process in KiB: current (VmRSS) and peak since start (VmHWM). */
export interface Memory {
  rssKiB: number;
  peakKiB: number;
}

/**
 * Reads VmRSS and VmHWM. Every run starts a fresh server, so VmHWM is the
 * peak of that run exactly, with no sampling gap (proc(5)).
 */
export async function memoryOf(pid: number): Promise<Memory | null> {
  let status: string;
  try {
    status = await Deno.readTextFile(`/proc/${pid}/status`);
  } catch {
    return null;
  }
  const field = (name: string): number => {
    const match = new RegExp(`^${name}:\\s+(\\d+) kB`, "m").exec(status);
    return match ? Number(match[1]) : 0;
  };
  return { rssKiB: field("VmRSS"), peakKiB: field("VmHWM") };
}

/** Median of the numbers (the mean of the middle two for an even count). */
export function median(values: number[]): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  if (sorted.length % 2 === 1) return sorted[middle]!;
  return (sorted[middle - 1]! + sorted[middle]!) / 2;
}

/** Counts entries of `dir` whose name ends with `suffix` (0 when `dir` is missing). */
export async function countFiles(dir: string, suffix: string): Promise<number> {
  let count = 0;
  try {
    for await (const entry of Deno.readDir(dir)) {
      if (entry.isFile && entry.name.endsWith(suffix)) count++;
    }
  } catch (e: unknown) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  }
  return count;
}

/** Sizes of the files of `dir` whose name ends with `suffix`. */
export async function fileSizes(dir: string, suffix: string): Promise<number[]> {
  const sizes: number[] = [];
  for await (const entry of Deno.readDir(dir)) {
    if (entry.isFile && entry.name.endsWith(suffix)) {
      sizes.push((await Deno.stat(`${dir}/${entry.name}`)).size);
    }
  }
  return sizes;
}

/** Output of a short command, trimmed; `fallback` when it fails or is missing. */
export async function commandOutput(
  argv: string[],
  fallback = "unknown",
): Promise<string> {
  try {
    const [program, ...args] = argv;
    const output = await new Deno.Command(program!, {
      args,
      stdout: "piped",
      stderr: "piped",
      signal: AbortSignal.timeout(10_000),
    }).output();
    const text = new TextDecoder().decode(output.stdout).trim() ||
      new TextDecoder().decode(output.stderr).trim();
    return output.success && text !== "" ? text : fallback;
  } catch {
    return fallback;
  }
}

/** Facts printed above the results: what the numbers were measured on. */
export async function machineFacts(deno: string, spoolRoot: string): Promise<[string, string][]> {
  const cpuinfo = await Deno.readTextFile("/proc/cpuinfo").catch(() => "");
  const meminfo = await Deno.readTextFile("/proc/meminfo").catch(() => "");
  const cpu = /^model name\s*:\s*(.+)$/m.exec(cpuinfo)?.[1] ?? "unknown";
  const memKiB = Number(/^MemTotal:\s+(\d+) kB/m.exec(meminfo)?.[1] ?? 0);
  const denoVersion = (await commandOutput([deno, "--version"])).split("\n")[0] ?? "unknown";
  const df = (await commandOutput(["df", "-T", spoolRoot])).split("\n")[1]?.split(/\s+/);
  return [
    ["date", new Date().toISOString()],
    ["nproc", await commandOutput(["nproc"])],
    ["cpu", cpu],
    ["memory", `${(memKiB / 1024 / 1024).toFixed(1)} GiB`],
    ["kernel", await commandOutput(["uname", "-srm"])],
    ["deno", denoVersion],
    ["node", await commandOutput(["node", "--version"])],
    ["python (aiosmtpd)", await commandOutput(["/usr/bin/python3", "--version"])],
    ["postfix", await commandOutput(["/usr/sbin/postconf", "-h", "mail_version"])],
    ["spool filesystem", df ? `${df[1]} on ${df[0]}${await ext4Journal(df[1], df[0])}` : "unknown"],
    ["spool directory", spoolRoot],
    ["file creation in it", await settledCreationCost(spoolRoot)],
    ["load average at start", await loadAverage()],
  ];
}

/**
 * ", no journal" for an ext4 made without one: there every fsync writes its
 * inode and directory blocks itself instead of sharing a journal commit,
 * which changes what fsync mode costs.
 */
async function ext4Journal(type: string | undefined, device: string | undefined): Promise<string> {
  const name = device?.split("/").pop();
  if (type !== "ext4" || name === undefined) return "";
  const task = await Deno.readTextFile(`/sys/fs/ext4/${name}/journal_task`).catch(() => null);
  if (task === null) return "";
  return task.trim() === "<none>" ? ", no journal" : ", journaled";
}

/** The creation probes' directories, for the harness to remove after the last run. */
export const probeDirs: string[] = [];

/** Files the creation probe makes (kept until the end). */
const PROBE_FILES = 500;

/**
 * Microseconds to create, write 1 KiB into and close a new file in `dir`.
 * It swings with the state of the disk (seen on one ext4 volume with
 * `discard`: 7 µs in one directory, 200–250 µs in another of the same
 * volume after mass deletes), and every server stores two files per message.
 */
async function creationCost(dir: string): Promise<number> {
  const probe = await Deno.makeTempDir({ dir, prefix: "probe-" });
  const data = new Uint8Array(1024);
  try {
    const start = performance.now();
    for (let i = 0; i < PROBE_FILES; i++) {
      const file = Deno.openSync(`${probe}/${i}`, { write: true, createNew: true });
      file.writeSync(data);
      file.close();
    }
    return ((performance.now() - start) * 1000) / PROBE_FILES;
  } finally {
    // Removed with the spools at the end: deleting now would slow the next creates (see below).
    probeDirs.push(probe);
  }
}

/**
 * Creation cost (µs) below which the disk counts as settled: 20–30 µs here
 * when settled. At 40 µs (60 let it pass) the first case still ran slowed:
 * small10 --no-fsync 4,651 msg/s against 7,094 an hour before at 29 µs.
 */
const SETTLED_MICROS = 35;

/**
 * The creation cost, after waiting (up to `BENCH_SETTLE_SECONDS`, default
 * 360; 0 waits not at all) for it to fall below SETTLED_MICROS. ext4 without
 * a journal skips inodes freed in the last 60 s, or 360 s while their inode
 * table block is dirty (`recently_deleted`, fs/ext4/ialloc.c), so a bench
 * started right after mass deletes (an earlier bench's spools) measured
 * 124 µs per file for its first runs: it slows every server that stores two
 * files per message, and not smtp-sink, which stores nothing.
 */
async function settledCreationCost(dir: string): Promise<string> {
  const limit = Number(Deno.env.get("BENCH_SETTLE_SECONDS") ?? 360);
  const started = performance.now();
  const first = await creationCost(dir);
  let micros = first;
  let waited = 0;
  while (micros > SETTLED_MICROS && waited + 30 <= limit) {
    progress(`file creation costs ${micros.toFixed(0)} µs; waiting for the disk to settle`);
    await new Promise((resolve) => setTimeout(resolve, 30_000));
    micros = await creationCost(dir);
    waited = Math.round((performance.now() - started) / 1000);
  }
  const settled = waited === 0
    ? ""
    : `; ${first.toFixed(0)} µs at first, waited ${waited} s for it to settle`;
  return `${
    micros.toFixed(0)
  } µs per 1 KiB file (create, write, close; ${PROBE_FILES} files${settled})`;
}

/**
 * 1, 5 and 15 minute load averages (proc(5)): with 2 cores, anything else
 * running during the bench shows in the numbers, so the report says so.
 */
export async function loadAverage(): Promise<string> {
  const text = await Deno.readTextFile("/proc/loadavg").catch(() => "");
  return text.split(" ").slice(0, 3).join(" ") || "unknown";
}

/** `12345` KiB → "12.1 MiB". */
export function formatKiB(kib: number): string {
  if (!Number.isFinite(kib) || kib <= 0) return "—";
  return kib >= 1024 * 1024
    ? `${(kib / 1024 / 1024).toFixed(2)} GiB`
    : `${(kib / 1024).toFixed(1)} MiB`;
}
