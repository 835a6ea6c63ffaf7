/**
 * `--trust-proxy CIDR` (SPEC §2, §4): parsing IPv4/IPv6 networks and testing
 * client addresses against them. Pure.
 *
 * IPv4-mapped IPv6 addresses (`::ffff:127.0.0.1`, what a dual-stack socket
 * reports for an IPv4 client) are treated as the IPv4 address they carry, on
 * both sides.
 *
 * @module
 */

/** One network: `bytes` (4 or 16) with the host bits cleared, and its prefix length. */
export interface Cidr {
  family: 4 | 6;
  bytes: Uint8Array;
  prefix: number;
  /** As written, for logs. */
  source: string;
}

/** RFC 4291 §2.5.5.2: `::ffff:0:0/96` holds IPv4-mapped addresses. */
const MAPPED_PREFIX = new Uint8Array([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff]);
/** Decimal 0-255 without leading zeros: `010` would be octal to some parsers, decimal to others. */
const IPV4_OCTET_REGEXP = /^(?:0|[1-9]\d{0,2})$/;
const IPV6_GROUP_REGEXP = /^[0-9A-Fa-f]{1,4}$/;
const PREFIX_REGEXP = /^(?:0|[1-9]\d{0,2})$/;

/**
 * Parses `a.b.c.d/n`, an IPv6 network (`2001:db8::/32`, `::1/128`), or a bare
 * address (a /32 or /128). Host bits set below the prefix are cleared
 * (`10.1.2.3/8` is `10.0.0.0/8`).
 *
 * @param text The `--trust-proxy` value.
 * @returns The network.
 * @throws {SyntaxError} Naming the value and what is wrong with it.
 *
 * @example Usage
 * ```ts
 * import { cidrContains, parseCidr } from "./cidr.ts";
 * cidrContains([parseCidr("127.0.0.0/8")], "::ffff:127.0.0.1"); // true
 * ```
 */
export function parseCidr(text: string): Cidr {
  const trimmed = text.trim();
  const slash = trimmed.indexOf("/");
  const addressText = slash < 0 ? trimmed : trimmed.slice(0, slash);
  const parsed = parseAddress(addressText);
  if (parsed === null) {
    throw new SyntaxError(
      `Cannot parse CIDR "${text}": expected an IPv4 or IPv6 address, optionally with /PREFIX`,
    );
  }
  let bytes = parsed;
  const max = bytes.length * 8;
  let prefix = max;
  if (slash >= 0) {
    const prefixText = trimmed.slice(slash + 1);
    if (!PREFIX_REGEXP.test(prefixText) || Number(prefixText) > max) {
      throw new SyntaxError(
        `Cannot parse CIDR "${text}": prefix must be a number from 0 to ${max}`,
      );
    }
    prefix = Number(prefixText);
  }
  if (bytes.length === 16 && isMapped(bytes) && prefix >= 96) {
    bytes = bytes.slice(12);
    prefix -= 96;
  }
  return { family: bytes.length === 4 ? 4 : 6, bytes: mask(bytes, prefix), prefix, source: text };
}

/**
 * Tells whether `address` lies in any of `cidrs`.
 *
 * @param cidrs From {@linkcode parseCidr}.
 * @param address A socket's remote address: IPv4, IPv6, IPv4-mapped, with or without a `%zone`.
 * @returns False for an address that does not parse.
 */
export function cidrContains(cidrs: readonly Cidr[], address: string): boolean {
  if (cidrs.length === 0) return false;
  // A zone (`fe80::1%eth0`) names an interface, not part of the address.
  const zone = address.indexOf("%");
  let bytes = parseAddress(zone < 0 ? address : address.slice(0, zone));
  if (bytes === null) return false;
  if (bytes.length === 16 && isMapped(bytes)) bytes = bytes.slice(12);
  return cidrs.some((cidr) =>
    cidr.bytes.length === bytes.length && startsWith(bytes, cidr.bytes, cidr.prefix)
  );
}

/** 4 or 16 bytes, or null when `text` is not an address. */
function parseAddress(text: string): Uint8Array | null {
  if (text.includes(":")) return parseIpv6(text);
  return parseIpv4(text);
}

function parseIpv4(text: string): Uint8Array | null {
  const parts = text.split(".");
  if (parts.length !== 4) return null;
  const bytes = new Uint8Array(4);
  for (const [i, part] of parts.entries()) {
    if (!IPV4_OCTET_REGEXP.test(part) || Number(part) > 255) return null;
    bytes[i] = Number(part);
  }
  return bytes;
}

/** RFC 4291 §2.2: eight groups, one `::` for a run of zeros, an IPv4 tail allowed. */
function parseIpv6(text: string): Uint8Array | null {
  const halves = text.split("::");
  if (halves.length > 2) return null;
  const head = ipv6Groups(halves[0]!);
  const tail = halves.length === 2 ? ipv6Groups(halves[1]!) : [];
  if (head === null || tail === null) return null;
  // An IPv4 tail may only end the address.
  if (halves.length === 2 && halves[0]!.includes(".")) return null;
  const missing = 8 - head.length - tail.length;
  if (halves.length === 2 ? missing < 1 : missing !== 0) return null;
  const groups = [...head, ...new Array<number>(missing).fill(0), ...tail];
  const bytes = new Uint8Array(16);
  for (const [i, group] of groups.entries()) {
    bytes[i * 2] = group >> 8;
    bytes[i * 2 + 1] = group & 0xff;
  }
  return bytes;
}

/** The 16-bit groups of one side of `::`; an IPv4 last part counts as two. */
function ipv6Groups(half: string): number[] | null {
  if (half === "") return [];
  const groups: number[] = [];
  const parts = half.split(":");
  for (const [i, part] of parts.entries()) {
    if (i === parts.length - 1 && part.includes(".")) {
      const v4 = parseIpv4(part);
      if (v4 === null) return null;
      groups.push((v4[0]! << 8) | v4[1]!, (v4[2]! << 8) | v4[3]!);
    } else if (IPV6_GROUP_REGEXP.test(part)) {
      groups.push(parseInt(part, 16));
    } else {
      return null;
    }
  }
  return groups;
}

function isMapped(bytes: Uint8Array): boolean {
  return MAPPED_PREFIX.every((b, i) => bytes[i] === b);
}

/** A copy of `bytes` with every bit after the first `prefix` cleared. */
function mask(bytes: Uint8Array, prefix: number): Uint8Array {
  const out = new Uint8Array(bytes.length);
  for (let i = 0; i < bytes.length; i++) {
    const bits = Math.max(0, Math.min(8, prefix - i * 8));
    out[i] = bytes[i]! & ((0xff00 >> bits) & 0xff);
  }
  return out;
}

/** True when the first `prefix` bits of `address` equal those of `network`. */
function startsWith(address: Uint8Array, network: Uint8Array, prefix: number): boolean {
  const masked = mask(address, prefix);
  return masked.every((b, i) => b === network[i]);
}
