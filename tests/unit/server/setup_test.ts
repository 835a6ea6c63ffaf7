import assert from "node:assert/strict";
import { OptionError, setup } from "../../../lib/server/setup.ts";

Deno.test("setup refuses --tls-self-signed together with --tls-cert/--tls-key", async () => {
  // Checked before any file is read: the paths need not exist.
  const error = await setup({ tlsCert: "c.pem", tlsKey: "k.pem", tlsSelfSigned: true })
    .catch((e) => e);
  assert.ok(error instanceof OptionError, String(error));
  assert.equal(error.flag, "--tls-self-signed");
  assert.equal(error.message, "cannot be combined with --tls-cert/--tls-key");
});

Deno.test("setup takes a host name of printable ASCII up to 255 octets, not starting with '-'", async () => {
  for (const hostname of ["mx.example", "[127.0.0.1]", "a".repeat(255), "host_1"]) {
    assert.equal((await setup({ hostname })).hostname, hostname);
  }
  for (const hostname of ["", "my host", "a".repeat(256), "-v", "mx\r\n", "mél.example"]) {
    const error = await setup({ hostname }).catch((e) => e);
    assert.ok(error instanceof OptionError, `${JSON.stringify(hostname)}: ${error}`);
    assert.equal(error.flag, "--hostname");
  }
});

Deno.test("setup checks what a library caller can get wrong that the CLI never passes", async () => {
  const cases: [Record<string, unknown>, string, string][] = [
    [{ logLevel: "loud" }, "--log-level", 'Cannot use "loud": expected debug, info, warn, error'],
    [{ logFormat: "xml" }, "--log-format", 'Cannot use "xml": expected text, json'],
    [{ listen: "127.0.0.1:0" }, "--listen", 'expected a list of strings, found "127.0.0.1:0"'],
    [{ exitAfter: 0 }, "--exit-after", 'Cannot use "0": expected a positive whole number'],
    [{ exitAfter: 1.5 }, "--exit-after", 'Cannot use "1.5": expected a positive whole number'],
    [{ onConnect: "x" }, "onConnect", "expected a function, found string"],
    [{ onMessage: {} }, "onMessage", "expected a function, found object"],
    [{ requireAuth: "yes" }, "--require-auth", 'expected true or false, found "yes"'],
    [{ noFsync: 1 }, "--no-fsync", "expected true or false, found 1"],
    [{ spool: "" }, "--spool", 'expected a non-empty string, found ""'],
    [{ onMessageCommand: " " }, "--on-message", 'expected a non-empty string, found " "'],
    [
      { onAuth: () => true, authFile: "users.txt" },
      "--auth-file",
      "cannot be combined with onAuth: which one decides?",
    ],
  ];
  for (const [options, flag, message] of cases) {
    const error = await setup(options).catch((e) => e);
    assert.ok(error instanceof OptionError, String(error));
    assert.deepEqual([error.flag, error.message], [flag, message]);
  }
  assert.equal((await setup({ maxSize: 0 })).maxSize, Infinity);
});

Deno.test("setup takes maxSize and timeout as numbers or as the flags' texts", async () => {
  const given = await setup({ maxSize: "10MB", timeout: "30s" });
  assert.deepEqual([given.maxSize, given.timeoutMs], [10_000_000, 30_000]);
  assert.deepEqual([(await setup({ maxSize: "1MiB" })).maxSize, (await setup({})).maxSize], [
    1_048_576,
    52_428_800,
  ]);
  assert.equal((await setup({ maxSize: "0" })).maxSize, Infinity);
  for (
    const [options, flag] of [[{ maxSize: "10XB" }, "--max-size"], [
      { timeout: "soon" },
      "--timeout",
    ], [{ timeout: "0" }, "--timeout"]] as const
  ) {
    const error = await setup(options).catch((e) => e);
    assert.ok(error instanceof OptionError, String(error));
    assert.equal(error.flag, flag);
  }
});
