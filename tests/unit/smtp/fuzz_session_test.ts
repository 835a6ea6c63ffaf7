/**
 * The short fuzz of the pure core (issue 8 torture suite): ~20,000 fast-check
 * sessions (modelled, mutated, random) through `Session`; the full run of
 * ≥ 1,000,000 is `tests/torture/fuzz_core_test.ts` (`make torture`).
 */

import { deepStrictEqual, ok, throws } from "node:assert/strict";
import { buildSession, checkModelled, fuzzCore, stuffBytes } from "../../torture/fuzz_core.ts";

const ENCODER = new TextEncoder();

Deno.test("fuzz: the model stuffs only dots that start a CRLF-delimited line", () => {
  deepStrictEqual(
    new TextDecoder().decode(stuffBytes(ENCODER.encode(".a\r\n.b\n.c\r.d\r\n"))),
    "..a\r\n..b\n.c\r.d\r\n",
  );
});

Deno.test("fuzz: the model checker fails on a body the core did not store", () => {
  // A model that cannot fail proves nothing: corrupt one expectation and expect a throw.
  const m = buildSession([{
    noise: ["NOOP"],
    rcpts: 2,
    abandon: false,
    via: "DATA",
    body: ENCODER.encode("a\n.\nb\r\n"),
    bdat: [3],
    midNoop: false,
  }]);
  checkModelled(m, [7]);
  const wrong = { ...m, messages: [{ ...m.messages[0]!, body: ENCODER.encode("a\n") }] };
  throws(() => checkModelled(wrong, [7]));
});

Deno.test("fuzz: 20,000 generated sessions against Session keep the invariants and the model", () => {
  const figures = fuzzCore(20_000);
  Deno.stderr.writeSync(ENCODER.encode(`FIGURE fuzz-core-short: ${JSON.stringify(figures)}\n`));
  deepStrictEqual(figures.sessions, 20_000);
  ok(figures.messagesChecked > 1000, "the modelled sessions store messages");
});
