import { deepStrictEqual, strictEqual } from "node:assert/strict";
import { BdatDecoder, leadingChunkSize, parseBdatArgs } from "../../../lib/smtp/bdat_decoder.ts";

Deno.test("parseBdatArgs reads the size and a case-insensitive LAST", () => {
  deepStrictEqual(parseBdatArgs("10"), { size: 10, last: false });
  deepStrictEqual(parseBdatArgs("0 LAST"), { size: 0, last: true });
  deepStrictEqual(parseBdatArgs("7  last"), { size: 7, last: true });
  // RFC 3030 §3: chunk-size = 1*DIGIT, leading zeros and any length included.
  deepStrictEqual(parseBdatArgs("0000000000000000003 LAST"), { size: 3, last: true });
  deepStrictEqual(parseBdatArgs("999999999999999"), { size: 999_999_999_999_999, last: false });
  deepStrictEqual(parseBdatArgs("99999999999999999999999"), {
    size: Number.MAX_SAFE_INTEGER,
    last: false,
  });
});

Deno.test("parseBdatArgs refuses malformed arguments", () => {
  for (const args of ["", "x", "-1", "1 FIRST", "1 LAST x", "1.5", "+1", "1e3"]) {
    strictEqual(parseBdatArgs(args), null, args);
  }
});

Deno.test("leadingChunkSize finds the size a malformed BDAT line still gives", () => {
  strictEqual(leadingChunkSize("1 FIRST"), 1);
  strictEqual(leadingChunkSize("10 LAST x"), 10);
  strictEqual(leadingChunkSize("007 "), 7);
  strictEqual(leadingChunkSize("99999999999999999999999 x"), Number.MAX_SAFE_INTEGER);
  strictEqual(leadingChunkSize("5\tLAST"), 5);
  for (const args of ["", "x", "-1", "1.5", "+1", "1e3", "x 5"]) {
    strictEqual(leadingChunkSize(args), null, args);
  }
});

Deno.test("BdatDecoder slices a chunk across pieces without copying", () => {
  const decoder = new BdatDecoder();
  decoder.start(5);
  const a = new Uint8Array([1, 2, 3]);
  strictEqual(decoder.take(a), a);
  strictEqual(decoder.remaining, 2);
  const b = new Uint8Array([4, 5, 6, 7]);
  const got = decoder.take(b);
  deepStrictEqual([...got], [4, 5]);
  strictEqual(got.buffer, b.buffer);
  strictEqual(decoder.done, true);
  strictEqual(decoder.take(b).length, 0);
});
