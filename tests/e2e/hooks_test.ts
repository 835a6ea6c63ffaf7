/**
 * `--on-message CMD` (SPEC §6): the hook's environment (SMTPD_ID, SMTPD_EML
 * and SMTPD_META as absolute paths, SMTPD_FROM empty for `<>`, SMTPD_RCPT a
 * comma list), that it runs after the message is complete, and that a
 * failing hook is logged and never fatal.
 */

import assert from "node:assert/strict";
import { assertStored, poll, readSpool, startServer } from "../helpers/launcher.ts";
import { queuedId, stuff, transaction } from "../helpers/raw_client.ts";

/** `KEY=VALUE` lines (as `env` prints them) into a map. */
function parseEnv(text: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const line of text.split("\n")) {
    const eq = line.indexOf("=");
    if (eq > 0) out.set(line.slice(0, eq), line.slice(eq + 1));
  }
  return out;
}

Deno.test("e2e hooks: --on-message sees SMTPD_ID/EML/META/FROM/RCPT, paths absolute", async () => {
  const out = await Deno.makeTempDir({ prefix: "smtpd-hook-out-" });
  try {
    // A relative --spool: the hook must still get absolute paths.
    await using server = await startServer([
      "--spool",
      "rel-spool",
      "--on-message",
      'env | grep ^SMTPD_ | sort > "$OUT/$SMTPD_ID.env.tmp"; ' +
      'cat "$SMTPD_META" > "$OUT/$SMTPD_ID.meta"; cat "$SMTPD_EML" > "$OUT/$SMTPD_ID.eml"; ' +
      'mv "$OUT/$SMTPD_ID.env.tmp" "$OUT/$SMTPD_ID.env"',
    ], { env: { OUT: out } });
    const spool = await Deno.realPath(`${server.dir}/rel-spool`);
    const m1 = "Subject: hook one\r\n\r\nbody one\r\n";
    const m2 = "Subject: bounce\r\n\r\nbody two\r\n";
    let id1: string;
    let id2: string;
    {
      await using c = await server.connect();
      await c.readReply();
      await c.command("EHLO client.example");
      id1 = queuedId(
        await transaction(
          c,
          "alice@example.com",
          ["bob@example.com", "carol@example.org"],
          stuff(m1),
        ),
      );
      id2 = queuedId(await transaction(c, "", ["postmaster@example.net"], stuff(m2)));
    }
    const stored = await readSpool(spool);
    assert.deepEqual(stored.map((m) => m.id), [id1, id2]);
    await assertStored(stored[0]!, m1);
    await assertStored(stored[1]!, m2);

    for (const [i, id] of [id1, id2].entries()) {
      const envText = await poll(
        `hook output for ${id}`,
        10_000,
        () => Deno.readTextFile(`${out}/${id}.env`).catch(() => undefined),
      );
      const env = parseEnv(envText);
      assert.equal(env.get("SMTPD_ID"), id);
      assert.equal(env.get("SMTPD_EML"), `${spool}/${id}.eml`);
      assert.equal(env.get("SMTPD_META"), `${spool}/${id}.json`);
      assert.equal(env.get("SMTPD_FROM"), i === 0 ? "alice@example.com" : "");
      assert.equal(
        env.get("SMTPD_RCPT"),
        i === 0 ? "bob@example.com,carol@example.org" : "postmaster@example.net",
      );
      // When the hook runs, both files are complete.
      assert.deepEqual(
        JSON.parse(await Deno.readTextFile(`${out}/${id}.meta`)),
        stored[i]!.meta,
      );
      assert.deepEqual(await Deno.readFile(`${out}/${id}.eml`), stored[i]!.eml);
    }
  } finally {
    await Deno.remove(out, { recursive: true });
  }
});

Deno.test("e2e hooks: a failing hook (exit 3) is logged and never fatal", async () => {
  await using server = await startServer([
    "--on-message",
    'echo "hook broke for $SMTPD_ID" >&2; exit 3',
  ]);
  const message = "Subject: still stored\r\n\r\nx\r\n";
  const ids: string[] = [];
  {
    await using c = await server.connect();
    await c.readReply();
    await c.command("EHLO client.example");
    ids.push(queuedId(await transaction(c, "a@example.com", ["b@example.com"], stuff(message))));
    await server.waitForStderr(new RegExp(`hook failed.*${ids[0]}`));
    // The same session goes on after the hook failed.
    ids.push(queuedId(await transaction(c, "a@example.com", ["b@example.com"], stuff(message))));
    assert.match((await c.command("QUIT")).raw, /^221 2\.0\.0/);
  }
  await server.waitForStderr(new RegExp(`hook failed.*${ids[1]}`));
  const line = server.stderr().split("\n").find((l) => l.includes("hook failed"))!;
  assert.match(line, /\b3\b/, `the exit code is in ${line}`);
  assert.match(line, /hook broke for/, `the hook's stderr is in ${line}`);
  const stored = await readSpool(server.spool);
  assert.deepEqual(stored.map((m) => m.id), ids);
  for (const m of stored) await assertStored(m, message);
  assert.equal(server.exit, null, "the server is still running");
  assert.equal(await server.stop(), 0);
});

Deno.test("e2e hooks: a hook that cannot run (no such command) is logged, mail still accepted", async () => {
  await using server = await startServer(["--on-message", "/nonexistent/smtpd-hook-xyz"]);
  await using c = await server.connect();
  await c.readReply();
  await c.command("EHLO client.example");
  const message = "Subject: x\r\n\r\ny\r\n";
  const id = queuedId(await transaction(c, "a@example.com", ["b@example.com"], stuff(message)));
  await server.waitForStderr(new RegExp(`hook failed.*${id}`));
  const [msg] = await readSpool(server.spool);
  assert.ok(msg);
  await assertStored(msg, message);
  assert.match((await c.command("NOOP")).raw, /^250 2\.0\.0/);
});
