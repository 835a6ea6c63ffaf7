/**
 * A command line split into its verb and arguments. Only splitting happens
 * here; each verb's argument grammar lives in `grammar.ts`, `sasl.ts` and
 * `bdat_decoder.ts`.
 *
 * @module
 */

import { upperAscii } from "./_utf8.ts";

/** Verbs smtpd implements, upper case as on the wire. */
export type Verb =
  | "HELO"
  | "EHLO"
  | "MAIL"
  | "RCPT"
  | "DATA"
  | "BDAT"
  | "RSET"
  | "NOOP"
  | "QUIT"
  | "VRFY"
  | "EXPN"
  | "HELP"
  | "STARTTLS"
  | "AUTH"
  | "XCLIENT"
  | "XFORWARD";

const VERBS: ReadonlySet<string> = new Set<Verb>([
  "HELO",
  "EHLO",
  "MAIL",
  "RCPT",
  "DATA",
  "BDAT",
  "RSET",
  "NOOP",
  "QUIT",
  "VRFY",
  "EXPN",
  "HELP",
  "STARTTLS",
  "AUTH",
  "XCLIENT",
  "XFORWARD",
]);

/** A recognised command: `args` is everything after the first SP, leading spaces removed. */
export interface Command {
  /** Upper case. */
  verb: Verb;
  /** Everything after the verb, without surrounding spaces. */
  args: string;
}

/**
 * Splits a command line (without CRLF). The verb ends at the first SP and may
 * have any length (RFC 5321 §4.1.1: verbs are not limited to four letters, e.g.
 * `STARTTLS`, `XFORWARD`); it is case-insensitive (§2.4). Trailing spaces are
 * dropped, so `RSET ` counts as `RSET` without argument (Postfix does the same).
 *
 * @returns the command, or `null` for an unknown verb
 *
 * @example Usage
 * ```ts
 * import { parseCommand } from "./command.ts";
 * parseCommand("mail FROM:<a@b> SIZE=10"); // { verb: "MAIL", args: "FROM:<a@b> SIZE=10" }
 * parseCommand("WIZ"); // null
 * ```
 */
export function parseCommand(line: string): Command | null {
  const sp = line.indexOf(" ");
  const verb = upperAscii(sp < 0 ? line : line.slice(0, sp));
  if (!VERBS.has(verb)) return null;
  const args = sp < 0 ? "" : trimSpaces(line.slice(sp + 1));
  return { verb: verb as Verb, args };
}

/** Strips leading and trailing SP only (a tab or CR is part of the argument). */
function trimSpaces(text: string): string {
  let start = 0;
  let end = text.length;
  while (start < end && text.charCodeAt(start) === 0x20) start++;
  while (end > start && text.charCodeAt(end - 1) === 0x20) end--;
  return text.slice(start, end);
}

/**
 * The command line as the debug transcript shows it: an AUTH initial response
 * is a secret (RFC 4954 §4), so `AUTH PLAIN dGVzdA==` becomes `AUTH PLAIN ***`,
 * also when a tab makes the line an unknown command. A line that follows an
 * AUTH without being a command (`afterAuth`) is the client's next SASL
 * response, sent before it saw the AUTH fail: all of it is hidden.
 *
 * @param line The received line.
 * @param command Its parse, or null for an unknown verb.
 * @param afterAuth Whether the previous line was an AUTH and no command came since.
 * @returns What the transcript may show.
 */
export function redactCommand(line: string, command: Command | null, afterAuth = false): string {
  if (command === null && afterAuth) return "***";
  if (!isAuthLine(line, command)) return line;
  // `AUTH:PLAIN <secret>`, ` AUTH …`: no telling its words apart, so none shows.
  if (command === null && !AUTH_BLANK_REGEXP.test(line)) return "AUTH ***";
  const parts = line.split(/[ \t]+/).filter((p) => p !== "");
  // Only a word that can be a mechanism name shows: `AUTH PLAIN=<base64>` hides all.
  const mechanism = parts[1] === undefined || SASL_MECH_REGEXP.test(parts[1]) ? parts[1] : "***";
  const secret = parts.length > 2 ? " ***" : "";
  return mechanism === undefined ? parts[0]! : `${parts[0]} ${mechanism}${secret}`;
}

/** RFC 4422 §3.1: a mechanism name is 1 to 20 of A-Z, 0-9, "-" and "_" (any case here). */
const SASL_MECH_REGEXP = /^[A-Za-z0-9_-]{1,20}$/;

/**
 * Anything that reads as AUTH but for its separator (a tab, `=`, `:`, a
 * leading space): parseCommand splits on SP only, and such a line may still
 * carry credentials.
 */
const AUTH_LIKE_REGEXP = /^\s*auth(?![a-z0-9])/i;
/** AUTH and a blank: its words can be told apart (mechanism, then the response). */
const AUTH_BLANK_REGEXP = /^auth[ \t]/i;

/**
 * Whether a line is an AUTH command, or would be but for a tab.
 *
 * @param line The received line.
 * @param command Its parse, or null for an unknown verb.
 * @returns True for an AUTH line.
 */
export function isAuthLine(line: string, command: Command | null): boolean {
  return command === null ? AUTH_LIKE_REGEXP.test(line) : command.verb === "AUTH";
}
