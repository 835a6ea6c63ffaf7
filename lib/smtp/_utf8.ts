/**
 * Command-line text for `Session`. A line of well-formed UTF-8 (RFC 3629) is
 * decoded as is. In a malformed one every byte that is not part of a
 * well-formed sequence (stray continuation, overlong form, surrogate, above
 * U+10FFFF, truncated) becomes a lone surrogate U+DC80–U+DCFF, which no
 * grammar accepts: malformed bytes are refused instead of passing as U+FFFD.
 *
 * @module
 */

const FATAL = new TextDecoder("utf-8", { fatal: true });
/** Payload bits of a lead byte with 1, 2 or 3 continuation bytes. */
const LEAD_MASK = [0, 0x1f, 0x0f, 0x07];
/** RFC 3629 §3: the smallest code point of a 2-, 3- and 4-octet sequence (no overlongs). */
const MIN_CODE_POINT = [0, 0x80, 0x800, 0x10000];

/** Decodes a command line; malformed bytes become lone surrogates (see the module doc). */
export function decodeLine(bytes: Uint8Array): string {
  try {
    return FATAL.decode(bytes);
  } catch {
    return decodeEscaped(bytes);
  }
}

/** Decodes well-formed UTF-8; null for anything else. */
export function decodeUtf8Strict(bytes: Uint8Array): string | null {
  try {
    return FATAL.decode(bytes);
  } catch {
    return null;
  }
}

/** Continuation bytes after a lead byte; 0 for a byte that cannot lead (RFC 3629 §3). */
function continuations(lead: number): number {
  if (lead >= 0xc0 && lead < 0xe0) return 1;
  if (lead >= 0xe0 && lead < 0xf0) return 2;
  if (lead >= 0xf0 && lead < 0xf8) return 3;
  return 0;
}

function decodeEscaped(bytes: Uint8Array): string {
  let out = "";
  let i = 0;
  while (i < bytes.length) {
    const lead = bytes[i]!;
    if (lead < 0x80) {
      out += String.fromCharCode(lead);
      i++;
      continue;
    }
    const n = continuations(lead);
    let cp = n === 0 ? -1 : lead & LEAD_MASK[n]!;
    for (let k = 1; k <= n && cp >= 0; k++) {
      const c = bytes[i + k];
      cp = c !== undefined && (c & 0xc0) === 0x80 ? (cp << 6) | (c & 0x3f) : -1;
    }
    if (cp >= MIN_CODE_POINT[n]! && cp <= 0x10ffff && (cp < 0xd800 || cp > 0xdfff)) {
      out += String.fromCodePoint(cp);
      i += n + 1;
    } else {
      out += String.fromCharCode(0xdc00 + lead);
      i++;
    }
  }
  return out;
}

/**
 * Upper-cases `a`–`z` only. SMTP verbs, keywords and mechanism names are ASCII
 * (RFC 5321 §2.4), and `String.prototype.toUpperCase` maps more: `ſ` (U+017F)
 * to `S`, `ı` (U+0131) to `I`, `ﬆ` (U+FB06) to `ST`, so `ſTARTTLS` would run as
 * STARTTLS while a filter in front of the server saw an unknown command.
 */
export function upperAscii(text: string): string {
  return isAscii(text) ? text.toUpperCase() : text.replace(/[a-z]+/g, (m) => m.toUpperCase());
}

/**
 * Lower-cases `A`–`Z` only, for the same reason: `K` (U+212A, Kelvin) would
 * become `k`, so `postmaster@\u212Aexample` would pass for postmaster@kexample.
 */
export function lowerAscii(text: string): string {
  return isAscii(text) ? text.toLowerCase() : text.replace(/[A-Z]+/g, (m) => m.toLowerCase());
}

/** The common case, where the built-in mapping is the ASCII one (and quicker). */
function isAscii(text: string): boolean {
  for (let i = 0; i < text.length; i++) {
    if (text.charCodeAt(i) > 0x7f) return false;
  }
  return true;
}
