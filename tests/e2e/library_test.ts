/**
 * `lib/mod.ts` as a library user sees it (SPEC §6): programs in fixtures/
 * call `serve(options)` with callbacks and run under `deno run` with the
 * product's runtime flags. Rejecting and throwing callbacks, `onAuth`
 * against a map, `onMessage(meta, emlPath)`, then `close()` and `finished`.
 * The README's example (fixtures/known_recipients.ts) is driven by python3
 * smtplib.
 */

import assert from "node:assert/strict";
import { assertStored, poll, readSpool, runFlags } from "../helpers/launcher.ts";
import { queuedId, RawClient, stuff, transaction } from "../helpers/raw_client.ts";
import { python, toolTest } from "../helpers/clients.ts";

const enc = new TextEncoder();

/** A fixture program running under `deno run` with deno.json's permissions. */
class Program implements AsyncDisposable {
  readonly dir: string;
  readonly spool: string;
  readonly events: string;
  #child: Deno.ChildProcess;
  #stdout: ReadableStreamDefaultReader<string>;
  #buffered = "";
  #stderr: Promise<string>;
  #exited = false;

  private constructor(dir: string, child: Deno.ChildProcess) {
    this.dir = dir;
    this.spool = `${dir}/spool`;
    this.events = `${dir}/events.jsonl`;
    this.#child = child;
    this.#stdout = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
    this.#stderr = new Response(child.stderr).text();
    void child.status.then(() => (this.#exited = true));
  }

  static async start(fixture: string, env: Record<string, string> = {}): Promise<Program> {
    const dir = await Deno.makeTempDir({ prefix: "smtpd-lib-" });
    const child = new Deno.Command(Deno.execPath(), {
      env,
      args: [
        "run",
        ...runFlags(),
        new URL(`./fixtures/${fixture}`, import.meta.url).pathname,
        `${dir}/spool`,
        `${dir}/events.jsonl`,
      ],
      cwd: dir,
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    return new Program(dir, child);
  }

  /** The next stdout line, within `timeoutMs`. */
  async line(timeoutMs = 30_000): Promise<string> {
    const deadline = Date.now() + timeoutMs;
    while (!this.#buffered.includes("\n")) {
      let timer: ReturnType<typeof setTimeout> | undefined;
      const timeout = new Promise<null>((
        r,
      ) => (timer = setTimeout(r, deadline - Date.now(), null)));
      const next = await Promise.race([this.#stdout.read(), timeout]);
      clearTimeout(timer);
      if (next === null) {
        throw new Error(`no stdout line within ${timeoutMs} ms; stderr: ${await this.stderrNow()}`);
      }
      if (next.done) {
        throw new Error(`program ended its stdout; stderr: ${await this.stderrNow()}`);
      }
      this.#buffered += next.value;
    }
    const end = this.#buffered.indexOf("\n");
    const line = this.#buffered.slice(0, end);
    this.#buffered = this.#buffered.slice(end + 1);
    return line;
  }

  async stderrNow(): Promise<string> {
    if (!this.#exited) return "(still running)";
    return await this.#stderr;
  }

  /** Everything the callbacks recorded so far. */
  async recorded(): Promise<Record<string, unknown>[]> {
    const text = await Deno.readTextFile(this.events).catch(() => "");
    return text.split("\n").filter((l) => l !== "").map((l) => JSON.parse(l));
  }

  async writeStdin(text: string): Promise<void> {
    const w = this.#child.stdin.getWriter();
    await w.write(enc.encode(text));
    w.releaseLock();
  }

  /** Exit status within `timeoutMs`, or a throw. */
  async status(timeoutMs = 20_000): Promise<Deno.CommandStatus> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<null>((r) => (timer = setTimeout(r, timeoutMs, null)));
    const s = await Promise.race([this.#child.status, timeout]);
    clearTimeout(timer);
    if (!s) throw new Error(`program still running after ${timeoutMs} ms`);
    return s;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    if (!this.#exited) {
      try {
        this.#child.kill("SIGKILL");
      } catch {
        // exited meanwhile
      }
    }
    await this.#child.status;
    await this.#child.stdin.close().catch(() => {});
    await this.#stdout.cancel().catch(() => {});
    await this.#stderr.catch(() => "");
    await Deno.remove(this.dir, { recursive: true }).catch(() => {});
  }
}

async function greetedClient(port: number): Promise<RawClient> {
  const c = await RawClient.connect(port);
  const greeting = await c.readReply();
  assert.match(greeting.raw, /^220 lib\.test /);
  assert.equal((await c.command("EHLO client.example")).code, 250);
  return c;
}

Deno.test("e2e library: an onConnect refusal greets with 421 (and closes) or 554 (and waits for QUIT)", async () => {
  await using prog = await Program.start("lib_server.ts");
  const port: number = JSON.parse(await prog.line()).addresses[0].port;
  const refuse = (code: number, enhanced: string) =>
    Deno.writeTextFile(
      `${prog.events}.connect`,
      JSON.stringify({ code, enhanced, text: "Not now" }),
    );
  // RFC 5321 §3.1/§3.8: a refusing greeting is 554 or 421; other codes keep their class.
  for (
    const [code, enhanced, greeting] of [[450, "4.7.1", "421 4.7.1"], [421, "4.3.2", "421 4.3.2"]]
  ) {
    await refuse(code as number, enhanced as string);
    await using c = await RawClient.connect(port);
    assert.equal((await c.readReply()).raw, `${greeting} Not now\r\n`);
    await c.expectClosed();
  }
  for (
    const [code, enhanced, greeting] of [[550, "5.7.1", "554 5.7.1"], [554, "5.7.0", "554 5.7.0"]]
  ) {
    await refuse(code as number, enhanced as string);
    await using c = await RawClient.connect(port);
    assert.equal((await c.readReply()).raw, `${greeting} Not now\r\n`);
    assert.match((await c.command("MAIL FROM:<a@example.com>")).raw, /^503 /);
    assert.match((await c.command("QUIT")).raw, /^221 /);
  }
  await Deno.remove(`${prog.events}.connect`);
  await using c = await greetedClient(port);
  assert.match((await c.command("QUIT")).raw, /^221 /);
});

Deno.test("e2e library: an onConnect that never settles holds its slot only until --timeout", async () => {
  await using prog = await Program.start("lib_server.ts", { LIB_SERVER_TIMEOUT: "1s" });
  const port: number = JSON.parse(await prog.line()).addresses[0].port;
  await Deno.writeTextFile(`${prog.events}.connect`, JSON.stringify("hang"));
  {
    await using c = await RawClient.connect(port);
    const started = Date.now();
    assert.match((await c.readReply(10_000)).raw, /^421 4\.4\.2 /);
    assert.ok(Date.now() - started >= 900, "not before the timeout");
    await c.expectClosed();
  }
  await Deno.remove(`${prog.events}.connect`);
  await using c = await greetedClient(port);
  assert.match((await c.command("QUIT")).raw, /^221 /);
});

Deno.test("e2e library: callbacks reject, throw (451 4.3.0) and record; close() then finished", async () => {
  await using prog = await Program.start("lib_server.ts");
  const ready = JSON.parse(await prog.line());
  assert.equal(ready.addresses.length, 1);
  assert.equal(ready.addresses[0].address, "127.0.0.1");
  assert.equal(ready.addresses[0].tls, false);
  const port: number = ready.addresses[0].port;
  const message = "Subject: hello library\r\nFrom: app@example.com\r\n\r\n.dot\r\nbody\r\n";

  await using c = await greetedClient(port);
  // onAuth against the map: wrong password, then right.
  const b64 = (s: string) => btoa(s);
  assert.match((await c.command(`AUTH PLAIN ${b64("\0app\0nope")}`)).raw, /^535 5\.7\.8/);
  assert.match((await c.command(`AUTH PLAIN ${b64("\0forgetful\0x")}`)).raw, /^535 5\.7\.8/);
  assert.match((await c.command(`AUTH PLAIN ${b64("\0app\0s3cret")}`)).raw, /^235 2\.7\.0/);
  // onMailFrom throws → 451 4.3.0, and the session goes on.
  assert.match((await c.command("MAIL FROM:<boom@example.com>")).raw, /^451 4\.3\.0/);
  assert.match((await c.command("MAIL FROM:<app@example.com> BODY=8BITMIME")).raw, /^250 2\.1\.0/);
  // onRcptTo returns { code: 550, enhanced: "5.1.1", text }: exactly that on the wire.
  assert.equal(
    (await c.command("RCPT TO:<nobody@example.com>")).raw,
    "550 5.1.1 No mailbox here by that name: nobody@example.com\r\n",
  );
  assert.match((await c.command("RCPT TO:<crash@example.com>")).raw, /^451 4\.3\.0/);
  assert.match((await c.command("RCPT TO:<bob@example.com> NOTIFY=NEVER")).raw, /^250 2\.1\.5/);
  assert.equal((await c.command("DATA")).code, 354);
  await c.send(stuff(message));
  const id = queuedId(await c.readReply());

  // onMessage throws → 451 4.3.0 and the message is not kept.
  const thrown = await transaction(
    c,
    "app@example.com",
    ["bob@example.com"],
    stuff("Subject: throw\r\n\r\nx\r\n"),
  );
  assert.match(thrown.raw, /^451 4\.3\.0/);
  // …and the server keeps serving, on this connection and on a new one.
  const id2 = queuedId(
    await transaction(c, "app@example.com", ["carol@example.com"], stuff(message)),
  );
  {
    await using c2 = await greetedClient(port);
    assert.match((await c2.command("NOOP")).raw, /^250 2\.0\.0/);
  }

  const stored = await readSpool(prog.spool);
  assert.deepEqual(stored.map((m) => m.id), [id, id2], "the message whose onMessage threw is gone");
  await assertStored(stored[0]!, message);
  await assertStored(stored[1]!, message);
  const meta = stored[0]!.meta;
  assert.equal(meta.mailFrom, "app@example.com");
  assert.deepEqual(meta.rcptTo, ["bob@example.com"], "refused recipients are not recorded");
  assert.deepEqual(meta.rcptParams, [{ NOTIFY: "NEVER" }]);
  assert.deepEqual(meta.mailParams, { BODY: "8BITMIME" });
  assert.deepEqual(meta.auth, { mechanism: "PLAIN", username: "app" });
  assert.equal(meta.protocol, "ESMTPA");
  assert.equal(meta.headers.subject, "hello library");

  const events = await poll("three onMessage calls", 10_000, async () => {
    const all = await prog.recorded();
    return all.filter((e) => e.event === "message").length >= 3 ? all : undefined;
  });
  const messages = events.filter((e) => e.event === "message");
  assert.equal(messages.length, 3);
  // onMessage(meta, emlPath): the meta is the stored .json, the path the absolute .eml path.
  assert.deepEqual(messages[0]!.meta, meta);
  assert.equal(messages[0]!.emlPath, `${await Deno.realPath(prog.spool)}/${id}.eml`);
  assert.equal(messages[0]!.emlSize, enc.encode(message).length);
  assert.deepEqual(messages[2]!.meta, stored[1]!.meta);
  assert.deepEqual(messages.map((m) => m.jsonVisible), [false, false, false]);
  const auths = events.filter((e) => e.event === "auth");
  assert.deepEqual(auths, [
    { event: "auth", user: "app", mechanism: "PLAIN" },
    { event: "auth", user: "forgetful", mechanism: "PLAIN" },
    { event: "auth", user: "app", mechanism: "PLAIN" },
  ]);
  assert.ok(!JSON.stringify(events).includes("s3cret"));
  const rcpts = events.filter((e) => e.event === "rcpt").map((e) => e.address);
  assert.deepEqual(rcpts.slice(0, 3), [
    "nobody@example.com",
    "crash@example.com",
    "bob@example.com",
  ]);
  assert.deepEqual(
    events.find((e) => e.event === "rcpt" && e.address === "bob@example.com")?.params,
    {
      NOTIFY: "NEVER",
    },
  );
  assert.equal(events.filter((e) => e.event === "connect").length, 2);

  // close(): the idle session gets 421 4.3.2, `finished` resolves, the program ends 0.
  await prog.writeStdin("close\n");
  assert.match((await c.readReply()).raw, /^421 4\.3\.2/);
  await c.expectClosed();
  assert.equal(await prog.line(), "finished");
  assert.equal((await prog.status()).code, 0);
  await assert.rejects(RawClient.connect(port), "the listener is closed");
});

const KNOWN_RECIPIENTS_PY = `
import smtplib, sys, json
port = int(sys.argv[1])
out = {}
msg = b"From: app@example.com\\r\\nSubject: known only\\r\\n\\r\\nhello\\r\\n"
with smtplib.SMTP("127.0.0.1", port, local_hostname="py.example", timeout=30) as s:
    try:
        s.login("app", "wrong")
    except smtplib.SMTPAuthenticationError as e:
        out["bad_login"] = [e.smtp_code, e.smtp_error.decode()]
    s.login("app", "s3cret")
    refused = s.sendmail("app@example.com", ["bob@example.com", "eve@example.com", "Carol@example.com"], msg)
    out["refused"] = {k: [v[0], v[1].decode()] for k, v in refused.items()}
    try:
        s.sendmail("app@example.com", ["eve@example.com"], msg)
    except smtplib.SMTPRecipientsRefused as e:
        out["all_refused"] = {k: [v[0], v[1].decode()] for k, v in e.recipients.items()}
print(json.dumps(out))
`;

toolTest("e2e library: the README program (known recipients, AUTH map) with python3 smtplib", [
  "python3",
], async () => {
  await using prog = await Program.start("known_recipients.ts");
  const { port } = JSON.parse(await prog.line());
  const r = await python(KNOWN_RECIPIENTS_PY, [String(port)]);
  assert.equal(r.code, 0, r.stderr);
  const out = JSON.parse(r.stdout);
  assert.deepEqual(out.bad_login, [535, "5.7.8 Authentication credentials invalid"]);
  assert.deepEqual(out.refused, { "eve@example.com": [550, "5.1.1 No such user"] });
  assert.deepEqual(out.all_refused, { "eve@example.com": [550, "5.1.1 No such user"] });
  const stored = await readSpool(prog.spool);
  assert.equal(stored.length, 1);
  await assertStored(stored[0]!, "From: app@example.com\r\nSubject: known only\r\n\r\nhello\r\n");
  const meta = stored[0]!.meta;
  assert.deepEqual(meta.rcptTo, ["bob@example.com", "Carol@example.com"]);
  assert.equal(meta.helo, "py.example");
  assert.equal(meta.auth.username, "app");
  assert.equal(meta.protocol, "ESMTPA");
});
