/**
 * A command line split into its verb and arguments. Only splitting happens
 * here; each verb's argument grammar lives in `grammar.ts`, `sasl.ts` and
 * `bdat_decoder.ts`.
 *
 * @module
 */

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
  const verb = (sp < 0 ? line : line.slice(0, sp)).toUpperCase();
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
 * is a secret (RFC 4954 §4), so `AUTH PLAIN dGVzdA==` becomes `AUTH PLAIN ***`.
 */
export function redactCommand(line: string, command: Command | null): string {
  if (command?.verb !== "AUTH") return line;
  const parts = command.args.split(" ").filter((p) => p !== "");
  if (parts.length < 2) return line;
  return `${line.slice(0, line.indexOf(" "))} ${parts[0]} ***`;
}
