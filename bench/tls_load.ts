/**
 * STARTTLS load, which `smtp-source` cannot generate: N messages over S
 * sessions, C at a time, each session a new TCP connection with a new TLS
 * handshake (no session resumption), then as many messages as fall to it.
 *
 * ```sh
 * deno run --allow-net --allow-read bench/tls_load.ts --port 2525 --messages 5000 \
 *   --sessions 500 --concurrency 10 --size 1024 --ca SPOOL/.tls/cert.pem
 * ```
 *
 * Prints one JSON line: `{"messages":…,"sessions":…,"handshakes":…,"seconds":…}`.
 * Without `--ca` the certificate is not verified (run Deno with
 * `--unsafely-ignore-certificate-errors=127.0.0.1`). With `--plain` the same
 * load runs without STARTTLS, as a baseline. Exits 1 on the first failure.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { greeted, smallMessage } from "./_wire.ts";

/** What one load run did. */
export interface TlsLoadResult {
  messages: number;
  sessions: number;
  handshakes: number;
  seconds: number;
}

/** Parameters of one load run. */
export interface TlsLoadOptions {
  port: number;
  messages: number;
  sessions: number;
  concurrency: number;
  size: number;
  /** PEM trust anchors; empty means whatever the Deno flags allow. */
  caCerts: string[];
  /** Skip STARTTLS: the same load in clear text, the baseline. */
  plain: boolean;
}

/** Upper bound on any count given on the command line (every loop is bounded). */
const MAX_COUNT = 10_000_000;

/** Runs one session: connect, EHLO, STARTTLS, EHLO, `count` messages, QUIT. */
async function session(options: TlsLoadOptions, count: number, first: number): Promise<boolean> {
  const client = await greeted(options.port);
  try {
    const ehlo = await client.command("EHLO bench.example", 250);
    let tls = false;
    if (!options.plain) {
      if (!ehlo.lines.some((line) => /^250[- ]STARTTLS\b/i.test(line))) {
        throw new Error("The server does not offer STARTTLS");
      }
      await client.command("STARTTLS", 220);
      await client.upgrade("127.0.0.1", options.caCerts);
      await client.command("EHLO bench.example", 250);
      tls = true;
    }
    for (let i = 0; i < count; i++) {
      await client.command("MAIL FROM:<bench@example.com>", 250);
      await client.command("RCPT TO:<sink@example.com>", 250);
      await client.command("DATA", 354);
      await client.send(smallMessage(options.size, first + i));
      await client.expect(250, "end of data");
    }
    await client.command("QUIT", 221);
    return tls;
  } finally {
    client.close();
  }
}

/** Runs the whole load; rejects on the first failed session. */
export async function tlsLoad(options: TlsLoadOptions): Promise<TlsLoadResult> {
  const perSession = Math.floor(options.messages / options.sessions);
  const extra = options.messages % options.sessions;
  let nextSession = 0;
  let nextMessage = 0;
  let handshakes = 0;
  async function worker(): Promise<void> {
    while (nextSession < options.sessions) {
      const index = nextSession++;
      const count = perSession + (index < extra ? 1 : 0);
      const first = nextMessage;
      nextMessage += count;
      if (await session(options, count, first)) handshakes++;
    }
  }
  const started = performance.now();
  const workers = Array.from({ length: Math.min(options.concurrency, options.sessions) }, worker);
  await Promise.all(workers);
  const seconds = (performance.now() - started) / 1000;
  return { messages: options.messages, sessions: options.sessions, handshakes, seconds };
}

function count(flag: string, text: string | undefined, fallback: number, max = MAX_COUNT): number {
  if (text === undefined && fallback === 0) throw new SyntaxError(`Missing --${flag}`);
  const value = text === undefined ? fallback : Number(text);
  if (!Number.isInteger(value) || value < 1 || value > max) {
    throw new RangeError(`Cannot use --${flag} "${text}": expected an integer from 1 to ${max}`);
  }
  return value;
}

async function main(): Promise<number> {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      port: { type: "string" },
      messages: { type: "string" },
      sessions: { type: "string" },
      concurrency: { type: "string" },
      size: { type: "string" },
      ca: { type: "string" },
      plain: { type: "boolean", default: false },
    },
  });
  const options: TlsLoadOptions = {
    port: count("port", values.port, 0, 65535),
    messages: count("messages", values.messages, 5000),
    sessions: count("sessions", values.sessions, 500),
    concurrency: count("concurrency", values.concurrency, 10),
    size: count("size", values.size, 1024),
    caCerts: values.ca === undefined ? [] : [await Deno.readTextFile(values.ca)],
    plain: values.plain,
  };
  if (options.sessions > options.messages) {
    throw new RangeError(
      `Cannot spread ${options.messages} messages over ${options.sessions} sessions`,
    );
  }
  const result = await tlsLoad(options);
  await Deno.stdout.write(new TextEncoder().encode(`${JSON.stringify(result)}\n`));
  return 0;
}

if (import.meta.main) {
  try {
    Deno.exitCode = await main();
  } catch (e: unknown) {
    const message = e instanceof Error ? e.message : String(e);
    await Deno.stderr.write(new TextEncoder().encode(`tls_load: ${message}\n`));
    Deno.exitCode = 1;
  }
}
