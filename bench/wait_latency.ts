/**
 * Issue 5 figure: latency from the 250 reply to `smtpd wait` returning, over
 * 200 messages, each `wait` started (and watching) before its message is sent.
 * Run: `deno run -A bench/wait_latency.ts` (prints one JSON line).
 */

import { runFlags } from "./_servers.ts";

const repo = new URL("..", import.meta.url).pathname.replace(/\/$/, "");
/** The product's runtime flags, as deno.json `tasks.run` pins them (permissions, V8 flags). */
const perms = await runFlags(repo);
const sp = await Deno.makeTempDir({ prefix: "waitlat-" });
const ready = `${sp}.ready`;
const server = new Deno.Command(Deno.execPath(), {
  args: [
    "run",
    ...perms,
    `${repo}/main.ts`,
    "--listen",
    "127.0.0.1:0",
    "--ready-file",
    ready,
    "--spool",
    sp,
    "--log-level",
    "warn",
  ],
  stdout: "null",
  stderr: "null",
}).spawn();
let port = 0;
while (!port) {
  try {
    port = JSON.parse(await Deno.readTextFile(ready)).listeners[0].port;
  } catch {
    await new Promise((r) => setTimeout(r, 50));
  }
}
const enc = new TextEncoder(), dec = new TextDecoder();
async function send(i: number): Promise<number> {
  const c = await Deno.connect({ hostname: "127.0.0.1", port });
  const buf = new Uint8Array(4096);
  const read = async () => {
    let s = "";
    while (!/^\d{3} [^\r\n]*\r\n$/m.test(s.split("\r\n").slice(-2).join("\r\n"))) {
      const n = await c.read(buf);
      if (n === null) break;
      s += dec.decode(buf.subarray(0, n));
    }
    return s;
  };
  await read();
  await c.write(enc.encode(`EHLO x\r\nMAIL FROM:<a@b.c>\r\nRCPT TO:<w${i}@e.f>\r\nDATA\r\n`));
  let s = "";
  while ((s.match(/\r\n/g) ?? []).length < 14) {
    const n = await c.read(buf);
    s += dec.decode(buf.subarray(0, n!));
    if (s.includes("354 ")) break;
  }
  await c.write(enc.encode(`Subject: ${i}\r\n\r\nx\r\n.\r\n`));
  await read();
  const t = performance.now();
  c.close();
  return t;
}
const lat: number[] = [];
for (let i = 0; i < 200; i++) {
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      ...perms,
      `${repo}/main.ts`,
      "wait",
      "--spool",
      sp,
      "--to",
      `w${i}@`,
      "--timeout",
      "20s",
    ],
    stdout: "null",
    stderr: "null",
  }).spawn();
  // wait until the child watches the spool (an inotify fd), so the message really arrives after it started
  for (let k = 0; k < 400; k++) {
    let watching = false;
    try {
      for (const e of Deno.readDirSync(`/proc/${child.pid}/fd`)) {
        if (Deno.readLinkSync(`/proc/${child.pid}/fd/${e.name}`).includes("inotify")) {
          watching = true;
        }
      }
    } catch { /* */ }
    if (watching) break;
    await new Promise((r) => setTimeout(r, 5));
  }
  const t250 = await send(i);
  await child.status;
  lat.push(performance.now() - t250);
}
server.kill("SIGTERM");
await server.status;
lat.sort((a, b) => a - b);
const q = (p: number) => lat[Math.min(lat.length - 1, Math.floor(p * lat.length))]!.toFixed(1);
Deno.stdout.writeSync(enc.encode(
  JSON.stringify({
    n: lat.length,
    medianMs: q(0.5),
    p90Ms: q(0.9),
    p99Ms: q(0.99),
    maxMs: lat[lat.length - 1]!.toFixed(1),
  }) + "\n",
));
await Deno.remove(sp, { recursive: true });
