/**
 * The `<id>.json` metadata of a stored message (SPEC §3) and the RFC 3848
 * `with` protocol value.
 *
 * @module
 */

/** The SPEC §3 `.json`, keys in the order SPEC shows them. */
export interface Meta {
  id: string;
  /** ISO-8601 UTC with milliseconds, taken when the message was committed. */
  receivedAt: string;
  /** `""` for the null reverse-path `<>`. */
  mailFrom: string;
  rcptTo: string[];
  /** Names upper case; a parameter without a value is `true`. */
  mailParams: Record<string, string | true>;
  /** One object per entry of `rcptTo`. */
  rcptParams: Record<string, string | true>[];
  helo: string | null;
  /** RFC 3848 value, see {@linkcode protocolName}. */
  protocol: string;
  /** `name`: the host name an XCLIENT `NAME=` gave, only then. */
  client: { address: string; port: number; name?: string };
  server: { address: string; port: number };
  tls: { protocol: string; cipher: string } | null;
  auth: { mechanism: string; username: string } | null;
  /** Bytes in the `.eml`. */
  size: number;
  /** Lowercase hex SHA-256 of the `.eml`. */
  sha256: string;
  /** Decoded header values; a key is missing when the header is absent. */
  headers: { subject?: string; from?: string; to?: string; date?: string; messageId?: string };
  /** XFORWARD attributes, only when XFORWARD was used. */
  xforward?: Record<string, string>;
}

/** Everything the server knows before the body is committed. */
export type MetaInput = Omit<Meta, "id" | "receivedAt" | "size" | "sha256" | "headers">;

/** What the spool itself contributes when it commits a message. */
export interface MetaFacts {
  id: string;
  receivedAt: string;
  size: number;
  sha256: string;
  headers: Meta["headers"];
}

/**
 * The RFC 3848 (and RFC 6531 §3.7.3 for SMTPUTF8) value for the `with`
 * clause, which SPEC §3 stores as `protocol`.
 *
 * HELO sessions are plain `SMTP`: the `S` and `A` suffixes exist only for
 * ESMTP. SMTPUTF8 implies ESMTP, since only EHLO can negotiate it.
 *
 * @param p What the session used.
 * @returns One of SMTP, ESMTP, ESMTPS, ESMTPA, ESMTPSA, UTF8SMTP, UTF8SMTPS, UTF8SMTPA, UTF8SMTPSA.
 *
 * @example Usage
 * ```ts
 * import { protocolName } from "./meta.ts";
 * protocolName({ esmtp: true, tls: true, auth: true, smtputf8: false }); // "ESMTPSA"
 * ```
 */
export function protocolName(
  p: { esmtp: boolean; tls: boolean; auth: boolean; smtputf8: boolean },
): string {
  if (!p.esmtp && !p.smtputf8) return "SMTP";
  const base = p.smtputf8 ? "UTF8SMTP" : "ESMTP";
  return base + (p.tls ? "S" : "") + (p.auth ? "A" : "");
}

/**
 * Assembles a {@linkcode Meta} with its keys in SPEC order (JSON keeps
 * insertion order, and users diff these files).
 *
 * @param input What the server recorded.
 * @param facts What the spool computed.
 * @returns The full metadata.
 */
export function buildMeta(input: MetaInput, facts: MetaFacts): Meta {
  const meta: Meta = {
    id: facts.id,
    receivedAt: facts.receivedAt,
    mailFrom: input.mailFrom,
    rcptTo: input.rcptTo,
    mailParams: input.mailParams,
    rcptParams: input.rcptParams,
    helo: input.helo,
    protocol: input.protocol,
    client: {
      address: input.client.address,
      port: input.client.port,
      ...(input.client.name === undefined ? {} : { name: input.client.name }),
    },
    server: { address: input.server.address, port: input.server.port },
    tls: input.tls === null ? null : { protocol: input.tls.protocol, cipher: input.tls.cipher },
    auth: input.auth === null
      ? null
      : { mechanism: input.auth.mechanism, username: input.auth.username },
    size: facts.size,
    sha256: facts.sha256,
    headers: orderedHeaders(facts.headers),
  };
  if (input.xforward !== undefined) meta.xforward = input.xforward;
  return meta;
}

/**
 * Parses the text of a `.json` file, checking the fields readers rely on.
 *
 * @param text The file contents.
 * @returns The metadata, or null when it is not JSON or lacks a required field.
 */
export function parseMeta(text: string): Meta | null {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return null;
  }
  if (typeof value !== "object" || value === null) return null;
  const v = value as Record<string, unknown>;
  const headers = v["headers"];
  const ok = typeof v["id"] === "string" && typeof v["receivedAt"] === "string" &&
    typeof v["mailFrom"] === "string" && Array.isArray(v["rcptTo"]) &&
    v["rcptTo"].every((r) => typeof r === "string") && typeof v["size"] === "number" &&
    typeof headers === "object" && headers !== null && !Array.isArray(headers);
  return ok ? value as Meta : null;
}

function orderedHeaders(h: Meta["headers"]): Meta["headers"] {
  const out: Meta["headers"] = {};
  if (h.subject !== undefined) out.subject = h.subject;
  if (h.from !== undefined) out.from = h.from;
  if (h.to !== undefined) out.to = h.to;
  if (h.date !== undefined) out.date = h.date;
  if (h.messageId !== undefined) out.messageId = h.messageId;
  return out;
}
