/**
 * Drives a `Session` in memory, like h11's `tests/test_io.py` `tr()`: feed
 * wire bytes (whole, byte by byte, with trailing bytes), auto-resume every
 * pause with a policy, collect replies and stored messages.
 *
 * @module
 */

import { deepStrictEqual } from "node:assert/strict";
import { Session } from "../../lib/smtp/session.ts";
import type {
  Decision,
  Envelope,
  Reply,
  SessionConfig,
  SessionEvent,
} from "../../lib/smtp/events.ts";
import { queuedReply } from "../../lib/smtp/reply.ts";

const ENCODER = new TextEncoder();
const DECODER = new TextDecoder();

/** A session configuration for tests; small limits so they are easy to hit. */
export function testConfig(overrides: Partial<SessionConfig> = {}): SessionConfig {
  return {
    hostname: "mx.test",
    maxSize: 1000,
    maxRecipients: 3,
    starttls: true,
    tlsActive: false,
    requireTls: false,
    requireAuth: false,
    authMechanisms: ["PLAIN", "LOGIN", "CRAM-MD5"],
    trustedProxy: false,
    acceptRcpt: [],
    cramChallenge: () => "<1896.697170952@mx.test>",
    transcript: false,
    ...overrides,
  };
}

/** Answers to pausing events; absent members accept. */
export interface Policy {
  helo?: (verb: "HELO" | "EHLO", domain: string) => Decision;
  mail?: (reversePath: string) => Decision;
  rcpt?: (forwardPath: string) => Decision;
  auth?: (username: string, password: string | undefined) => Decision;
  messageStart?: (via: "DATA" | "BDAT") => Decision;
  /** A BDAT chunk without LAST is in; default `null` (250). */
  chunkEnd?: (size: number) => Decision;
  /** Default: `250 2.0.0 Ok: queued as Q<n>` with n counting from 1. */
  messageEnd?: (envelope: Envelope, size: number) => Reply;
}

/** A message the session handed over with `message-end`. */
export interface StoredMessage {
  envelope: Envelope;
  size: number;
  body: Uint8Array;
  /** `body` decoded as UTF-8, for readable assertions. */
  text: string;
}

/** Everything one run produced. */
export interface Outcome {
  /** Each reply event as wire text without its final CRLF. */
  replies: string[];
  messages: StoredMessage[];
  aborts: string[];
  transcript: string[];
  /** Every event except `need-data`, in order. */
  events: SessionEvent[];
  closed: boolean;
  session: Session;
}

/** Bytes of a string (UTF-8). */
export function bytes(text: string): Uint8Array {
  return ENCODER.encode(text);
}

/** Concatenates byte arrays. */
export function concat(parts: Uint8Array[]): Uint8Array {
  let length = 0;
  for (const p of parts) length += p.length;
  const out = new Uint8Array(length);
  let offset = 0;
  for (const p of parts) {
    out.set(p, offset);
    offset += p.length;
  }
  return out;
}

/** Runs a session over `chunks`, auto-resuming pauses; each chunk is a fresh array. */
export function run(
  chunks: Uint8Array[],
  options: { config?: SessionConfig; policy?: Policy } = {},
): Outcome {
  const session = new Session(options.config ?? testConfig());
  const outcome: Outcome = {
    replies: [],
    messages: [],
    aborts: [],
    transcript: [],
    events: [],
    closed: false,
    session,
  };
  const state = { body: [] as Uint8Array[], queued: 0 };
  for (const chunk of chunks) {
    if (outcome.closed) break;
    session.receive(chunk.slice());
    drain(session, options.policy ?? {}, outcome, state);
  }
  return outcome;
}

/** Calls `next()` until `need-data` (bounded), answering every pause. */
export function drain(
  session: Session,
  policy: Policy,
  outcome: Outcome,
  state: { body: Uint8Array[]; queued: number },
): void {
  for (let guard = 0; guard < 1_000_000; guard++) {
    const event = session.next();
    if (event.type === "need-data") return;
    outcome.events.push(event);
    switch (event.type) {
      case "paused":
        throw new Error("Session paused after its pausing event was answered");
      case "reply":
        outcome.replies.push(DECODER.decode(event.bytes).replace(/\r\n$/, ""));
        break;
      case "close":
        outcome.closed = true;
        return;
      case "transcript":
        outcome.transcript.push(event.line);
        break;
      case "helo":
        session.resumeHelo(policy.helo?.(event.verb, event.domain) ?? null);
        break;
      case "mail":
        session.resumeMail(policy.mail?.(event.reversePath) ?? null);
        break;
      case "rcpt":
        session.resumeRcpt(policy.rcpt?.(event.forwardPath) ?? null);
        break;
      case "auth":
        session.resumeAuth(policy.auth?.(event.username, event.password) ?? null);
        break;
      case "message-start":
        state.body = [];
        session.resumeMessageStart(policy.messageStart?.(event.via) ?? null);
        break;
      case "message-data":
        // Copy: the session hands out views of its input.
        state.body.push(event.bytes.slice());
        break;
      case "chunk-end":
        session.resumeChunkEnd(policy.chunkEnd?.(event.size) ?? null);
        break;
      case "message-end": {
        const body = concat(state.body);
        state.body = [];
        outcome.messages.push({
          envelope: event.envelope,
          size: event.size,
          body,
          text: DECODER.decode(body),
        });
        state.queued++;
        session.resumeMessageEnd(
          policy.messageEnd?.(event.envelope, event.size) ?? queuedReply(`Q${state.queued}`),
        );
        break;
      }
      case "message-abort":
        state.body = [];
        outcome.aborts.push(event.reason);
        break;
      case "starttls":
        session.resumeTls();
        break;
      case "xclient":
        break;
      default: {
        const unhandled: never = event;
        throw new Error(`Unhandled event ${JSON.stringify(unhandled)}`);
      }
    }
  }
  throw new Error("Session produced events without end");
}

/** Splits `data` into pieces of the given sizes (cycled), then the rest. */
export function chunk(data: Uint8Array, sizes: number[]): Uint8Array[] {
  const out: Uint8Array[] = [];
  let offset = 0;
  for (let i = 0; offset < data.length; i++) {
    const size = Math.max(1, sizes.length === 0 ? data.length : sizes[i % sizes.length]!);
    out.push(data.subarray(offset, offset + size));
    offset += size;
  }
  return out;
}

/** What a `tr()` case must produce. */
export interface Expected {
  replies: string[];
  /** Bodies of the stored messages, as text. */
  messages?: string[];
  aborts?: string[];
}

/**
 * Feeds `input` whole, byte by byte, and followed by the trailing bytes of an
 * unfinished command; each run must produce exactly `expected`, and the
 * trailing bytes must still be pending. The greeting is not included.
 *
 * @returns the outcome of the whole-input run
 */
export function tr(
  input: string | Uint8Array,
  expected: Expected,
  options: { config?: SessionConfig; policy?: Policy; trailing?: boolean } = {},
): Outcome {
  const data = typeof input === "string" ? bytes(input) : input;
  const whole = run([data], options);
  check(whole, expected, "whole");
  check(run(chunk(data, [1]), options), expected, "byte by byte");
  if (options.trailing !== false) {
    const trailing = bytes("NOOP");
    const withTrailing = run([data, trailing], options);
    check(withTrailing, expected, "with trailing bytes");
    if (!withTrailing.closed) {
      deepStrictEqual(
        DECODER.decode(withTrailing.session.pending()),
        "NOOP",
        "trailing bytes pending",
      );
    }
  }
  return whole;
}

function check(outcome: Outcome, expected: Expected, how: string): void {
  deepStrictEqual(outcome.replies, expected.replies, `replies (${how})`);
  if (expected.messages) {
    deepStrictEqual(outcome.messages.map((m) => m.text), expected.messages, `messages (${how})`);
  }
  if (expected.aborts) deepStrictEqual(outcome.aborts, expected.aborts, `aborts (${how})`);
}
