import assert from "node:assert/strict";
import { Logger } from "../../../lib/log.ts";
import { type HookEnv, HookRunner, rcptVariable } from "../../../lib/server/hooks.ts";
import { findOnPath } from "../../helpers/clients.ts";

const IS_WINDOWS = Deno.build.os === "windows";

/** A JSON logger at debug level whose lines land in `lines`, parsed. */
function capture(): { logger: Logger; lines: Record<string, unknown>[] } {
  const lines: Record<string, unknown>[] = [];
  const logger = new Logger({
    level: "debug",
    format: "json",
    sink: (line) => lines.push(JSON.parse(line)),
  });
  return { logger, lines };
}

function env(id: string, overrides: Partial<HookEnv> = {}): HookEnv {
  return {
    SMTPD_ID: id,
    SMTPD_EML: `/spool/${id}.eml`,
    SMTPD_META: `/spool/${id}.json`,
    SMTPD_FROM: "alice@example.com",
    SMTPD_RCPT: "bob@example.com,carol@example.org",
    ...overrides,
  };
}

/** Strips the time so lines compare exactly. */
function withoutTime(lines: Record<string, unknown>[]): Record<string, unknown>[] {
  return lines.map(({ time: _time, ms: _ms, ...rest }) => rest);
}

Deno.test({
  name: "HookRunner passes the SMTPD_* variables on top of the inherited environment",
  ignore: IS_WINDOWS,
  async fn() {
    const dir = await Deno.makeTempDir();
    Deno.env.set("SMTPD_HOOK_TEST_INHERITED", "inherited value");
    const { logger, lines } = capture();
    const runner = new HookRunner(
      `printf '%s\\n' "$SMTPD_ID" "$SMTPD_EML" "$SMTPD_META" "[$SMTPD_FROM]" "$SMTPD_RCPT" ` +
        `"$SMTPD_HOOK_TEST_INHERITED" > "${dir}/$SMTPD_ID.out"`,
      4,
      logger,
    );
    runner.run(env("m1"));
    runner.run(env("m2", { SMTPD_FROM: "", SMTPD_RCPT: "x@y" }));
    await runner.idle();
    Deno.env.delete("SMTPD_HOOK_TEST_INHERITED");
    assert.equal(
      await Deno.readTextFile(`${dir}/m1.out`),
      "m1\n/spool/m1.eml\n/spool/m1.json\n[alice@example.com]\n" +
        "bob@example.com,carol@example.org\ninherited value\n",
    );
    assert.equal(
      await Deno.readTextFile(`${dir}/m2.out`),
      "m2\n/spool/m2.eml\n/spool/m2.json\n[]\nx@y\ninherited value\n",
    );
    assert.deepEqual(
      withoutTime(lines).sort((a, b) => String(a.id).localeCompare(String(b.id))),
      [
        { level: "debug", msg: "hook finished", id: "m1" },
        { level: "debug", msg: "hook finished", id: "m2" },
      ],
    );
    await Deno.remove(dir, { recursive: true });
  },
});

Deno.test({
  name: "HookRunner never runs more hooks at once than its cap, and queues the rest",
  ignore: IS_WINDOWS,
  async fn() {
    const dir = await Deno.makeTempDir();
    const log = `${dir}/log`;
    const { logger } = capture();
    const runner = new HookRunner(
      `echo "start $SMTPD_ID" >> "${log}"; sleep 0.15; echo "end $SMTPD_ID" >> "${log}"`,
      2,
      logger,
    );
    for (let i = 1; i <= 6; i++) runner.run(env(`m${i}`));
    assert.equal(runner.running, 2);
    assert.equal(runner.queued, 4);
    await runner.idle();
    assert.equal(runner.running, 0);
    const events = (await Deno.readTextFile(log)).trim().split("\n");
    assert.equal(events.length, 12);
    let now = 0;
    let most = 0;
    for (const event of events) {
      now += event.startsWith("start") ? 1 : -1;
      most = Math.max(most, now);
    }
    assert.equal(most, 2);
    // Queued hooks start in the order they were queued, two at a time (two
    // shells started in the same millisecond may write their line in either order).
    const starts = events.filter((e) => e.startsWith("start")).map((e) => e.slice(6));
    assert.deepEqual([starts.slice(2, 4).sort(), starts.slice(4).sort()], [
      ["m3", "m4"],
      ["m5", "m6"],
    ]);
    await Deno.remove(dir, { recursive: true });
  },
});

Deno.test({
  name: "HookRunner logs a failing hook as one warn line with its exit code and stderr",
  ignore: IS_WINDOWS,
  async fn() {
    const { logger, lines } = capture();
    const runner = new HookRunner("echo first >&2; echo 'it broke' >&2; exit 3", 1, logger);
    runner.run(env("m1"));
    await runner.idle();
    assert.deepEqual(withoutTime(lines), [
      { level: "warn", msg: "hook failed", id: "m1", code: 3, stderr: "first | it broke" },
    ]);
  },
});

Deno.test({
  name: "HookRunner keeps only the end of a hook's long stderr",
  ignore: IS_WINDOWS,
  async fn() {
    const { logger, lines } = capture();
    const runner = new HookRunner(
      "i=0; while [ $i -lt 300 ]; do echo 'noise noise noise' >&2; i=$((i+1)); done; " +
        "echo 'the real error' >&2; exit 1",
      1,
      logger,
    );
    runner.run(env("m1"));
    await runner.idle();
    assert.equal(lines.length, 1);
    const stderr = String(lines[0]!.stderr);
    assert.ok(stderr.endsWith("noise noise noise | the real error"), stderr);
    assert.ok(stderr.length <= 1024 + 300 * 3, String(stderr.length));
  },
});

Deno.test({
  name: "HookRunner logs a hook that cannot start, and never throws",
  permissions: { run: false, read: true, write: true, env: true },
  async fn() {
    const { logger, lines } = capture();
    const runner = new HookRunner("true", 1, logger);
    runner.run(env("m1"));
    await runner.idle();
    assert.equal(lines.length, 1);
    assert.equal(lines[0]!.level, "warn");
    assert.equal(lines[0]!.msg, "hook failed to start");
    assert.equal(lines[0]!.id, "m1");
    assert.match(String(lines[0]!.error), /^[^\n]*run[^\n]*$/);
  },
});

Deno.test("HookRunner.idle resolves at once when nothing ran", async () => {
  const { logger } = capture();
  await new HookRunner("true", 1, logger).idle();
});

Deno.test({
  name: "HookRunner.cancel drops queued hooks and stops running ones",
  ignore: IS_WINDOWS,
  async fn() {
    const { logger, lines } = capture();
    // exec: the signal must reach sleep itself, not a shell that forked it.
    const runner = new HookRunner("exec sleep 10", 1, logger);
    runner.run(env("m1"));
    runner.run(env("m2"));
    // Let the first one spawn before cancelling it.
    for (let i = 0; i < 100 && lines.length === 0; i++) {
      await new Promise((r) => setTimeout(r, 10));
      if (i === 5) runner.cancel();
    }
    await runner.idle();
    const logged = withoutTime(lines);
    assert.equal(typeof logged[1]?.pid, "number");
    delete logged[1]!.pid;
    assert.deepEqual(logged, [
      { level: "warn", msg: "hooks dropped at shutdown", queued: 1 },
      { level: "warn", msg: "hook killed at shutdown", id: "m1" },
      { level: "warn", msg: "hook failed", id: "m1", signal: "SIGTERM" },
    ]);
  },
});

Deno.test({
  name: "HookRunner.cancel stops the hook's whole process group, background children too",
  ignore: IS_WINDOWS || !findOnPath("pgrep"),
  async fn() {
    const { logger, lines } = capture();
    // Not exec: the shell waits on its foreground child, and a second one runs
    // in the background. Fractional seconds unique to this run name them.
    const mark = `${30 + Math.floor(Math.random() * 1000)}.${Deno.pid}`;
    const runner = new HookRunner(`sleep ${mark}1 & sleep ${mark}2; echo never`, 1, logger);
    runner.run(env("m1"));
    for (let i = 0; i < 100 && lines.length === 0; i++) {
      await new Promise((r) => setTimeout(r, 10));
      if (i === 5) runner.cancel();
    }
    await runner.idle();
    assert.equal(lines[0]?.msg, "hook killed at shutdown");
    let left = "";
    for (let i = 0; i < 50; i++) {
      const out = await new Deno.Command("pgrep", { args: ["-f", `sleep ${mark}`] }).output();
      left = new TextDecoder().decode(out.stdout).trim();
      if (out.code === 1) break;
      await new Promise((r) => setTimeout(r, 20));
    }
    if (left !== "") await new Deno.Command("pkill", { args: ["-f", `sleep ${mark}`] }).output();
    assert.equal(left, "", "nothing of the hook's process group is left");
  },
});

Deno.test({
  name: "HookRunner frees the slot when the hook exits, even if its background child holds stderr",
  ignore: IS_WINDOWS,
  async fn() {
    const { logger, lines } = capture();
    const runner = new HookRunner("sleep 2 & echo leaving >&2; exit 4", 1, logger);
    const started = Date.now();
    runner.run(env("m1"));
    await runner.idle();
    assert.ok(Date.now() - started < 1500, `took ${Date.now() - started} ms`);
    assert.deepEqual(withoutTime(lines), [
      { level: "warn", msg: "hook failed", id: "m1", code: 4, stderr: "leaving" },
    ]);
  },
});

Deno.test("HookRunner rejects a cap below 1", () => {
  const { logger } = capture();
  assert.throws(
    () => new HookRunner("true", 0, logger),
    new RangeError("Cannot run hooks 0 at a time: expected 1 or more"),
  );
});

Deno.test("rcptVariable cuts a list too long for the environment after a whole address", () => {
  assert.equal(rcptVariable(["a@b", "c@d"]), "a@b,c@d");
  const many = Array.from({ length: 1000 }, (_, i) => `${"x".repeat(300)}${i}@example.com`);
  const value = rcptVariable(many);
  assert.ok(value.length < 41_000, String(value.length));
  assert.ok(value.endsWith(",…"));
  const kept = value.slice(0, -2).split(",");
  assert.deepEqual(kept, many.slice(0, kept.length));
});
