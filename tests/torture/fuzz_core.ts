/**
 * Fuzzing the pure SMTP core (`lib/smtp/session.ts`) with fast-check, for the
 * torture suite (issue 8): the short run lives in
 * `tests/unit/smtp/fuzz_session_test.ts`, the full one (≥ 1,000,000 sessions)
 * in `tests/torture/fuzz_core_test.ts`.
 *
 * Three kinds of session, each fed in arbitrary chunks:
 * - **modelled**: EHLO, then transactions (DATA with stuffed bodies full of
 *   CR, LF, dots and the smuggling sequences, or BDAT chunks), noise commands
 *   and abandoned transactions; the reply codes and the stored messages
 *   (body bytes, sender, recipients, DATA/BDAT) must equal the model's.
 * - **mutated**: a modelled session's wire with bytes flipped, dropped,
 *   inserted or duplicated; no model, only the invariants.
 * - **random**: SMTP-shaped pieces or raw edgy bytes; invariants only.
 *
 * Invariants for all: `receive`/`next`/`resume…` never throw, every reply
 * line matches `^\d{3}[ -]` and ends in CRLF, the event loop is bounded.
 *
 * @module
 */

import { deepStrictEqual, ok } from "node:assert/strict";
import fc, { type Arbitrary } from "fast-check";
import type { Decision, Reply } from "../../lib/smtp/events.ts";
import { queuedReply } from "../../lib/smtp/reply.ts";
import { chunk, concat, type Outcome, run, testConfig } from "../helpers/feed.ts";
import { chunkSizes, edgyBytes, smtpInput } from "../helpers/arbitraries.ts";

const ENCODER = new TextEncoder();
const REPLY_LINE = /^\d{3}[ -]/;
const REJECT: Reply = { code: 554, enhanced: "5.7.1", lines: ["Rejected"] };

/** Roomy limits: the modelled sessions must never hit them by accident. */
const CONFIG = testConfig({ maxSize: 1_000_000, maxRecipients: 3, starttls: false });

/** Byte sequences that confuse end-of-data detection (CVE-2023-51764 class) and unstuffing. */
const TRAPS = [
  "\n.\n",
  "\n.\r\n",
  "\r.\r",
  "\r.\n",
  "\r\n.\n",
  "\r.\r\n",
  "\r\n.\r",
  "\r\n..\r\n",
  "\r\n.x",
  ".",
  "..",
  "\r\r\n",
  "\r\n\r\n",
  "QUIT\r\n",
  "\r\nMAIL FROM:<evil@x>\r\n",
].map((s) => ENCODER.encode(s));

/** A message body: edgy bytes and traps. */
function body(): Arbitrary<Uint8Array> {
  return fc.array(
    fc.oneof(
      { weight: 3, arbitrary: edgyBytes(30) },
      { weight: 2, arbitrary: fc.constantFrom(...TRAPS) },
    ),
    { maxLength: 8 },
  ).map(concat);
}

/** RFC 5321 §4.5.2 stuffing on CRLF-delimited lines; `message` must be empty or end in CRLF. */
export function stuffBytes(message: Uint8Array): Uint8Array {
  const out: number[] = [];
  for (let i = 0; i < message.length; i++) {
    const lineStart = i === 0 || (message[i - 1] === 0x0a && message[i - 2] === 0x0d);
    if (lineStart && message[i] === 0x2e) out.push(0x2e);
    out.push(message[i]!);
  }
  return Uint8Array.from(out);
}

/** Bodies DATA can carry exactly: empty, or ending in CRLF. */
function dataBody(b: Uint8Array): Uint8Array {
  if (b.length === 0) return b;
  if (b.length >= 2 && b[b.length - 2] === 0x0d && b[b.length - 1] === 0x0a) return b;
  return concat([b, ENCODER.encode("\r\n")]);
}

type Noise = "NOOP" | "RSET" | "VRFY x@y.test" | "HELP" | "WIZ";
const NOISE_CODES: Record<Noise, number> = {
  "NOOP": 250,
  "RSET": 250,
  "VRFY x@y.test": 252,
  "HELP": 214,
  "WIZ": 500,
};

interface TxSpec {
  noise: Noise[];
  rcpts: number;
  /** Abandoned with RSET after the RCPTs: stores nothing. */
  abandon: boolean;
  via: "DATA" | "BDAT";
  body: Uint8Array;
  /** BDAT chunk sizes (cycled). */
  bdat: number[];
  /** A NOOP between RCPT and DATA/BDAT (allowed inside a transaction). */
  midNoop: boolean;
}

const txArb: Arbitrary<TxSpec> = fc.record({
  noise: fc.array(fc.constantFrom<Noise>("NOOP", "RSET", "VRFY x@y.test", "HELP", "WIZ"), {
    maxLength: 2,
  }),
  rcpts: fc.integer({ min: 1, max: 3 }),
  abandon: fc.integer({ min: 0, max: 9 }).map((n) => n < 2),
  via: fc.constantFrom<"DATA" | "BDAT">("DATA", "DATA", "BDAT"),
  body: body(),
  bdat: fc.array(fc.integer({ min: 1, max: 40 }), { minLength: 1, maxLength: 4 }),
  midNoop: fc.boolean(),
});

/** One modelled session: its wire bytes and what the core must produce. */
export interface Modelled {
  wire: Uint8Array;
  codes: number[];
  messages: { from: string; to: string[]; via: "DATA" | "BDAT"; body: Uint8Array }[];
}

/** Builds the wire and the model's expectations for `txs`. */
export function buildSession(txs: TxSpec[]): Modelled {
  const parts: Uint8Array[] = [];
  const codes: number[] = [];
  const messages: Modelled["messages"] = [];
  const line = (text: string, code: number) => {
    parts.push(ENCODER.encode(text + "\r\n"));
    codes.push(code);
  };
  line("EHLO client.test", 250);
  let wiz = 0;
  txs.forEach((tx, n) => {
    for (const noise of tx.noise) {
      // Stay far below the 20-failed-commands limit: that path is not what this models.
      if (noise === "WIZ" && ++wiz > 5) continue;
      line(noise, NOISE_CODES[noise]);
    }
    const from = `s${n}@a.test`;
    const to = Array.from({ length: tx.rcpts }, (_, r) => `r${r}.${n}@b.test`);
    line(`MAIL FROM:<${from}>`, 250);
    for (const rcpt of to) line(`RCPT TO:<${rcpt}>`, 250);
    if (tx.midNoop) line("NOOP", 250);
    if (tx.abandon) {
      line("RSET", 250);
      return;
    }
    if (tx.via === "DATA") {
      const b = dataBody(tx.body);
      line("DATA", 354);
      parts.push(stuffBytes(b), ENCODER.encode(".\r\n"));
      codes.push(250);
      messages.push({ from, to, via: "DATA", body: b });
    } else {
      const b = tx.body;
      let off = 0;
      for (let i = 0; off < b.length || i === 0; i++) {
        const size = Math.min(tx.bdat[i % tx.bdat.length]!, b.length - off);
        const last = off + size >= b.length;
        parts.push(ENCODER.encode(`BDAT ${size}${last ? " LAST" : ""}\r\n`));
        parts.push(b.subarray(off, off + size));
        codes.push(250);
        off += size;
        if (last) break;
      }
      messages.push({ from, to, via: "BDAT", body: b });
    }
  });
  line("QUIT", 221);
  return { wire: concat(parts), codes, messages };
}

/** Arbitrary modelled sessions. */
export function modelledSession(): Arbitrary<Modelled> {
  return fc.array(txArb, { minLength: 0, maxLength: 4 }).map(buildSession);
}

/** Checks the invariants every session must keep; returns the reply codes. */
export function checkInvariants(out: Outcome): number[] {
  const codes: number[] = [];
  for (const reply of out.replies) {
    const lines = reply.split("\r\n");
    for (const l of lines) ok(REPLY_LINE.test(l), `reply line ${JSON.stringify(l)}`);
    codes.push(Number(reply.slice(0, 3)));
  }
  return codes;
}

/** Runs one modelled session in `sizes` chunks and compares it with the model. */
export function checkModelled(m: Modelled, sizes: number[]): void {
  const out = run(chunk(m.wire, sizes), { config: CONFIG });
  const codes = checkInvariants(out);
  deepStrictEqual(codes, m.codes, "reply codes");
  ok(out.closed, "QUIT closes");
  deepStrictEqual(out.messages.length, m.messages.length, "stored message count");
  out.messages.forEach((got, i) => {
    const want = m.messages[i]!;
    deepStrictEqual(got.body, want.body, `body of message ${i}`);
    deepStrictEqual(got.size, want.body.length, `size of message ${i}`);
    deepStrictEqual(got.envelope.mailFrom, want.from);
    deepStrictEqual(got.envelope.rcptTo, want.to);
    deepStrictEqual(got.envelope.via, want.via);
  });
}

/** A mutation of a wire: flip, drop, insert or duplicate bytes. */
type Mutation = [kind: 0 | 1 | 2 | 3, at: number, len: number, fill: Uint8Array];

function mutate(wire: Uint8Array, mutations: Mutation[]): Uint8Array {
  let w = wire;
  for (const [kind, at, len, fill] of mutations) {
    const pos = w.length === 0 ? 0 : at % (w.length + 1);
    const end = Math.min(w.length, pos + len);
    if (kind === 0 && pos < w.length) {
      w = w.slice();
      w[pos] = w[pos]! ^ (1 + (len % 255));
    } else if (kind === 1) w = concat([w.subarray(0, pos), w.subarray(end)]);
    else if (kind === 2) w = concat([w.subarray(0, pos), fill, w.subarray(pos)]);
    else w = concat([w.subarray(0, end), w.subarray(pos, end), w.subarray(end)]);
  }
  return w;
}

const mutationArb: Arbitrary<Mutation> = fc.tuple(
  fc.constantFrom<0 | 1 | 2 | 3>(0, 1, 2, 3),
  fc.nat(),
  fc.integer({ min: 1, max: 64 }),
  edgyBytes(20),
);

/** Wires of modelled sessions with 1–5 mutations (for the live fuzz). */
export function mutatedWire(): Arbitrary<Uint8Array> {
  return fc.tuple(modelledSession(), fc.array(mutationArb, { minLength: 1, maxLength: 5 }))
    .map(([m, mutations]) => mutate(m.wire, mutations));
}

/** Decisions for pausing events from `bits`: some accepted, some rejected. */
function policyFrom(bits: number) {
  let n = 0;
  const decide = (): Decision => ((bits >> (n++ % 30)) & 1 ? REJECT : null);
  return {
    helo: decide,
    mail: decide,
    rcpt: decide,
    auth: decide,
    messageStart: decide,
    chunkEnd: decide,
    messageEnd: (): Reply => decide() ?? queuedReply(`Q${n}`),
  };
}

/** Figures of one fuzz run. */
export interface FuzzFigures {
  sessions: number;
  modelled: number;
  mutated: number;
  random: number;
  messagesChecked: number;
  ms: number;
}

/**
 * Runs `total` sessions (half modelled, a quarter mutated, a quarter random)
 * in batches; throws fast-check's counterexample on the first failure.
 */
export function fuzzCore(total: number, seed = Date.now() % 2 ** 31): FuzzFigures {
  const started = Date.now();
  const figures: FuzzFigures = {
    sessions: 0,
    modelled: 0,
    mutated: 0,
    random: 0,
    messagesChecked: 0,
    ms: 0,
  };
  const modelledRuns = Math.ceil(total / 2);
  const mutatedRuns = Math.ceil(total / 4);
  const randomRuns = Math.max(0, total - modelledRuns - mutatedRuns);

  fc.assert(
    fc.property(modelledSession(), chunkSizes(), (m, sizes) => {
      checkModelled(m, sizes);
      figures.modelled++;
      figures.messagesChecked += m.messages.length;
    }),
    { numRuns: modelledRuns, seed },
  );
  fc.assert(
    fc.property(
      modelledSession(),
      fc.array(mutationArb, { minLength: 1, maxLength: 5 }),
      chunkSizes(),
      fc.integer({ min: 0, max: 2 ** 30 }),
      (m, mutations, sizes, bits) => {
        const out = run(chunk(mutate(m.wire, mutations), sizes), {
          config: CONFIG,
          policy: policyFrom(bits),
        });
        checkInvariants(out);
        figures.mutated++;
      },
    ),
    { numRuns: mutatedRuns, seed: seed + 1 },
  );
  fc.assert(
    fc.property(
      fc.oneof(smtpInput(), edgyBytes(400)),
      chunkSizes(),
      fc.integer({ min: 0, max: 2 ** 30 }),
      fc.boolean(),
      (input, sizes, bits, tls) => {
        const config = testConfig({ starttls: tls, trustedProxy: !tls, maxSize: 50 });
        const out = run(chunk(input, sizes), { config, policy: policyFrom(bits) });
        checkInvariants(out);
        figures.random++;
      },
    ),
    { numRuns: randomRuns, seed: seed + 2 },
  );
  figures.sessions = figures.modelled + figures.mutated + figures.random;
  figures.ms = Date.now() - started;
  return figures;
}
