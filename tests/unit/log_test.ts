import assert from "node:assert/strict";
import { clipForLog, fileSink, LOG_TEXT_CHARS, Logger } from "../../lib/log.ts";
import { encodeShared } from "../../lib/bytes.ts";
import { findOnPath } from "../helpers/clients.ts";

const ISO = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/;

Deno.test("Logger writes text lines with fields and drops lines below its level", () => {
  const lines: string[] = [];
  const log = new Logger({ level: "info", sink: (l) => lines.push(l), now: () => new Date(0) });
  log.debug("hidden");
  log.info("message stored", { id: "01ABC", rcpt: 2, subject: "two words", none: undefined });
  assert.deepEqual(lines, [
    '1970-01-01T00:00:00.000Z INFO  message stored id=01ABC rcpt=2 subject="two words"',
  ]);
});

Deno.test("Logger with the default clock stamps every line with the current millisecond", async () => {
  const lines: string[] = [];
  const log = new Logger({ format: "json", sink: (l) => lines.push(l) });
  const before = Date.now();
  for (let i = 0; i < 50; i++) log.info("tick", { i });
  await new Promise((r) => setTimeout(r, 5));
  log.warn("later");
  const after = Date.now();
  const times = lines.map((l) => JSON.parse(l).time as string);
  for (const t of times) {
    assert.match(t, ISO);
    const ms = Date.parse(t);
    assert.ok(ms >= before && ms <= after, `${t} outside the test`);
  }
  assert.ok(Date.parse(times.at(-1)!) >= Date.parse(times[0]!) + 5, "the stamp moves on");
  assert.deepEqual(JSON.parse(lines.at(-1)!).level, "warn");
});

Deno.test("fileSink appends whole lines, long and non-ASCII ones too", () => {
  const dir = Deno.makeTempDirSync();
  try {
    const path = `${dir}/log`;
    const sink = fileSink(path);
    const long = "é".repeat(20_000); // beyond the shared buffer's first size
    sink("first");
    sink(long);
    sink("last");
    assert.equal(Deno.readTextFileSync(path), `first\n${long}\nlast\n`);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("encodeShared gives the UTF-8 bytes, in one buffer reused by the next call", () => {
  const a = encodeShared("héllo ✓ 😀");
  assert.deepEqual(a, new TextEncoder().encode("héllo ✓ 😀"));
  const b = encodeShared("x");
  assert.equal(a.buffer, b.buffer);
  const big = "😀".repeat(50_000);
  const encoded = encodeShared(big);
  assert.deepEqual(encoded, new TextEncoder().encode(big));
  assert.notEqual(encoded.buffer, a.buffer, "a big text gets its own array");
  assert.equal(encodeShared("y").buffer, a.buffer, "and the shared one stays small");
});

Deno.test("clipForLog keeps short text and cuts long text, saying how long it was", () => {
  assert.equal(clipForLog("NOOP"), "NOOP");
  const exact = "x".repeat(LOG_TEXT_CHARS);
  assert.equal(clipForLog(exact), exact);
  const long = "y".repeat(LOG_TEXT_CHARS + 1);
  assert.equal(clipForLog(long), `${"y".repeat(LOG_TEXT_CHARS)}… (${LOG_TEXT_CHARS + 1} chars)`);
  // Worst case for a JSON line: every character escaped as \uXXXX.
  const lines: string[] = [];
  new Logger({ level: "debug", format: "json", sink: (line) => lines.push(line) }).debug(
    `< ${clipForLog("\u0001".repeat(10_000))}`,
    { conn: "c123456" },
  );
  assert.ok(encodeShared(lines[0]!).length < 4096, lines[0]);
});

Deno.test({
  name: "fileSink names the file and the reason of a line it cannot write",
  ignore: Deno.build.os !== "linux", // /dev/full
  fn: () => {
    assert.throws(
      () => fileSink("/dev/full")("x"),
      /^Error: cannot write log file \/dev\/full: .+/,
    );
  },
});

Deno.test({
  name: "fileSink leaves no torn line when the file stops taking bytes mid-line",
  ignore: Deno.build.os !== "linux" || !findOnPath("prlimit"),
  fn: async () => {
    const dir = Deno.makeTempDirSync();
    try {
      const path = `${dir}/log`;
      // A file size limit stands in for a full disk. Deno itself writes files
      // as it starts, so the limit is 4 MiB and the log already holds all but
      // 200 bytes of it: the 6th line of 39 bytes fits in part, then writes
      // fail (EFBIG) until the end.
      const limit = 4 * 1024 * 1024;
      const filler = "f".repeat(limit - 201) + "\n";
      Deno.writeTextFileSync(path, filler);
      const child = `
        import { fileSink } from ${
        JSON.stringify(new URL("../../lib/log.ts", import.meta.url).href)
      };
        Deno.addSignalListener("SIGXFSZ", () => {});
        const sink = fileSink(${JSON.stringify(path)});
        let refused = 0;
        for (let i = 0; i < 8; i++) {
          try { sink("line " + i + " " + "x".repeat(30)); } catch { refused++; }
        }
        console.log(refused);
        Deno.exit(0);`;
      const output = await new Deno.Command("prlimit", {
        args: [`--fsize=${limit}`, Deno.execPath(), "eval", child],
        stderr: "inherit",
      }).output();
      assert.equal(new TextDecoder().decode(output.stdout).trim(), "3");
      const lines = Array.from({ length: 5 }, (_, i) => `line ${i} ${"x".repeat(30)}\n`);
      assert.equal(Deno.readTextFileSync(path), filler + lines.join(""));
    } finally {
      Deno.removeSync(dir, { recursive: true });
    }
  },
});

Deno.test("Logger: lines the sink refuses go to the fallback, after one line saying why", () => {
  let refuse = true;
  const file: string[] = [];
  const fallback: string[] = [];
  const logger = new Logger({
    format: "json",
    sink: (line) => {
      if (refuse) throw new Error("cannot write log file /x: disk full");
      file.push(line);
    },
    fallback: (line) => fallback.push(line),
  });
  logger.info("one");
  logger.info("two");
  refuse = false;
  logger.info("three");
  refuse = true;
  logger.info("four");
  const msgs = (lines: string[]) =>
    lines.map((l) => JSON.parse(l)).map((l) => [l.level, l.msg, l.error]);
  const notice = ["error", "log lines go here meanwhile", "cannot write log file /x: disk full"];
  assert.deepEqual(msgs(fallback), [
    notice,
    ["info", "one", undefined],
    ["info", "two", undefined],
    notice,
    ["info", "four", undefined],
  ]);
  assert.deepEqual(msgs(file), [["info", "three", undefined]]);
});

Deno.test("Logger: client control characters never start a line or reach a terminal raw", () => {
  const lines: string[] = [];
  const text = new Logger({ level: "debug", sink: (l) => lines.push(l), now: () => new Date(0) });
  text.debug(
    "< EHLO x\r2026-11-25T05:00:00.000Z INFO  message stored id=FAKE\x1b]0;t\x07\u2028\u009b",
  );
  text.info("started", { spool: "C:\\Users\\me\\spool", from: "a\u2028\u0085b" });
  const json = new Logger({ format: "json", sink: (l) => lines.push(l), now: () => new Date(0) });
  json.info("x\u007f\u2029", { from: "\u009b" });
  for (const line of lines) {
    // deno-lint-ignore no-control-regex
    assert.doesNotMatch(line, /[\u0000-\u001f\u007f-\u009f\u2028\u2029]/, line);
  }
  assert.equal(
    lines[0],
    "1970-01-01T00:00:00.000Z DEBUG < EHLO x\\u000d2026-11-25T05:00:00.000Z INFO  message stored id=FAKE\\u001b]0;t\\u0007\\u2028\\u009b",
  );
  assert.equal(
    lines[1],
    '1970-01-01T00:00:00.000Z INFO  started spool=C:\\Users\\me\\spool from="a\\u2028\\u0085b"',
  );
  assert.deepEqual(JSON.parse(lines[2]!), {
    time: "1970-01-01T00:00:00.000Z",
    level: "info",
    msg: "x\u007f\u2029",
    from: "\u009b",
  });
});
