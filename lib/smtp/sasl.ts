/**
 * SASL exchanges of AUTH (RFC 4954): PLAIN (RFC 4616), LOGIN
 * (draft-murchison-sasl-login) and CRAM-MD5 (RFC 2195). This file only
 * decodes what the client sent; checking secrets is the server's business.
 *
 * @module
 */

import type { AuthMechanism, Reply } from "./events.ts";
import {
  challengeReply,
  REPLY_AUTH_BAD_BASE64,
  REPLY_AUTH_CANCELLED,
  REPLY_AUTH_MALFORMED,
  syntaxReply,
} from "./reply.ts";

/** What the client claimed; PLAIN/LOGIN carry `password`, CRAM-MD5 `challenge` and `digest`. */
export interface SaslCredentials {
  /** The mechanism used. */
  mechanism: AuthMechanism;
  /** PLAIN authcid, LOGIN user name, CRAM-MD5 user. */
  username: string;
  /** PLAIN only, when the client asked to act as someone (RFC 4616 §2); absent when empty. */
  authzid?: string;
  /** PLAIN and LOGIN only. */
  password?: string;
  /** CRAM-MD5 only: the challenge that was sent, before base64. */
  challenge?: string;
  /** CRAM-MD5 only: the lower-case hex HMAC-MD5 the client computed. */
  digest?: string;
}

/** The outcome of one step of an exchange. */
export type SaslStep =
  /** Send this `334` reply and pass the client's next line to `respond`. */
  | { type: "challenge"; reply: Reply }
  /** The exchange is complete. */
  | { type: "credentials"; credentials: SaslCredentials }
  /** The exchange failed (cancelled or malformed): send this reply. */
  | { type: "failed"; reply: Reply };

const BASE64_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
const BASE64_INDEX: Int8Array = (() => {
  const index = new Int8Array(128).fill(-1);
  for (let i = 0; i < BASE64_ALPHABET.length; i++) index[BASE64_ALPHABET.charCodeAt(i)] = i;
  return index;
})();
const UTF8 = new TextDecoder("utf-8", { fatal: true });
const ENCODER = new TextEncoder();
// RFC 2195 §2: the digest is 16 octets "represented as a sequence of hexadecimal digits".
const CRAM_DIGEST_REGEXP = /^[0-9A-Fa-f]{32}$/;
/** draft-murchison-sasl-login §2: the prompts, base64 of "Username:" and "Password:". */
const LOGIN_USERNAME_PROMPT = "VXNlcm5hbWU6";
const LOGIN_PASSWORD_PROMPT = "UGFzc3dvcmQ6";

/**
 * Strict RFC 4648 §4 base64: padded to a multiple of 4, no whitespace.
 *
 * @returns the bytes, or null when `text` is not base64
 */
export function decodeBase64(text: string): Uint8Array | null {
  if (text.length % 4 !== 0) return null;
  const pad = text.endsWith("==") ? 2 : text.endsWith("=") ? 1 : 0;
  const out = new Uint8Array((text.length / 4) * 3 - pad);
  let o = 0;
  for (let i = 0; i < text.length; i += 4) {
    let quad = 0;
    for (let k = 0; k < 4; k++) {
      const c = text.charCodeAt(i + k);
      const isPad = i + 4 === text.length && k >= 4 - pad;
      const v = isPad ? 0 : c < 128 ? BASE64_INDEX[c]! : -1;
      if (v < 0) return null;
      quad = (quad << 6) | v;
    }
    if (o < out.length) out[o++] = quad >> 16;
    if (o < out.length) out[o++] = (quad >> 8) & 0xff;
    if (o < out.length) out[o++] = quad & 0xff;
  }
  return out;
}

/** RFC 4648 §4 base64 of the UTF-8 of `text`. */
export function encodeBase64(text: string): string {
  const bytes = ENCODER.encode(text);
  let out = "";
  for (let i = 0; i < bytes.length; i += 3) {
    const n = bytes.length - i;
    const quad = (bytes[i]! << 16) | ((bytes[i + 1] ?? 0) << 8) | (bytes[i + 2] ?? 0);
    out += BASE64_ALPHABET[quad >> 18]! + BASE64_ALPHABET[(quad >> 12) & 63]!;
    out += n > 1 ? BASE64_ALPHABET[(quad >> 6) & 63]! : "=";
    out += n > 2 ? BASE64_ALPHABET[quad & 63]! : "=";
  }
  return out;
}

function decodeUtf8(bytes: Uint8Array): string | null {
  try {
    return UTF8.decode(bytes);
  } catch {
    return null;
  }
}

const CANCELLED: SaslStep = { type: "failed", reply: REPLY_AUTH_CANCELLED };
const BAD_BASE64: SaslStep = { type: "failed", reply: REPLY_AUTH_BAD_BASE64 };
const MALFORMED: SaslStep = { type: "failed", reply: REPLY_AUTH_MALFORMED };

/**
 * One AUTH exchange. `start` takes the initial response (RFC 4954 §4: `=`
 * means an empty one), `respond` each later client line; `*` cancels.
 *
 * @example Usage
 * ```ts
 * import { SaslExchange } from "./sasl.ts";
 * const sasl = new SaslExchange("PLAIN", () => "");
 * sasl.start("AGJvYgBzZWNyZXQ="); // credentials: bob / secret
 * ```
 */
export class SaslExchange {
  #mechanism: AuthMechanism;
  #cramChallenge: () => string;
  #username: string | null = null;
  #challenge = "";

  /**
   * Starts nothing yet; `start` sends the first challenge.
   *
   * @param cramChallenge source of the CRAM-MD5 challenge (kept outside so the core stays pure)
   */
  constructor(mechanism: AuthMechanism, cramChallenge: () => string) {
    this.#mechanism = mechanism;
    this.#cramChallenge = cramChallenge;
  }

  /** Begins the exchange; `initial` is the initial response as sent, or null. */
  start(initial: string | null): SaslStep {
    switch (this.#mechanism) {
      case "PLAIN":
        return initial === null
          ? { type: "challenge", reply: challengeReply("") }
          : this.#plain(initial === "=" ? "" : initial);
      case "LOGIN":
        return initial === null
          ? { type: "challenge", reply: challengeReply(LOGIN_USERNAME_PROMPT) }
          : this.#login(initial === "=" ? "" : initial);
      case "CRAM-MD5":
        // RFC 2195 has no initial response: the server speaks first.
        if (initial !== null) return { type: "failed", reply: syntaxReply("AUTH CRAM-MD5") };
        this.#challenge = this.#cramChallenge();
        return { type: "challenge", reply: challengeReply(encodeBase64(this.#challenge)) };
      default: {
        const unknown: never = this.#mechanism;
        throw new Error(`Unhandled mechanism ${unknown}`);
      }
    }
  }

  /** Takes the client's answer to the last challenge (a line without CRLF). */
  respond(line: string): SaslStep {
    // RFC 4954 §4: "*" cancels the exchange.
    if (line === "*") return CANCELLED;
    switch (this.#mechanism) {
      case "PLAIN":
        return this.#plain(line);
      case "LOGIN":
        return this.#login(line);
      case "CRAM-MD5":
        return this.#cram(line);
      default: {
        const unknown: never = this.#mechanism;
        throw new Error(`Unhandled mechanism ${unknown}`);
      }
    }
  }

  /** RFC 4616 §2: message = [authzid] UTF8NUL authcid UTF8NUL passwd. */
  #plain(encoded: string): SaslStep {
    const bytes = decodeBase64(encoded);
    if (!bytes) return BAD_BASE64;
    const text = decodeUtf8(bytes);
    if (text === null) return MALFORMED;
    const parts = text.split("\0");
    if (parts.length !== 3 || parts[1] === "" || parts[2] === "") return MALFORMED;
    const credentials: SaslCredentials = {
      mechanism: "PLAIN",
      username: parts[1]!,
      password: parts[2]!,
    };
    if (parts[0] !== "") credentials.authzid = parts[0]!;
    return { type: "credentials", credentials };
  }

  /** LOGIN: the user name, then the password, each base64 on its own line. */
  #login(encoded: string): SaslStep {
    const bytes = decodeBase64(encoded);
    if (!bytes) return BAD_BASE64;
    const text = decodeUtf8(bytes);
    if (text === null) return MALFORMED;
    if (this.#username === null) {
      if (text === "") return MALFORMED;
      this.#username = text;
      return { type: "challenge", reply: challengeReply(LOGIN_PASSWORD_PROMPT) };
    }
    return {
      type: "credentials",
      credentials: { mechanism: "LOGIN", username: this.#username, password: text },
    };
  }

  /** RFC 2195 §2: the response is the user name, a space and the hex HMAC-MD5 digest. */
  #cram(encoded: string): SaslStep {
    const bytes = decodeBase64(encoded);
    if (!bytes) return BAD_BASE64;
    const text = decodeUtf8(bytes);
    if (text === null) return MALFORMED;
    const sp = text.lastIndexOf(" ");
    const digest = text.slice(sp + 1);
    if (sp <= 0 || !CRAM_DIGEST_REGEXP.test(digest)) return MALFORMED;
    return {
      type: "credentials",
      credentials: {
        mechanism: "CRAM-MD5",
        username: text.slice(0, sp),
        challenge: this.#challenge,
        digest: digest.toLowerCase(),
      },
    };
  }
}

/** True for a mechanism name this core implements (names are case-insensitive, RFC 4422 §3.1). */
export function isMechanism(name: string): name is AuthMechanism {
  return name === "PLAIN" || name === "LOGIN" || name === "CRAM-MD5";
}
