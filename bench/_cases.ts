/**
 * The benchmark cases: what load each drives into a running server and how
 * it checks that the messages really arrived. One call = one run.
 *
 * @module
 */

import { formatKiB, memoryOf } from "./_measure.ts";
import type { BenchContext, RunningServer, ServerSpec } from "./_servers.ts";
import { greeted, WireClient, writeAll } from "./_wire.ts";

/** The outcome of one run of one case against one server. */
export interface RunResult {
  /** Wall-clock seconds of the measured part. */
  seconds: number;
  /** Messages per second, for the throughput cases. */
  messagesPerSecond: number | null;
  /** The case's main metric (compared with smtpd --no-fsync). */
  metric: number;
  /** "10000/10000" — stored versus sent (or sessions held). */
  stored: string;
  notes: string[];
}

/** A benchmark case. */
export interface BenchCase {
  name: string;
  title: string;
  /** What `metric` is, for the legend: "messages/s", "MB/s", "RSS". */
  metricName: string;
  applies(server: ServerSpec): boolean;
  run(context: BenchContext, server: ServerSpec, running: RunningServer): Promise<RunResult>;
}

const KIB = 1024;
const MIB = 1024 * KIB;
/** The 1 GiB case: body bytes after the header block, sent in 1 MiB slices. */
const BIG_BODY_BYTES = 1024 * MIB;
/** Upper bound for one smtp-source invocation (100,000 messages included). */
const SOURCE_TIMEOUT_MS = 600_000;
/** Upper bound for one 1 GiB transfer, including the server's final reply. */
const BIG_TIMEOUT_MS = 300_000;
/** Upper bound for opening and holding the idle sessions. */
const IDLE_TIMEOUT_MS = 120_000;
/** The `idle` case holds this many sessions at once. */
const IDLE_SESSIONS = 1000;
/** Sessions opened at once while building up the idle set (keeps SYN queues sane). */
const IDLE_BATCH = 50;

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Rejects with `what` timed out after `ms`, calling `onTimeout` to unblock the work. */
async function deadline<T>(
  work: Promise<T>,
  ms: number,
  what: string,
  onTimeout: () => void,
): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      onTimeout();
      reject(new Error(`${what} timed out after ${ms / 1000} s`));
    }, ms);
  });
  try {
    return await Promise.race([work, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** Runs Postfix smtp-source (no pipelining; `-d` keeps each session's connection). */
async function smtpSource(
  port: number,
  sessions: number,
  messages: number,
  length: number,
): Promise<number> {
  const args = ["-d", "-s", String(sessions), "-m", String(messages), "-l", String(length)];
  args.push("-M", "client.example", "-f", "bench@example.com", "-t", "sink@example.com");
  args.push(`127.0.0.1:${port}`);
  const started = performance.now();
  const output = await new Deno.Command("/usr/sbin/smtp-source", {
    args,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(SOURCE_TIMEOUT_MS),
  }).output();
  const seconds = (performance.now() - started) / 1000;
  if (!output.success) {
    const text = new TextDecoder().decode(output.stderr).trim().split("\n").slice(-2).join(" / ");
    throw new Error(`smtp-source failed (${output.signal ?? output.code}): ${text}`);
  }
  return seconds;
}

/** Polls `stored()` until it reaches `expected` (smtp-sink's counter lags its reply). */
async function storedCount(running: RunningServer, expected: number): Promise<number> {
  let count = await running.stored();
  for (let i = 0; i < 40 && count < expected; i++) {
    await sleep(50);
    count = await running.stored();
  }
  return count;
}

function verify(stored: number, expected: number): string {
  if (stored !== expected) throw new Error(`stored ${stored} of ${expected} accepted messages`);
  return `${stored}/${expected}`;
}

function throughput(
  name: string,
  title: string,
  sessions: number,
  messages: number,
  length: number,
): BenchCase {
  return {
    name,
    title,
    metricName: "messages/s",
    applies: (server) => server.kind === "smtp" && server.name !== "smtpd-tls",
    async run(_context, _server, running) {
      const seconds = await smtpSource(running.port, sessions, messages, length);
      const stored = verify(await storedCount(running, messages), messages);
      const rate = messages / seconds;
      return { seconds, messagesPerSecond: rate, metric: rate, stored, notes: [] };
    },
  };
}

/** The 1 GiB message: headers, then 64-octet lines (none starts with "."), streamed. */
function bigMessageParts(): { header: Uint8Array; slice: Uint8Array; total: number } {
  const header = new TextEncoder().encode(
    "From: <bench@example.com>\r\nTo: <sink@example.com>\r\nSubject: one GiB\r\n" +
      "Message-ID: <big@bench.example>\r\n\r\n",
  );
  const line = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ\r\n";
  const slice = new TextEncoder().encode(line.repeat(MIB / line.length));
  return { header, slice, total: header.length + BIG_BODY_BYTES };
}

async function sendBig(port: number, raw: boolean): Promise<number> {
  const { header, slice } = bigMessageParts();
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  const client = new WireClient(conn);
  const transfer = async (): Promise<number> => {
    if (!raw) {
      await client.expect(220, "greeting");
      await client.command("EHLO bench.example", 250);
      await client.command("MAIL FROM:<bench@example.com>", 250);
      await client.command("RCPT TO:<sink@example.com>", 250);
      await client.command("DATA", 354);
    }
    const started = performance.now();
    await writeAll(conn, header);
    for (let sent = 0; sent < BIG_BODY_BYTES; sent += slice.length) await writeAll(conn, slice);
    if (raw) {
      // nc semantics: half-close, then the sink closes once the bytes are in the file.
      await conn.closeWrite();
      const sink = new Uint8Array(64);
      while ((await conn.read(sink)) !== null) { /* the sink sends nothing */ }
    } else {
      await writeAll(conn, new TextEncoder().encode(".\r\n"));
      await client.expect(250, "end of data");
    }
    const seconds = (performance.now() - started) / 1000;
    if (!raw) await client.command("QUIT", 221).catch(() => {});
    return seconds;
  };
  try {
    return await deadline(transfer(), BIG_TIMEOUT_MS, "1 GiB transfer", () => client.close());
  } finally {
    client.close();
  }
}

async function bigStoredSize(server: ServerSpec, running: RunningServer): Promise<number> {
  const suffix = server.store === "raw" ? ".bin" : ".eml";
  for await (const entry of Deno.readDir(running.spool)) {
    if (entry.isFile && entry.name.endsWith(suffix)) {
      return (await Deno.stat(`${running.spool}/${entry.name}`)).size;
    }
  }
  return 0;
}

const big: BenchCase = {
  name: "big",
  title: "one 1 GiB message",
  metricName: "MB/s",
  applies: (server) => server.name !== "smtpd-tls",
  async run(_context, server, running) {
    const { total } = bigMessageParts();
    const seconds = await sendBig(running.port, server.kind === "raw");
    let stored: string;
    if (server.store === "counter") {
      stored = verify(await storedCount(running, 1), 1);
    } else {
      const size = await bigStoredSize(server, running);
      if (size !== total) throw new Error(`stored ${size} bytes of ${total}`);
      stored = "1/1";
    }
    const rate = total / 1e6 / seconds;
    return {
      seconds,
      messagesPerSecond: null,
      metric: rate,
      stored,
      notes: [`${rate.toFixed(0)} MB/s`],
    };
  },
};

const idle: BenchCase = {
  name: "idle",
  title: `${IDLE_SESSIONS.toLocaleString("en")} idle sessions held (after EHLO)`,
  metricName: "RSS",
  applies: (server) => server.kind === "smtp" && server.name !== "smtpd-tls",
  async run(_context, _server, running) {
    const before = (await memoryOf(running.pid))?.rssKiB ?? 0;
    const clients: WireClient[] = [];
    const started = performance.now();
    const open = async () => {
      while (clients.length < IDLE_SESSIONS) {
        const batch = Math.min(IDLE_BATCH, IDLE_SESSIONS - clients.length);
        await Promise.all(Array.from({ length: batch }, async () => {
          const client = await greeted(running.port);
          clients.push(client);
          await client.command("EHLO bench.example", 250);
        }));
      }
    };
    try {
      await deadline(open(), IDLE_TIMEOUT_MS, "opening idle sessions", () => {
        for (const client of clients) client.close();
      });
      const seconds = (performance.now() - started) / 1000;
      await sleep(1000);
      const held = (await memoryOf(running.pid))?.rssKiB ?? 0;
      const perSession = (held - before) / IDLE_SESSIONS;
      return {
        seconds,
        messagesPerSecond: null,
        metric: held,
        stored: `${clients.length} held`,
        notes: [
          `RSS ${formatKiB(before)} → ${formatKiB(held)}, ${perSession.toFixed(1)} KiB/session`,
        ],
      };
    } finally {
      for (const client of clients) client.close();
    }
  },
};

const growth: BenchCase = {
  name: "growth",
  title: "RSS after 1,000 and after 100,000 messages (1 KiB, 10 sessions)",
  metricName: "RSS",
  applies: (server) => server.name === "smtpd-nofsync",
  async run(_context, _server, running) {
    await smtpSource(running.port, 10, 1000, KIB);
    await sleep(1000);
    const early = (await memoryOf(running.pid))?.rssKiB ?? 0;
    const seconds = await smtpSource(running.port, 10, 99_000, KIB);
    await sleep(1000);
    const late = (await memoryOf(running.pid))?.rssKiB ?? 0;
    const stored = verify(await storedCount(running, 100_000), 100_000);
    return {
      seconds,
      messagesPerSecond: 99_000 / seconds,
      metric: late,
      stored,
      notes: [`RSS after 1,000: ${formatKiB(early)}; after 100,000: ${formatKiB(late)}`],
    };
  },
};

/** STARTTLS load (bench/tls_load.ts); servers without STARTTLS run it in clear as a baseline. */
const TLS_LOAD = { messages: 5000, sessions: 500, concurrency: 10, size: KIB };

const tls: BenchCase = {
  name: "tls",
  title: `STARTTLS: ${TLS_LOAD.messages} × 1 KiB over ${TLS_LOAD.sessions} sessions, ` +
    `${TLS_LOAD.concurrency} at a time, a new TLS handshake per session`,
  metricName: "messages/s",
  applies: (server) => ["smtpd-tls", "smtpd-nofsync", "smtp-server-nofsync"].includes(server.name),
  async run(context, server, running) {
    const args = ["run", "--allow-net", "--allow-read", "bench/tls_load.ts"];
    args.push("--port", String(running.port), "--messages", String(TLS_LOAD.messages));
    args.push(
      "--sessions",
      String(TLS_LOAD.sessions),
      "--concurrency",
      String(TLS_LOAD.concurrency),
    );
    args.push("--size", String(TLS_LOAD.size));
    if (!server.starttls) args.push("--plain");
    else if (running.caFile) args.push("--ca", running.caFile);
    else args.splice(1, 0, "--unsafely-ignore-certificate-errors=127.0.0.1");
    const output = await new Deno.Command(context.deno, {
      args,
      cwd: context.root,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
      signal: AbortSignal.timeout(SOURCE_TIMEOUT_MS),
    }).output();
    if (!output.success) {
      const text = new TextDecoder().decode(output.stderr).trim().split("\n").slice(-2).join(" / ");
      throw new Error(`tls_load failed: ${text}`);
    }
    const result = JSON.parse(new TextDecoder().decode(output.stdout));
    const stored = verify(await storedCount(running, TLS_LOAD.messages), TLS_LOAD.messages);
    const rate = result.messages / result.seconds;
    const notes = server.starttls
      ? [
        `${result.handshakes} handshakes, ${
          (result.handshakes / result.seconds).toFixed(0)
        } handshakes/s`,
      ]
      : ["plain, no STARTTLS (same client, baseline)"];
    return { seconds: result.seconds, messagesPerSecond: rate, metric: rate, stored, notes };
  },
};

/** Every case, in table order. */
export const CASES: BenchCase[] = [
  throughput("small10", "1 KiB × 10 sessions × 10,000 messages", 10, 10_000, KIB),
  // The same load five times as long: past the JIT warm-up a fresh Deno
  // process pays for its first ~10,000 messages, so closer to steady state.
  throughput("steady10", "1 KiB × 10 sessions × 50,000 messages", 10, 50_000, KIB),
  throughput("single", "1 KiB × 1 session × 2,000 messages", 1, 2000, KIB),
  throughput("large", "100 KiB × 10 sessions × 1,000 messages", 10, 1000, 100 * KIB),
  big,
  idle,
  growth,
  tls,
];
