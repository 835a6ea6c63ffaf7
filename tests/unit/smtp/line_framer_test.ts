import { deepStrictEqual, strictEqual } from "node:assert/strict";
import { type Frame, LineFramer } from "../../../lib/smtp/line_framer.ts";
import { MAX_AUTH_LINE_OCTETS, MAX_COMMAND_LINE_OCTETS } from "../../../lib/smtp/limits.ts";
import { bytes, chunk, concat } from "../../helpers/feed.ts";

const DECODER = new TextDecoder();

/** Feeds `input` in pieces the way the session does; returns lines and "too-long" marks. */
function frames(input: Uint8Array, sizes: number[] = [], sasl = false): string[] {
  const framer = new LineFramer();
  framer.sasl = sasl;
  const out: string[] = [];
  let buf: Uint8Array = new Uint8Array(0);
  for (const piece of chunk(input, sizes)) {
    buf = concat([buf, piece]);
    let pos = 0;
    for (let guard = 0; guard < 100_000; guard++) {
      const frame: Frame = framer.frame(buf, pos, buf.length);
      pos += frame.consumed;
      if (frame.type === "need-data") break;
      if (frame.type === "line") {
        out.push(DECODER.decode(buf.subarray(frame.lineStart, frame.lineEnd)));
      }
      if (frame.type === "too-long") out.push(frame.auth ? "<auth too long>" : "<too long>");
    }
    buf = buf.slice(pos);
  }
  return out;
}

Deno.test("LineFramer splits at CRLF and at a bare LF, stripping one CR", () => {
  for (const sizes of [[], [1], [2, 3]]) {
    deepStrictEqual(frames(bytes("NOOP\r\nRSET\nQUIT\r\r\nHALF"), sizes), [
      "NOOP",
      "RSET",
      "QUIT\r",
    ]);
  }
});

Deno.test("LineFramer keeps a bare CR inside a line", () => {
  deepStrictEqual(frames(bytes("A\rB\r\n")), ["A\rB"]);
});

Deno.test("LineFramer accepts a line of exactly the limit, its CRLF included and split", () => {
  const line = "x".repeat(MAX_COMMAND_LINE_OCTETS - 2);
  for (const sizes of [[], [MAX_COMMAND_LINE_OCTETS - 1, 1], [MAX_COMMAND_LINE_OCTETS - 2, 1]]) {
    deepStrictEqual(frames(bytes(`${line}\r\nNOOP\r\n`), sizes), [line, "NOOP"], `${sizes}`);
    // A bare LF is one octet of ending.
    deepStrictEqual(frames(bytes(`${line}x\nNOOP\n`), sizes), [`${line}x`, "NOOP"], `${sizes}`);
  }
});

Deno.test("LineFramer counts the CRLF: one octet more is too long (RFC 5321 §4.5.3.1.4)", () => {
  const line = "x".repeat(MAX_COMMAND_LINE_OCTETS - 1);
  for (const sizes of [[], [MAX_COMMAND_LINE_OCTETS - 1, 1], [MAX_COMMAND_LINE_OCTETS, 1]]) {
    deepStrictEqual(
      frames(bytes(`${line}\r\nNOOP\r\n`), sizes),
      ["<too long>", "NOOP"],
      `${sizes}`,
    );
    deepStrictEqual(frames(bytes(`${line}x\nNOOP\n`), sizes), ["<too long>", "NOOP"], `${sizes}`);
  }
});

Deno.test("LineFramer reports an overlong line once and resynchronises", () => {
  const long = "y".repeat(MAX_COMMAND_LINE_OCTETS + 1);
  for (const sizes of [[], [1], [1000], [MAX_COMMAND_LINE_OCTETS + 2]]) {
    deepStrictEqual(
      frames(bytes(`${long}\r\nNOOP\r\n`), sizes),
      ["<too long>", "NOOP"],
      `${sizes}`,
    );
    deepStrictEqual(frames(bytes(`${long}${long}${long}\nNOOP\n`), sizes), ["<too long>", "NOOP"]);
  }
});

Deno.test("LineFramer knows a line is too long once it holds `limit` octets without LF", () => {
  const nine = bytes("z".repeat(9));
  deepStrictEqual(new LineFramer(10).frame(nine, 0, 9), { type: "need-data", consumed: 0 });
  const ten = bytes("z".repeat(10));
  deepStrictEqual(new LineFramer(10).frame(ten, 0, 10), {
    type: "too-long",
    consumed: 10,
    auth: false,
  });
});

Deno.test("LineFramer holds at most the limit of an unfinished overlong line", () => {
  const framer = new LineFramer(10);
  const junk = bytes("z".repeat(50));
  const frame = framer.frame(junk, 0, junk.length);
  strictEqual(frame.type, "too-long");
  strictEqual(frame.consumed, 50);
  const more = framer.frame(junk, 0, junk.length);
  deepStrictEqual(more, { type: "need-data", consumed: 50 });
});

Deno.test("LineFramer resumes its LF search where it stopped", () => {
  const framer = new LineFramer();
  const data = bytes("ABCDEF\r\n");
  deepStrictEqual(framer.frame(data, 0, 3), { type: "need-data", consumed: 0 });
  deepStrictEqual(framer.frame(data, 0, 6), { type: "need-data", consumed: 0 });
  deepStrictEqual(framer.frame(data, 0, 8), {
    type: "line",
    lineStart: 0,
    lineEnd: 6,
    consumed: 8,
  });
});

Deno.test("LineFramer gives AUTH lines and SASL responses the RFC 4954 limit", () => {
  const response = "A".repeat(MAX_AUTH_LINE_OCTETS);
  const auth = `auth PLAIN ${"B".repeat(MAX_AUTH_LINE_OCTETS - 11)}`;
  const plain = `NOOP ${"C".repeat(MAX_COMMAND_LINE_OCTETS)}`;
  for (const sizes of [[], [1000], [MAX_COMMAND_LINE_OCTETS + 2, 1]]) {
    deepStrictEqual(frames(bytes(`${auth}\r\n${plain}\r\nNOOP\r\n`), sizes), [
      auth,
      "<too long>",
      "NOOP",
    ], `${sizes}`);
    deepStrictEqual(frames(bytes(`${response}\r\n`), sizes, true), [response], `${sizes}`);
    deepStrictEqual(
      frames(bytes(`${auth}X\r\nNOOP\r\n${response}X${response}\nNOOP\n`), sizes),
      ["<auth too long>", "NOOP", "<too long>", "NOOP"],
      `${sizes}`,
    );
    deepStrictEqual(frames(bytes(`${response}X\r\nNOOP\r\n`), sizes, true), [
      "<auth too long>",
      "NOOP",
    ]);
  }
  // "AUTHX …" and "AUTH" without a space are not AUTH commands.
  deepStrictEqual(frames(bytes(`AUTHX ${"D".repeat(MAX_COMMAND_LINE_OCTETS)}\n`)), ["<too long>"]);
});

Deno.test("LineFramer holds at most the AUTH limit of an unfinished AUTH line", () => {
  const framer = new LineFramer(10, 20);
  const junk = bytes(`AUTH ${"z".repeat(45)}`);
  deepStrictEqual(framer.frame(junk, 0, 21), { type: "need-data", consumed: 0 });
  deepStrictEqual(framer.frame(junk, 0, junk.length), {
    type: "too-long",
    consumed: 50,
    auth: true,
  });
});
