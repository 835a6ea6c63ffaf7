/**
 * The few header fields recorded in the metadata (SPEC §3 `headers`), read
 * from a capped prefix of the message. Pure: no I/O, and no input makes it
 * throw.
 *
 * @module
 */

import type { Meta } from "./meta.ts";
import { concatBytes } from "../bytes.ts";

/** Header names (lower case) → metadata keys. */
const WANTED: ReadonlyMap<string, keyof Meta["headers"]> = new Map([
  ["subject", "subject"],
  ["from", "from"],
  ["to", "to"],
  ["date", "date"],
  ["message-id", "messageId"],
]);

/**
 * RFC 2047 §5 allows encoded-words only in unstructured text and phrases:
 * never in Date or Message-ID, whose values are kept as written.
 */
const DECODED: ReadonlySet<string> = new Set(["subject", "from", "to"]);

/** The longest wanted name ("message-id"): longer names are skipped unread. */
const MAX_WANTED_NAME = 10;
/** Longer decoded values go through `TextDecoder` (`fromCharCode.apply` takes every byte as an argument). */
const MAX_ASCII_FAST = 4096;

/**
 * RFC 2047 §2: `=?charset?encoding?encoded-text?=`. The charset may carry an
 * RFC 2231 §5 language suffix (`utf-8*en`). A match counts only as a whole
 * word ({@linkcode standsAlone}).
 */
const ENCODED_WORD_REGEXP = /=\?([^?\s]+)\?([BbQq])\?([^?\s]*)\?=/g;
/**
 * What may stand next to an encoded-word: RFC 2047 §5 wants it separated
 * from text by whitespace; the RFC 5322 specials (`"(),:;<>`) and the end of
 * the value delimit a word as well (`Re:=?…?=` is common). `abc=?…?=def` is
 * text (§6.1).
 */
const WORD_BOUNDARY_REGEXP = /[\s"(),:;<>]/;
const WSP_ONLY_REGEXP = /^[ \t\r\n]*$/;
const BASE64_REGEXP = /^[A-Za-z0-9+/]*={0,2}$/;

const UTF8_FATAL = new TextDecoder("utf-8", { fatal: true });
const LATIN1 = new TextDecoder("windows-1252");

/**
 * Subject, From, To, Date and Message-ID from the header section of a
 * message: everything before the first empty line, or all of `prefix` when it
 * holds none (a capped prefix of a message with huge headers). Lines may end
 * in CRLF or bare LF. Folded lines are unfolded (RFC 5322 §2.2.3), Subject,
 * From and To are RFC 2047-decoded, values lose the spaces and tabs around
 * them, the first occurrence of a field wins and an absent field has no key.
 *
 * Header bytes are read as UTF-8 (RFC 6532) and, when that is not valid, as
 * Windows-1252 (the usual meaning of raw 8-bit headers).
 *
 * @param prefix The first bytes of the message.
 * @param cut Whether the message goes on past `prefix`: then a field still
 *   open at its end (no empty line yet) is left out, as it may be cut short.
 * @returns The decoded values.
 *
 * @example Usage
 * ```ts
 * import { parseHeaderFields } from "./headers.ts";
 * const bytes = new TextEncoder().encode("Subject: =?utf-8?q?caf=C3=A9?=\r\n\r\nbody");
 * parseHeaderFields(bytes); // { subject: "café" }
 * ```
 */
export function parseHeaderFields(prefix: Uint8Array, cut = false): Meta["headers"] {
  const out: Meta["headers"] = {};
  let current: { name: string; lines: Uint8Array[] } | null = null;
  const finish = (): void => {
    if (current === null) return;
    const key = WANTED.get(current.name);
    if (key !== undefined && out[key] === undefined) {
      // Unfolding removes each CRLF (here: line break) that precedes WSP.
      // Only RFC 5322 WSP goes: String.trim() would also take a U+00A0 or
      // U+3000 that an encoded-word (or raw UTF-8) put there on purpose.
      const raw = trimWsp(decodeBytes(concatBytes(current.lines)));
      out[key] = DECODED.has(current.name) ? decodeRfc2047(raw) : raw;
    }
    current = null;
  };

  let start = 0;
  while (start < prefix.length) {
    let end = prefix.indexOf(0x0a, start);
    const next = end === -1 ? prefix.length : end + 1;
    if (end === -1) end = prefix.length;
    const lineEnd = end > start && prefix[end - 1] === 0x0d ? end - 1 : end;
    const line = prefix.subarray(start, lineEnd);
    start = next;

    if (line.length === 0) { // the empty line ends the header section
      finish();
      return out;
    }
    const first = line[0];
    if (first === 0x20 || first === 0x09) {
      if (current !== null) current.lines.push(line);
      continue;
    }
    finish();
    const colon = line.indexOf(0x3a);
    const name = wantedName(line, colon);
    if (name === null || out[WANTED.get(name)!] !== undefined) continue;
    current = { name, lines: [line.subarray(colon + 1)] };
  }
  // In a cut prefix the last field may go on past its end (or on a folded
  // line after it): a value cut short is left out, not recorded as whole.
  if (!cut) finish();
  return out;
}

const WSP_EDGES_REGEXP = /^[ \t\r\n]+|[ \t\r\n]+$/g;

function trimWsp(s: string): string {
  return s.replace(WSP_EDGES_REGEXP, "");
}

/**
 * Decodes RFC 2047 encoded-words (`B` and `Q`, any charset `TextDecoder`
 * knows). Whitespace between two adjacent encoded-words is dropped (§6.2),
 * and adjacent words in the same charset are decoded together, so a
 * multi-byte character split across them comes out whole. A malformed word
 * (unknown charset, bad base64 or Q escape) is left as it is.
 *
 * @param s An unfolded header value.
 * @returns The decoded text.
 *
 * @example Usage
 * ```ts
 * import { decodeRfc2047 } from "./headers.ts";
 * decodeRfc2047("=?ISO-8859-1?Q?Andr=E9?= Pirard"); // "André Pirard"
 * ```
 */
export function decodeRfc2047(s: string): string {
  if (!s.includes("=?")) return s; // the usual case: no encoded-word at all
  const parts: string[] = [];
  /** Adjacent words in one charset, decoded together when the run ends. */
  let run: { charset: string; chunks: Uint8Array[]; raw: string } | null = null;
  const flush = (): void => {
    if (run === null) return;
    parts.push(decodeCharset(run.charset, concatBytes(run.chunks)) ?? run.raw);
    run = null;
  };

  let last = 0;
  /** Where the previous encoded-word ended: two glued together still count as words. */
  let wordEnd = -1;
  for (const m of s.matchAll(ENCODED_WORD_REGEXP)) {
    const end = m.index + m[0].length;
    if (!standsAlone(s, m.index, end, wordEnd)) continue; // text: kept in `between`
    const between = s.slice(last, m.index);
    last = wordEnd = end;
    const charset = m[1]!.split("*")[0]!.toLowerCase();
    const bytes = isKnownCharset(charset) ? decodeEncodedText(m[2]!, m[3]!) : null;
    if (bytes !== null && run !== null && WSP_ONLY_REGEXP.test(between)) {
      if (run.charset === charset) {
        run.chunks.push(bytes);
        run.raw += between + m[0];
        continue;
      }
      flush(); // §6.2: the whitespace between adjacent encoded-words is dropped
    } else {
      flush();
      parts.push(between);
    }
    if (bytes === null) parts.push(m[0]);
    else run = { charset, chunks: [bytes], raw: m[0] };
  }
  flush();
  parts.push(s.slice(last));
  return parts.join("");
}

/** Whether the match `[start, end)` of `s` is a word of its own (see {@linkcode WORD_BOUNDARY_REGEXP}). */
function standsAlone(s: string, start: number, end: number, wordEnd: number): boolean {
  const before = start === 0 || start === wordEnd || WORD_BOUNDARY_REGEXP.test(s.charAt(start - 1));
  const after = end === s.length || s.startsWith("=?", end) ||
    WORD_BOUNDARY_REGEXP.test(s.charAt(end));
  return before && after;
}

/** The bytes of an encoded-text, or null when malformed. */
function decodeEncodedText(encoding: string, text: string): Uint8Array | null {
  if (encoding === "B" || encoding === "b") {
    // RFC 2047 §4.1 requires padding; many mailers omit it, which is harmless.
    if (!BASE64_REGEXP.test(text) || text.length % 4 === 1) return null;
    const padded = text.replace(/=+$/, "");
    try {
      const binary = atob(padded + "=".repeat((4 - padded.length % 4) % 4));
      return Uint8Array.from(binary, (c) => c.charCodeAt(0));
    } catch {
      return null;
    }
  }
  // RFC 2047 §4.2: "_" is 0x20, "=XX" a hex octet, other printable ASCII itself.
  const out = new Uint8Array(text.length);
  let n = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x5f) {
      out[n++] = 0x20;
    } else if (c === 0x3d) {
      const hex = text.slice(i + 1, i + 3);
      if (!/^[0-9A-Fa-f]{2}$/.test(hex)) return null;
      out[n++] = parseInt(hex, 16);
      i += 2;
    } else if (c > 0x20 && c < 0x7f) {
      out[n++] = c;
    } else {
      return null;
    }
  }
  return out.subarray(0, n);
}

function isKnownCharset(charset: string): boolean {
  try {
    new TextDecoder(charset);
    return true;
  } catch {
    return false;
  }
}

function decodeCharset(charset: string, bytes: Uint8Array): string | null {
  try {
    const decoder = new TextDecoder(charset);
    // RFC 2781 §4.3: UTF-16 without a byte order mark is big-endian (the
    // decoder's "utf-16" is little-endian); with one, the mark decides.
    if (decoder.encoding === "utf-16le" && !/le$/.test(charset) && !startsWith(bytes, 0xff, 0xfe)) {
      return new TextDecoder("utf-16be").decode(bytes);
    }
    return decoder.decode(bytes);
  } catch {
    return null;
  }
}

/**
 * The lower-case name of a wanted field, or null (not a field, or not
 * wanted). RFC 5322 §3.6.8: ftext is %d33-57 / %d59-126; §4.5 (obsolete)
 * allows WSP before the colon. Works on bytes: decoding every header line
 * cost more than the rest of the parse.
 */
function wantedName(line: Uint8Array, colon: number): string | null {
  if (colon < 0) return null;
  let end = colon;
  while (end > 0 && (line[end - 1] === 0x20 || line[end - 1] === 0x09)) end--;
  if (end === 0 || end > MAX_WANTED_NAME) return null;
  let name = "";
  for (let i = 0; i < end; i++) {
    const b = line[i]!;
    if (b < 0x21 || b > 0x7e) return null; // the colon itself cannot occur before `colon`
    name += String.fromCharCode(b >= 0x41 && b <= 0x5a ? b + 0x20 : b);
  }
  return WANTED.has(name) ? name : null;
}

function startsWith(bytes: Uint8Array, a: number, b: number): boolean {
  return bytes.length >= 2 && bytes[0] === a && bytes[1] === b;
}

function isAscii(bytes: Uint8Array): boolean {
  for (let i = 0; i < bytes.length; i++) if (bytes[i]! >= 0x80) return false;
  return true;
}

function decodeBytes(bytes: Uint8Array): string {
  if (bytes.length <= MAX_ASCII_FAST && isAscii(bytes)) {
    return String.fromCharCode.apply(null, bytes as unknown as number[]);
  }
  try {
    return UTF8_FATAL.decode(bytes);
  } catch {
    return LATIN1.decode(bytes);
  }
}
