/**
 * Parsers for the SPEC §2 value syntaxes shared by flags, `--fault` rules and
 * the library: durations (`250ms`, `30s`, `5m`, `1h`) and sizes (`10MB`,
 * `1MiB`, plain bytes). Pure.
 *
 * @module
 */

import { isIPv6 } from "node:net";

const DURATION_REGEXP = /^(\d+(?:\.\d+)?)(ms|s|m|h)$/;
const DURATION_UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/**
 * Parses a duration into milliseconds. A bare `0` needs no unit: it is 0 in
 * every unit (`wait --timeout 0` looks once).
 *
 * @example Usage
 * ```ts
 * import { parseDuration } from "./units.ts";
 * parseDuration("250ms"); // 250
 * parseDuration("5m"); // 300000
 * parseDuration("0"); // 0
 * ```
 */
export function parseDuration(text: string): number {
  if (text.trim() === "0") return 0;
  const match = DURATION_REGEXP.exec(text.trim());
  if (!match) {
    throw new SyntaxError(`Cannot parse "${text}": expected a duration like 250ms, 30s, 5m or 1h`);
  }
  const ms = Math.round(Number(match[1]) * DURATION_UNITS[match[2]!]!);
  if (!Number.isSafeInteger(ms)) throw new RangeError(`Cannot use "${text}": duration too large`);
  return ms;
}

/**
 * The longest delay a timer takes: `setTimeout` stores it in a signed 32-bit
 * integer, and a longer one (~596 h) fires after 1 ms with a
 * `TimeoutOverflowWarning` on stderr.
 */
export const MAX_TIMER_MS = 2 ** 31 - 1;

/**
 * A user's duration as a timer delay: clamped to {@linkcode MAX_TIMER_MS},
 * since a longer limit means "practically never", not "at once".
 *
 * @example Usage
 * ```ts
 * import { timerDelay } from "./units.ts";
 * timerDelay(1000 * 3_600_000); // 2147483647
 * ```
 */
export function timerDelay(ms: number): number {
  return Math.min(ms, MAX_TIMER_MS);
}

const SIZE_REGEXP = /^(\d+(?:\.\d+)?)\s*([KMG]i?B|B)?$/i;
const SIZE_UNITS: Record<string, number> = {
  B: 1,
  KB: 1e3,
  MB: 1e6,
  GB: 1e9,
  KIB: 1024,
  MIB: 1024 ** 2,
  GIB: 1024 ** 3,
};

/**
 * Parses a size into bytes: `10MB` is 10^7, `1MiB` is 2^20, `123` is bytes.
 *
 * @example Usage
 * ```ts
 * import { parseSize } from "./units.ts";
 * parseSize("1MiB"); // 1048576
 * ```
 */
export function parseSize(text: string): number {
  const match = SIZE_REGEXP.exec(text.trim());
  if (!match) {
    throw new SyntaxError(
      `Cannot parse "${text}": expected bytes, KB, MB, GB, KiB, MiB or GiB`,
    );
  }
  const bytes = Math.floor(Number(match[1]) * SIZE_UNITS[(match[2] ?? "B").toUpperCase()]!);
  if (!Number.isSafeInteger(bytes)) throw new RangeError(`Cannot use "${text}": size too large`);
  return bytes;
}

/** A `HOST:PORT` listener address; IPv6 hosts in brackets (`[::1]:1025`). */
export interface HostPort {
  host: string;
  port: number;
}

/**
 * A host outside brackets: a name or an IPv4 address. Letters (also non-ASCII
 * ones), ASCII digits, `.`, `_` and `-`; so `*`, `/`, spaces and other
 * scripts' digits (`١٢٧.٠.٠.١`, which no resolver takes) can never be a host.
 */
const HOST_REGEXP = /^[\p{L}0-9._-]+$/u;

/**
 * Parses `HOST:PORT` (`127.0.0.1:1025`, `[::1]:0`, `localhost:2525`).
 *
 * @example Usage
 * ```ts
 * import { parseHostPort } from "./units.ts";
 * parseHostPort("[::1]:1025"); // { host: "::1", port: 1025 }
 * ```
 */
export function parseHostPort(text: string): HostPort {
  const match = /^(?:\[([0-9A-Fa-f:.]+)\]|([^\s:\[\]]+)):(\d{1,5})$/.exec(text.trim());
  if (!match) {
    throw new SyntaxError(
      `Cannot parse "${text}": expected HOST:PORT, e.g. 127.0.0.1:1025 or [::1]:1025`,
    );
  }
  const port = Number(match[3]);
  if (port > 65535) throw new RangeError(`Cannot use "${text}": port must be 0 to 65535`);
  if (match[1] !== undefined && !isIPv6(match[1])) {
    throw new SyntaxError(
      `Cannot use "${text}": "${match[1]}" is not an IPv6 address (brackets are for IPv6 only)`,
    );
  }
  if (match[2] !== undefined && !HOST_REGEXP.test(match[2])) {
    throw new SyntaxError(
      `Cannot use "${text}": "${match[2]}" is not a host name or address`,
    );
  }
  const quad = /^(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(match[2] ?? "");
  if (quad && quad.slice(1).some((n) => Number(n) > 255)) {
    // All digits is never a host name (RFC 1123 §2.1): a mistyped address, not one to look up.
    throw new SyntaxError(`Cannot use "${text}": "${match[2]}" is not an IPv4 address`);
  }
  return { host: match[1] ?? match[2]!, port };
}
