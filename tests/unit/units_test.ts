import assert from "node:assert/strict";
import {
  MAX_TIMER_MS,
  parseDuration,
  parseHostPort,
  parseSize,
  timerDelay,
} from "../../lib/units.ts";

Deno.test("parseDuration reads ms, s, m and h", () => {
  assert.equal(parseDuration("250ms"), 250);
  assert.equal(parseDuration("30s"), 30_000);
  assert.equal(parseDuration("1.5m"), 90_000);
  assert.equal(parseDuration(" 1h "), 3_600_000);
});

Deno.test("parseDuration accepts a bare 0 (0 in any unit), no other bare number", () => {
  assert.equal(parseDuration("0"), 0);
  assert.equal(parseDuration(" 0 "), 0);
  assert.equal(parseDuration("0s"), 0);
  for (const bad of ["5", "0.5", "-0", "", "0x"]) {
    assert.throws(() => parseDuration(bad), SyntaxError, bad);
  }
});

Deno.test("timerDelay clamps a duration past setTimeout's 32-bit range", () => {
  assert.equal(MAX_TIMER_MS, 2_147_483_647);
  assert.equal(timerDelay(parseDuration("1000h")), MAX_TIMER_MS);
  assert.equal(timerDelay(MAX_TIMER_MS + 1), MAX_TIMER_MS);
  assert.equal(timerDelay(MAX_TIMER_MS), MAX_TIMER_MS);
  assert.equal(timerDelay(300_000), 300_000);
  assert.equal(timerDelay(0), 0);
});

Deno.test("parseSize reads bytes and decimal and binary units", () => {
  assert.equal(parseSize("10MB"), 10_000_000);
  assert.equal(parseSize("1MiB"), 1_048_576);
  assert.equal(parseSize("123"), 123);
});

Deno.test("parseHostPort reads names, IPv4 and bracketed IPv6", () => {
  assert.deepEqual(parseHostPort("127.0.0.1:1025"), { host: "127.0.0.1", port: 1025 });
  assert.deepEqual(parseHostPort("[::1]:0"), { host: "::1", port: 0 });
  assert.deepEqual(parseHostPort("[::ffff:127.0.0.1]:25"), { host: "::ffff:127.0.0.1", port: 25 });
  assert.deepEqual(parseHostPort("bücher.test:25"), { host: "bücher.test", port: 25 });
  assert.deepEqual(parseHostPort("localhost:2525"), { host: "localhost", port: 2525 });
  assert.deepEqual(parseHostPort("mx_1.example-host.test:25"), {
    host: "mx_1.example-host.test",
    port: 25,
  });
});

Deno.test("parseHostPort refuses a host no name or address can be", () => {
  for (
    const bad of [
      "*:41160",
      ":25",
      "a b:25",
      "a/b:25",
      "host/24:25",
      "a*b:25",
      " :25",
      "999.1.1.1:25",
      "[:::]:0",
      "[1:2:3]:25",
      "[127.0.0.1]:25",
      "\u0661\u0662\u0667.\u0660.\u0660.\u0661:0", // Arabic-Indic digits
    ]
  ) {
    assert.throws(() => parseHostPort(bad), SyntaxError, bad);
  }
  assert.throws(
    () => parseHostPort("*:41160"),
    { message: 'Cannot use "*:41160": "*" is not a host name or address' },
  );
  assert.throws(
    () => parseHostPort("1.2.3.256:25"),
    { message: 'Cannot use "1.2.3.256:25": "1.2.3.256" is not an IPv4 address' },
  );
  assert.deepEqual(parseHostPort("10.0.0.255:25"), { host: "10.0.0.255", port: 25 });
});
