/**
 * Every protocol limit of the SMTP core, named, with the section that sets it.
 * Memory held by a session is bounded by these constants, never by input:
 * bodies stream out as `message-data` events.
 *
 * @module
 */

/**
 * RFC 5321 §4.5.3.1.4 sets 512 octets for a command line "including the
 * command word and the <CRLF>"; SPEC §4 raises it to 4096 (long XCLIENT
 * lines), counted the same way: 4094 octets and CRLF. AUTH lines have their own.
 */
export const MAX_COMMAND_LINE_OCTETS = 4096;

/**
 * RFC 4954 §4: servers MUST take SASL responses up to the longest encoded one
 * and should allow 12288 octets per line; this holds for every line of an
 * AUTH exchange, the AUTH command with its initial response included.
 * Longer lines fail the exchange with `500 5.5.6` (RFC 4954 §6).
 */
export const MAX_AUTH_LINE_OCTETS = 12288;

/** RFC 5321 §4.5.3.1.5: a reply line, code and CRLF included, is at most 512 octets. */
export const MAX_REPLY_LINE_OCTETS = 512;

/**
 * SPEC §4: after this many failed (5xx) commands the session ends with
 * `421 4.7.0`. Postfix's `smtpd_hard_error_limit` defaults to 20 as well.
 */
export const MAX_FAILED_COMMANDS = 20;

/** RFC 3461 §4.4: "the ENVID parameter … MUST NOT exceed 100 characters" (xtext form). */
export const MAX_ENVID_OCTETS = 100;

/** RFC 3461 §4.2: the ORCPT parameter "MUST NOT exceed 500 characters" (xtext form). */
export const MAX_ORCPT_OCTETS = 500;

/** RFC 1870 §6: `size-value ::= 1*20DIGIT`. */
export const MAX_SIZE_DIGITS = 20;

/**
 * RFC 3030 §3 allows a BDAT chunk-size of any length. Up to 15 significant
 * digits the value is an exact JavaScript number (below 2^53); a longer one
 * (a petabyte or more, never sent in earnest) counts as 2^53 − 1.
 */
export const EXACT_DIGITS = 15;
