/**
 * Argument grammar of MAIL, RCPT, VRFY, XCLIENT and XFORWARD: paths, source
 * routes, ESMTP parameters, xtext. The RFC ABNF is quoted above each regex.
 * Functions return the parsed value or the `Reply` that refuses it.
 *
 * @module
 */

import type { Params, Reply } from "./events.ts";
import { decodeUtf8Strict, lowerAscii, upperAscii } from "./_utf8.ts";
import { MAX_ENVID_OCTETS, MAX_ORCPT_OCTETS, MAX_SIZE_DIGITS } from "./limits.ts";
import {
  badAttributeReply,
  badAttributeValueReply,
  badParamReply,
  duplicateParamReply,
  REPLY_BAD_RECIPIENT,
  REPLY_BAD_SENDER,
  REPLY_NEED_SMTPUTF8,
  REPLY_SIZE_EXCEEDED,
  syntaxReply,
  unknownParamReply,
} from "./reply.ts";

// RFC 6531 §3.3 UTF8-non-ascii (RFC 3629 code points: no surrogates, which is how
// `decodeLine` marks malformed bytes).
const UTF8_NON_ASCII = "\\u{80}-\\u{D7FF}\\u{E000}-\\u{10FFFF}";
// RFC 5321 §4.1.2 atext (RFC 5322 §3.2.3), widened by RFC 6531 §3.3 with UTF8-non-ascii.
const ATEXT = `[A-Za-z0-9!#$%&'*+\\-/=?^_\`{|}~${UTF8_NON_ASCII}]`;
// Dot-string = Atom *("." Atom)
const DOT_STRING = `${ATEXT}+(?:\\.${ATEXT}+)*`;
// Quoted-string = DQUOTE *QcontentSMTP DQUOTE
// qtextSMTP = %d32-33 / %d35-91 / %d93-126 ; quoted-pairSMTP = %d92 %d32-126
const QUOTED_STRING =
  `"(?:[\\x20\\x21\\x23-\\x5b\\x5d-\\x7e${UTF8_NON_ASCII}]|\\\\[\\x20-\\x7e])*"`;
// sub-domain = Let-dig [Ldh-str] ; RFC 6531 §3.3 adds U-labels
const LET_DIG = `[A-Za-z0-9${UTF8_NON_ASCII}]`;
const SUB_DOMAIN = `${LET_DIG}(?:[A-Za-z0-9${UTF8_NON_ASCII}-]*${LET_DIG})?`;
// Domain = sub-domain *("." sub-domain)
const DOMAIN = `${SUB_DOMAIN}(?:\\.${SUB_DOMAIN})*`;
// address-literal = "[" ( IPv4-address-literal / IPv6-address-literal / General-address-literal ) "]"
const ADDRESS_LITERAL = "\\[[^\\[\\]\\\\]+\\]";
// Mailbox = Local-part "@" ( Domain / address-literal ) ; Local-part = Dot-string / Quoted-string
const MAILBOX_REGEXP = new RegExp(
  `^(${DOT_STRING}|${QUOTED_STRING})@(${DOMAIN}|${ADDRESS_LITERAL})$`,
  "u",
);
// A-d-l = At-domain *( "," At-domain ) ; At-domain = "@" Domain  (RFC 5321 §4.1.2, obsolete but MUST be accepted)
const SOURCE_ROUTE_REGEXP = new RegExp(`^@${DOMAIN}(?:,@${DOMAIN})*:`, "u");
// IPv4-address-literal = Snum 3("."  Snum)
const IPV4_REGEXP = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/;
// General-address-literal = Standardized-tag ":" 1*dcontent ; dcontent = %d33-90 / %d94-126
const GENERAL_LITERAL_REGEXP = /^[A-Za-z0-9-]*[A-Za-z0-9]:[\x21-\x5a\x5e-\x7e]+$/;
const HEX16_REGEXP = /^[0-9A-Fa-f]{1,4}$/;
// esmtp-keyword = (ALPHA / DIGIT) *(ALPHA / DIGIT / "-")
const ESMTP_KEYWORD_REGEXP = /^[A-Za-z0-9][A-Za-z0-9-]*$/;
// esmtp-value = 1*(%d33-60 / %d62-126) ; RFC 6531 §3.3 adds UTF8-non-ascii
const ESMTP_VALUE_REGEXP = new RegExp(`^[\\x21-\\x3c\\x3e-\\x7e${UTF8_NON_ASCII}]+$`, "u");
// xtext = *( xchar / hexchar ) ; xchar = %d33-42 / %d44-60 / %d62-126 ; hexchar = "+" 2HEXDIG  (RFC 3461 §4)
const XTEXT_REGEXP = /^(?:[\x21-\x2a\x2c-\x3c\x3e-\x7e]|\+[0-9A-Fa-f]{2})*$/;
const XTEXT_UTF8_REGEXP = new RegExp(
  `^(?:[\\x21-\\x2a\\x2c-\\x3c\\x3e-\\x7e${UTF8_NON_ASCII}]|\\+[0-9A-Fa-f]{2})*$`,
  "u",
);
const XTEXT_ENCODER = new TextEncoder();
// RFC 3461 §4.2 addr-type = atom
const ORCPT_REGEXP = /^[A-Za-z0-9!#$%&'*+\-/=?^_`{|}~]+;(.+)$/s;
const NOTIFY_REGEXP = /^(?:NEVER|(?:SUCCESS|FAILURE|DELAY)(?:,(?:SUCCESS|FAILURE|DELAY))*)$/i;
const NON_ASCII_REGEXP = /[\u{80}-\u{10FFFF}]/u;

/** A parsed MAIL FROM. */
export interface MailArgs {
  /** "" for the null reverse-path `<>`. */
  reversePath: string;
  /** Names upper case; keyword values (BODY, RET, NOTIFY) too, the others as sent. */
  params: Params;
  /** RFC 6531: the SMTPUTF8 parameter was given. */
  smtputf8: boolean;
  /** BODY value upper case, "" when absent. */
  body: string;
}

/** A parsed RCPT TO. */
export interface RcptArgs {
  /** The mailbox, source route removed. */
  forwardPath: string;
  /** Names upper case; keyword values (BODY, RET, NOTIFY) too, the others as sent. */
  params: Params;
}

/** True when the text has a character outside US-ASCII (RFC 6531 §3.4). */
export function hasNonAscii(text: string): boolean {
  return NON_ASCII_REGEXP.test(text);
}

/** RFC 5321 §4.1.2 `Mailbox`, with RFC 6531 UTF-8 allowed (the caller checks SMTPUTF8). */
export function isMailbox(text: string): boolean {
  const match = MAILBOX_REGEXP.exec(text);
  if (!match) return false;
  const domain = match[2]!;
  return domain.startsWith("[") ? isAddressLiteral(domain.slice(1, -1)) : true;
}

/** RFC 5321 §4.1.3 address literal, without its brackets. */
function isAddressLiteral(text: string): boolean {
  if (IPV4_REGEXP.test(text)) return isIpv4(text);
  // RFC 5321 §4.1.3: "The "::" represents at least 2 16-bit groups of zeros."
  if (/^IPv6:/i.test(text)) return isIpv6(text.slice(5), 2);
  return GENERAL_LITERAL_REGEXP.test(text);
}

/**
 * RFC 5321 §4.1.3 IPv6-addr: full, compressed (`::`), optionally ending in
 * IPv4. `elided`: how many groups `::` must stand for at least (1 as in
 * RFC 4291 and inet_pton, 2 in RFC 5321's address literals).
 */
function isIpv6(text: string, elided = 1): boolean {
  let body = text;
  let groups = 8;
  const lastColon = text.lastIndexOf(":");
  if (lastColon < 0) return false;
  const tail = text.slice(lastColon + 1);
  if (tail.includes(".")) {
    // IPv6v4-full / IPv6v4-comp: the IPv4 part stands for two groups.
    if (!isIpv4(tail)) return false;
    groups = 6;
    body = text[lastColon - 1] === ":" ? text.slice(0, lastColon + 1) : text.slice(0, lastColon);
  }
  const halves = body.split("::");
  if (halves.length > 2) return false;
  if (halves.length === 1) return countGroups(halves[0]!) === groups;
  const head = countGroups(halves[0]!);
  const rest = countGroups(halves[1]!);
  return head >= 0 && rest >= 0 && head + rest <= groups - elided;
}

function isIpv4(text: string): boolean {
  const v4 = IPV4_REGEXP.exec(text);
  return v4 !== null && v4.slice(1).every((n) => Number(n) <= 255);
}

/** IPv6-hex groups separated by ":"; -1 when one is not 1*4HEXDIG. */
function countGroups(part: string): number {
  if (part === "") return 0;
  const items = part.split(":");
  return items.every((h) => HEX16_REGEXP.test(h)) ? items.length : -1;
}

/**
 * Splits `FROM:<path> params` (or `TO:`): the keyword case-insensitive, spaces
 * after the colon tolerated (Postfix does), angle brackets required.
 *
 * @returns the text inside the brackets and what follows, or null
 */
export function splitPath(
  args: string,
  keyword: "FROM" | "TO",
): { path: string; rest: string } | null {
  if (upperAscii(args.slice(0, keyword.length + 1)) !== `${keyword}:`) return null;
  let i = keyword.length + 1;
  while (args.charCodeAt(i) === 0x20) i++;
  if (args[i] !== "<") return null;
  let quoted = false;
  for (let j = i + 1; j < args.length; j++) {
    const c = args[j];
    if (quoted) {
      if (c === "\\") j++;
      else if (c === '"') quoted = false;
    } else if (c === '"') {
      quoted = true;
    } else if (c === ">") {
      const rest = args.slice(j + 1);
      if (rest !== "" && rest[0] !== " ") return null;
      return { path: args.slice(i + 1, j), rest };
    }
  }
  return null;
}

/** RFC 5321 §4.1.2 Path = "<" [ A-d-l ":" ] Mailbox ">": drops the source route (§C). */
function stripSourceRoute(path: string): string {
  const route = SOURCE_ROUTE_REGEXP.exec(path);
  return route ? path.slice(route[0].length) : path;
}

/** Splits `KEY[=VALUE] …` (RFC 5321 §4.1.2 Mail-parameters); null when a token is malformed. */
function splitParams(rest: string): [string, string | true][] | null {
  const out: [string, string | true][] = [];
  for (const token of rest.split(" ")) {
    if (token === "") continue;
    const eq = token.indexOf("=");
    const name = eq < 0 ? token : token.slice(0, eq);
    if (!ESMTP_KEYWORD_REGEXP.test(name)) return null;
    if (eq < 0) out.push([upperAscii(name), true]);
    else out.push([upperAscii(name), token.slice(eq + 1)]);
  }
  return out;
}

/** RFC 3461 §4 xtext (UTF-8 allowed when SMTPUTF8 is in force, RFC 6533 §3). */
export function isXtext(text: string, utf8 = false): boolean {
  return (utf8 ? XTEXT_UTF8_REGEXP : XTEXT_REGEXP).test(text);
}

/**
 * Decodes RFC 3461 xtext (`+2B` → `+`). A `+XX` is an octet, so `+C3+A9` is
 * the UTF-8 of "é", the same text as a raw "é" under SMTPUTF8.
 *
 * @returns The text; null when it is not xtext or its octets are not UTF-8.
 */
export function decodeXtext(text: string): string | null {
  if (!isXtext(text, true)) return null;
  if (!text.includes("+")) return text;
  const octets: number[] = [];
  for (let i = 0; i < text.length;) {
    if (text[i] === "+") {
      octets.push(parseInt(text.slice(i + 1, i + 3), 16));
      i += 3;
      continue;
    }
    const char = String.fromCodePoint(text.codePointAt(i)!);
    for (const octet of XTEXT_ENCODER.encode(char)) octets.push(octet);
    i += char.length;
  }
  return decodeUtf8Strict(new Uint8Array(octets));
}

type ParamCheck = (value: string | true, utf8: boolean) => boolean;

const MAIL_PARAMS: Record<string, ParamCheck> = {
  // RFC 1870 §6: size-value = 1*20DIGIT; leading zeros allowed, 20 nines is just "too big"
  SIZE: (v) => v !== true && v.length <= MAX_SIZE_DIGITS && /^\d+$/.test(v),
  // RFC 6152 §2, RFC 3030 §3
  BODY: (v) => v !== true && /^(?:7BIT|8BITMIME|BINARYMIME)$/i.test(v),
  // RFC 6531 §3.4: no value
  SMTPUTF8: (v) => v === true,
  // RFC 3461 §4.3
  RET: (v) => v !== true && /^(?:FULL|HDRS)$/i.test(v),
  // RFC 3461 §4.4
  ENVID: (v, u) => v !== true && v.length <= MAX_ENVID_OCTETS && isXtext(v, u),
  // RFC 4954 §5: AUTH=xtext / "<>"
  AUTH: (v, u) => v !== true && (v === "<>" || isXtext(v, u)),
};

const RCPT_PARAMS: Record<string, ParamCheck> = {
  // RFC 3461 §4.1
  NOTIFY: (v) => v !== true && NOTIFY_REGEXP.test(v),
  // RFC 3461 §4.2: addr-type ";" xtext
  ORCPT: (v, u) => {
    if (v === true || v.length > MAX_ORCPT_OCTETS) return false;
    const match = ORCPT_REGEXP.exec(v);
    return match !== null && isXtext(match[1]!, u);
  },
};

/**
 * Parameters whose values are keywords, case-insensitive to SMTP: recorded
 * upper case (`body=8bitmime` as `8BITMIME`), so readers compare them as
 * SPEC §3 shows them. ENVID, ORCPT and AUTH= keep what the client sent.
 */
const KEYWORD_VALUES: ReadonlySet<string> = new Set(["BODY", "RET", "NOTIFY"]);

/** Checks a parameter list against a table; returns the params or the refusal. */
function checkParams(
  rest: string,
  table: Record<string, ParamCheck>,
  utf8: (list: [string, string | true][]) => boolean,
): Params | Reply {
  const list = splitParams(rest);
  if (list === null) return syntaxReply("parameters must be KEYWORD[=VALUE]");
  const smtputf8 = utf8(list);
  const params: Params = {};
  for (const [name, value] of list) {
    const check = Object.hasOwn(table, name) ? table[name] : undefined;
    if (!check) return unknownParamReply(name);
    if (Object.hasOwn(params, name)) return duplicateParamReply(name);
    if (value !== true && !ESMTP_VALUE_REGEXP.test(value)) return badParamReply(name);
    if (!check(value, smtputf8)) return badParamReply(name);
    params[name] = value !== true && KEYWORD_VALUES.has(name) ? upperAscii(value) : value;
  }
  return params;
}

/**
 * Parses the arguments of MAIL (`FROM:<a@b> SIZE=10 BODY=8BITMIME`).
 *
 * @returns the reverse-path and params, or the reply refusing them
 */
export function parseMailArgs(args: string, maxSize: number): MailArgs | Reply {
  const split = splitPath(args, "FROM");
  if (!split) return syntaxReply("MAIL FROM:<address>");
  const reversePath = split.path === "" ? "" : stripSourceRoute(split.path);
  // Only `<>` is the null path: `<@a,@b:>` is a route to no mailbox (RFC 5321 §4.1.2).
  if (split.path !== "" && !isMailbox(reversePath)) return REPLY_BAD_SENDER;
  const params = checkParams(split.rest, MAIL_PARAMS, (l) => l.some(([n]) => n === "SMTPUTF8"));
  if (isRefusal(params)) return params;
  const smtputf8 = params["SMTPUTF8"] === true;
  if (!smtputf8 && hasNonAscii(reversePath)) return REPLY_NEED_SMTPUTF8;
  const size = params["SIZE"];
  if (typeof size === "string" && Number(size) > maxSize) return REPLY_SIZE_EXCEEDED;
  const body = params["BODY"];
  return {
    reversePath,
    params,
    smtputf8,
    body: typeof body === "string" ? body : "", // upper case already (KEYWORD_VALUES)
  };
}

/**
 * Parses the arguments of RCPT (`TO:<b@c> NOTIFY=NEVER`); `<postmaster>` in any
 * case needs no domain (RFC 5321 §4.1.1.3), a source route is dropped.
 *
 * @param smtputf8 the transaction declared SMTPUTF8 (RFC 6531 §3.4)
 */
export function parseRcptArgs(args: string, smtputf8: boolean): RcptArgs | Reply {
  const split = splitPath(args, "TO");
  if (!split) return syntaxReply("RCPT TO:<address>");
  const forwardPath = parseRecipient(split.path);
  if (forwardPath === null) return REPLY_BAD_RECIPIENT;
  const params = checkParams(split.rest, RCPT_PARAMS, () => smtputf8);
  if (isRefusal(params)) return params;
  if (!smtputf8 && hasNonAscii(forwardPath)) return REPLY_NEED_SMTPUTF8;
  return { forwardPath, params };
}

/** A recipient: mailbox, source-routed mailbox or `postmaster`; null when malformed. */
export function parseRecipient(path: string): string | null {
  if (lowerAscii(path) === "postmaster") return path;
  const mailbox = stripSourceRoute(path);
  return isMailbox(mailbox) ? mailbox : null;
}

/** XCLIENT_README / XFORWARD_README ADDR: IPv4, or IPv6 tagged `IPV6:` (untagged too, as Postfix takes). */
function isClientAddress(value: string): boolean {
  if (/^ipv6:/i.test(value)) return isIpv6(value.slice(5));
  return isIpv4(value) || isIpv6(value);
}

/** A TCP port in decimal, 0-65535. */
function isPort(value: string): boolean {
  return /^\d{1,5}$/.test(value) && Number(value) <= 65535;
}

/** The values Postfix's smtpd checks (`501 5.5.4 Bad … syntax`); the others are free text. */
const ATTRIBUTE_CHECKS: Record<"XCLIENT" | "XFORWARD", Record<string, (v: string) => boolean>> = {
  // XCLIENT_README: PROTO is SMTP or ESMTP (Postfix compares case-insensitively).
  XCLIENT: { ADDR: isClientAddress, PORT: isPort, PROTO: (v) => /^E?SMTP$/i.test(v) },
  // XFORWARD_README: PROTO "may be an SMTP or non-SMTP protocol name of up to 64 characters".
  XFORWARD: { ADDR: isClientAddress, PORT: isPort, PROTO: (v) => v.length <= 64 },
};

/**
 * Parses `KEY=xtext …` of XCLIENT/XFORWARD (Postfix XCLIENT_README and
 * XFORWARD_README): names case-insensitive, values xtext-decoded;
 * `[UNAVAILABLE]` and `[TEMPUNAVAIL]` mean unknown and yield `null`; ADDR,
 * PORT and PROTO are checked as Postfix does.
 */
export function parseAttributes(
  verb: "XCLIENT" | "XFORWARD",
  args: string,
  allowed: readonly string[],
): Record<string, string | null> | Reply {
  const out: Record<string, string | null> = {};
  const tokens = args.split(" ").filter((t) => t !== "");
  if (tokens.length === 0) return syntaxReply(`${verb} ${allowed.join("=... ")}=...`);
  for (const token of tokens) {
    const eq = token.indexOf("=");
    const name = upperAscii(eq < 0 ? token : token.slice(0, eq));
    if (eq < 0 || !allowed.includes(name)) return badAttributeReply(verb, token);
    const value = decodeXtext(token.slice(eq + 1));
    // Postfix: "attribute=value expected"; an empty value is not one.
    if (value === null || value === "") return badAttributeReply(verb, token);
    const upper = upperAscii(value);
    if (upper === "[UNAVAILABLE]" || upper === "[TEMPUNAVAIL]") {
      out[name] = null;
      continue;
    }
    const check = ATTRIBUTE_CHECKS[verb][name];
    if (check && !check(value)) return badAttributeValueReply(verb, token);
    out[name] = value;
  }
  return out;
}

/** Narrows a grammar result: true when parsing failed with a reply. */
export function isRefusal<T extends object>(value: T | Reply): value is Reply {
  return typeof (value as Reply).code === "number" && "enhanced" in value;
}
