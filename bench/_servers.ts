/**
 * The servers under test: how each starts on its own 127.0.0.1 port, how
 * the harness knows it is ready, how it counts what the server stored, and
 * how it stops. Every run gets a fresh process and an empty spool, so the
 * peak RSS (VmHWM) belongs to that run alone.
 *
 * @module
 */

import { countFiles } from "./_measure.ts";
import { greeted } from "./_wire.ts";
import { runtimeFlags } from "../tests/helpers/launcher.ts";

/** Where the harness runs: paths shared by all servers. */
export interface BenchContext {
  /** Repository root (where deno.json and main.ts are). */
  root: string;
  /** Scratch directory, git-ignored (`bench/out`). */
  out: string;
  /** Where each run's spool directory is made (`BENCH_SPOOL_DIR`, default `out`). */
  spools: string;
  /** The Deno executable. */
  deno: string;
  /** PEM certificate and key for peers that need one for STARTTLS; null without openssl. */
  tls: { cert: string; key: string } | null;
}

/** How a server's storage is verified. */
export type StoreKind = "json" | "eml" | "counter" | "raw";

/** A server the harness can start. */
export interface ServerSpec {
  name: string;
  /** One line for the README table and `--help`. */
  description: string;
  /** `smtp`: speaks SMTP; `raw`: the `nc -l > file` limit for the 1 GiB case. */
  kind: "smtp" | "raw";
  /** Offers STARTTLS that `tls_load.ts` can complete. */
  starttls: boolean;
  store: StoreKind;
  start(context: BenchContext, spool: string): Promise<RunningServer>;
}

/** A started server. */
export interface RunningServer {
  pid: number;
  port: number;
  spool: string;
  /** Messages the server stored (files, or smtp-sink's own counter). */
  stored(): Promise<number>;
  /** Trust anchor for STARTTLS clients, when the server publishes one. */
  caFile: string | null;
  /** The last lines the server printed, and how it exited if it did (for failure reasons). */
  outputTail(): string;
  stop(): Promise<void>;
}

/** How long a server may take to come up. */
const START_TIMEOUT_MS = 30_000;
/** How long a server may take to exit after SIGTERM before it is killed. */
const STOP_TIMEOUT_MS = 5_000;
/** Bytes of server output kept for error messages and smtp-sink's counter. */
const TAIL_BYTES = 4096;
/** smtpd and smtp-sink must admit the 1,000 idle sessions of the `idle` case. */
const MAX_CONNECTIONS = 1200;

const live = new Map<number, Deno.ChildProcess>();

/** Pids of servers still running, written for bench/run.sh's exit trap. */
async function recordPids(out: string): Promise<void> {
  await Deno.writeTextFile(`${out}/pids`, [...live.keys()].map((pid) => `${pid}\n`).join(""));
}

/** Stops every server still running (on errors and signals) and waits for them. */
export async function stopAll(): Promise<void> {
  const children = [...live.values()];
  for (const child of children) {
    try {
      child.kill("SIGKILL");
    } catch {
      // Already exited.
    }
  }
  await Promise.all(children.map((child) => child.status));
  live.clear();
}

/** A free port on 127.0.0.1 for servers that cannot bind port 0 and report it. */
export function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  return port;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Keeps the last TAIL_BYTES of a stream without ever holding more. */
function drain(stream: ReadableStream<Uint8Array>): { text(): string; done: Promise<void> } {
  let tail = "";
  const decoder = new TextDecoder();
  const done = (async () => {
    for await (const chunk of stream) {
      tail = (tail + decoder.decode(chunk, { stream: true })).slice(-TAIL_BYTES);
    }
  })().catch(() => {});
  return { text: () => tail, done };
}

/** Waits until `port` accepts a connection (and greets, for SMTP servers). */
async function waitForPort(port: number, greeting: boolean, exited: () => boolean): Promise<void> {
  const deadline = Date.now() + START_TIMEOUT_MS;
  let last = "";
  while (Date.now() < deadline && !exited()) {
    try {
      if (greeting) {
        const client = await greeted(port);
        await client.command("QUIT", 221).catch(() => {});
        client.close();
      } else {
        (await Deno.connect({ hostname: "127.0.0.1", port })).close();
      }
      return;
    } catch (e: unknown) {
      last = e instanceof Error ? e.message : String(e);
      await sleep(100);
    }
  }
  throw new Error(exited() ? "exited during start-up" : `no answer on port ${port}: ${last}`);
}

interface LaunchOptions {
  context: BenchContext;
  argv: string[];
  spool: string;
  cwd?: string;
  /** Reads the port once the server is up (ready file); else `port` is probed. */
  port: number | ((exited: () => boolean) => Promise<number>);
  greeting: boolean;
  stored: (output: () => string) => Promise<number>;
  caFile?: () => Promise<string | null>;
}

async function launch(options: LaunchOptions): Promise<RunningServer> {
  const [program, ...args] = options.argv;
  await Deno.mkdir(options.spool, { recursive: true });
  const child = new Deno.Command(program!, {
    args,
    cwd: options.cwd ?? options.context.root,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  live.set(child.pid, child);
  await recordPids(options.context.out);
  const stdout = drain(child.stdout);
  const stderr = drain(child.stderr);
  let exited = false;
  let exitedHow = "";
  const status = child.status.then((s) => {
    exited = true;
    exitedHow = s.signal ? `killed by ${s.signal}` : `exit code ${s.code}`;
    return s;
  });
  const outputTail = () => {
    const lines = `${stdout.text()}${stderr.text()}`.trim().split("\n").slice(-5);
    if (exited) lines.push(`server exited: ${exitedHow}`);
    return lines.filter(Boolean).join(" / ");
  };
  async function stop(): Promise<void> {
    if (!exited) {
      child.kill("SIGTERM");
      const timer = setTimeout(() => !exited && child.kill("SIGKILL"), STOP_TIMEOUT_MS);
      await status;
      clearTimeout(timer);
    }
    await Promise.all([stdout.done, stderr.done]);
    live.delete(child.pid);
    await recordPids(options.context.out);
  }
  try {
    const port = typeof options.port === "number" ? options.port : await options.port(() => exited);
    await waitForPort(port, options.greeting, () => exited);
    const caFile = options.caFile ? await options.caFile() : null;
    return {
      pid: child.pid,
      port,
      spool: options.spool,
      caFile,
      stored: () => options.stored(() => stdout.text()),
      outputTail,
      stop,
    };
  } catch (e: unknown) {
    await stop();
    const reason = e instanceof Error ? e.message : String(e);
    const output = outputTail();
    throw new Error(output ? `${reason}: ${output}` : reason);
  }
}

/** The runtime flags pinned in deno.json `tasks.run` (permissions, V8 flags, unstable APIs: same as the binary). */
export async function runFlags(root: string): Promise<string[]> {
  const config = JSON.parse(await Deno.readTextFile(`${root}/deno.json`));
  const task: string = config?.tasks?.run ?? "";
  return runtimeFlags(task);
}

function smtpd(name: string, flags: string[], description: string): ServerSpec {
  return {
    name,
    description,
    kind: "smtp",
    starttls: flags.includes("--tls-self-signed"),
    store: "json",
    async start(context, spool) {
      const ready = `${spool}.ready`;
      await Deno.remove(ready).catch(() => {});
      try {
        await Deno.stat(`${context.root}/main.ts`);
      } catch {
        throw new Error("main.ts is missing");
      }
      const argv = [
        context.deno,
        "run",
        ...(await runFlags(context.root)),
        "main.ts",
        "--listen",
        "127.0.0.1:0",
        "--ready-file",
        ready,
        "--spool",
        spool,
        "--log-level",
        "warn",
        "--max-connections",
        String(MAX_CONNECTIONS),
        "--max-size",
        "2GiB",
        ...flags,
      ];
      return await launch({
        context,
        argv,
        spool,
        greeting: true,
        port: async (exited) => {
          const deadline = Date.now() + START_TIMEOUT_MS;
          while (Date.now() < deadline && !exited()) {
            try {
              const info = JSON.parse(await Deno.readTextFile(ready));
              const port = info?.listeners?.[0]?.port;
              if (typeof port === "number") return port;
            } catch {
              // Not written yet (it is written atomically, so never half).
            }
            await sleep(50);
          }
          throw new Error(exited() ? "exited during start-up" : "no ready file within 30 s");
        },
        stored: () => countFiles(spool, ".json"),
        caFile: async () => {
          const cert = `${spool}/.tls/cert.pem`;
          return await Deno.stat(cert).then(() => cert, () => null);
        },
      });
    },
  };
}

function writerPeer(name: string, runtime: "python" | "node", fsync: boolean): ServerSpec {
  const script = runtime === "python" ? "aiosmtpd_writer.py" : "smtp_server_writer.mjs";
  return {
    name,
    description: runtime === "python"
      ? `Debian aiosmtpd + bench/peers/aiosmtpd_writer.py${fsync ? " (durable)" : " --no-fsync"}`
      : `nodemailer smtp-server + bench/peers/smtp_server_writer.mjs${
        fsync ? " (durable)" : " --no-fsync"
      }`,
    kind: "smtp",
    starttls: runtime === "node",
    store: "json",
    async start(context, spool) {
      const port = freePort();
      const argv = runtime === "python"
        ? ["/usr/bin/python3", `${context.root}/bench/peers/${script}`]
        : ["node", `${context.root}/bench/peers/${script}`];
      argv.push("--port", String(port), "--spool", spool);
      if (!fsync) argv.push("--no-fsync");
      if (runtime === "node" && context.tls) {
        argv.push("--tls-cert", context.tls.cert, "--tls-key", context.tls.key);
      }
      return await launch({
        context,
        argv,
        spool,
        port,
        greeting: true,
        stored: () => countFiles(spool, ".json"),
        caFile: () => Promise.resolve(context.tls?.cert ?? null),
      });
    },
  };
}

/**
 * The `nc -l > file` limit for the 1 GiB case; `raw-fsync` also fsyncs the
 * file and its directory before closing: the durable limit of the disk,
 * which an fsync-mode server cannot beat.
 */
function rawSink(fsync: boolean): ServerSpec {
  return {
    name: fsync ? "raw-fsync" : "raw",
    description: fsync
      ? "`raw` plus fsync of the file and its directory before the close: the durable limit, 1 GiB case only"
      : "`nc -l > file` equivalent (bench/peers/raw_sink.py): the raw limit, 1 GiB case only",
    kind: "raw",
    starttls: false,
    store: "raw",
    async start(context, spool) {
      const port = freePort();
      const argv = ["/usr/bin/python3", `${context.root}/bench/peers/raw_sink.py`];
      argv.push("--port", String(port), "--out", `${spool}/raw.bin`);
      if (fsync) argv.push("--fsync");
      return await launch({
        context,
        argv,
        spool,
        port,
        greeting: false,
        stored: () => countFiles(spool, ".bin"),
      });
    },
  };
}

/** Every server the harness knows, in table order. */
export const SERVERS: ServerSpec[] = [
  smtpd("smtpd", [], "smtpd (fsync on, the default)"),
  smtpd("smtpd-nofsync", ["--no-fsync"], "smtpd --no-fsync (the ratio baseline)"),
  smtpd("smtpd-tls", ["--tls-self-signed", "--no-fsync"], "smtpd --tls-self-signed --no-fsync"),
  {
    name: "sink",
    description: "Postfix smtp-sink: stores nothing, the ceiling",
    kind: "smtp",
    starttls: false,
    store: "counter",
    async start(context, spool) {
      const port = freePort();
      // smtp-sink refuses to run as root without -u (it drops privileges).
      const user = Deno.uid() === 0 ? ["-u", "nobody"] : [];
      const argv = ["/usr/sbin/smtp-sink", "-c", ...user, "-m", String(MAX_CONNECTIONS)];
      argv.push(`127.0.0.1:${port}`, "1024");
      return await launch({
        context,
        argv,
        spool,
        port,
        greeting: true,
        // `-c` prints "sess=N quit=N mesg=N" after each "." (and session end).
        stored: (output) => {
          const counts = [...output().matchAll(/mesg=(\d+)/g)];
          return Promise.resolve(Number(counts.at(-1)?.[1] ?? 0));
        },
      });
    },
  },
  writerPeer("aiosmtpd", "python", true),
  writerPeer("aiosmtpd-nofsync", "python", false),
  writerPeer("smtp-server", "node", true),
  writerPeer("smtp-server-nofsync", "node", false),
  {
    name: "maildev",
    description: "maildev 3 --mail-directory (no fsync; also parses and keeps mail in memory)",
    kind: "smtp",
    starttls: false,
    store: "eml",
    async start(context, spool) {
      const port = freePort();
      const bin = `${context.root}/bench/peers/node_modules/maildev/dist/bin/maildev.js`;
      const argv = ["node", bin, "-s", String(port), "--ip", "127.0.0.1", "--disable-web"];
      argv.push("--mail-directory", spool, "--max-message-size", "0", "--silent");
      return await launch({
        context,
        argv,
        spool,
        port,
        greeting: true,
        stored: () => countFiles(spool, ".eml"),
      });
    },
  },
  rawSink(false),
  rawSink(true),
];
