/**
 * `--auth-file` (SPEC §2): `user:password` lines, and the checks AUTH needs
 * against them, PLAIN/LOGIN passwords and RFC 2195 CRAM-MD5 digests.
 *
 * @module
 */

import { timingSafeEqual } from "node:crypto";
import { hmac, sha256 } from "../native_memory.ts";

/** A user name ends at the first `:`; it has no white space. */
const USER_REGEXP = /^[^\s:]+$/;

/**
 * The users and passwords of an auth file. Passwords stay in memory only:
 * CRAM-MD5 needs them in the clear (RFC 2195 §2).
 */
export class Credentials {
  #passwords: Map<string, string>;

  /** @param entries `[user, password]` pairs; a later pair for the same user wins. */
  constructor(entries: Iterable<readonly [string, string]>) {
    this.#passwords = new Map(entries);
  }

  /** Number of users, for the start-up log line. */
  get size(): number {
    return this.#passwords.size;
  }

  /**
   * Checks a PLAIN or LOGIN password.
   *
   * @param user The authentication identity, compared exactly.
   * @param password The password as sent.
   * @returns True when `user` exists and `password` is theirs.
   */
  check(user: string, password: string): boolean {
    const stored = this.#passwords.get(user);
    // Compare even for an unknown user, so the time taken does not tell
    // which user names exist.
    return sameSecret(stored ?? "", password) && stored !== undefined;
  }

  /**
   * Checks a CRAM-MD5 response (RFC 2195): HMAC-MD5 of the challenge keyed
   * by the user's password, as hex.
   *
   * @param user The user name from the client's response.
   * @param challenge The challenge the server sent, decoded, e.g. `<1896.697170952@host>`.
   * @param hexDigest The client's digest; upper- or lower-case hex.
   * @returns True when `user` exists and the digest is right.
   */
  checkCramMd5(user: string, challenge: string, hexDigest: string): boolean {
    const stored = this.#passwords.get(user);
    const expected = hmac("md5", stored ?? "").update(challenge).digest("hex");
    return sameSecret(expected, hexDigest.toLowerCase()) && stored !== undefined;
  }
}

/**
 * Constant-time string comparison: timingSafeEqual needs equal lengths, so
 * compare SHA-256 digests, which also hides the secret's length.
 */
function sameSecret(a: string, b: string): boolean {
  const digestA = sha256().update(a).digest();
  const digestB = sha256().update(b).digest();
  return timingSafeEqual(digestA, digestB);
}

/**
 * Parses the text of an auth file: `user:password` per line (the password
 * runs to the end of the line and may contain `:`), `#` comments, blank lines.
 *
 * @param text The file's contents; CRLF line ends and a UTF-8 BOM are fine.
 * @param path Named in errors.
 * @returns The credentials.
 * @throws {SyntaxError} `<path>:<line>: expected user:password`, or a repeated user.
 *
 * @example Usage
 * ```ts
 * import { parseAuthFile } from "./auth_file.ts";
 * parseAuthFile("# users\nbob:s3cr:t\n", "users.txt").check("bob", "s3cr:t"); // true
 * ```
 */
export function parseAuthFile(text: string, path: string): Credentials {
  const entries = new Map<string, string>();
  const definedOn = new Map<string, number>();
  const lines = text.replace(/^\uFEFF/, "").split("\n");
  for (const [index, raw] of lines.entries()) {
    const number = index + 1;
    const line = raw.endsWith("\r") ? raw.slice(0, -1) : raw;
    const content = line.trim();
    if (content === "" || content.startsWith("#")) continue;
    const colon = line.indexOf(":");
    const user = line.slice(0, colon);
    const password = line.slice(colon + 1);
    // The password is taken verbatim (spaces included); an empty one would
    // let anybody in as that user.
    if (colon < 0 || !USER_REGEXP.test(user) || password === "") {
      throw new SyntaxError(`${path}:${number}: expected user:password`);
    }
    const earlier = definedOn.get(user);
    if (earlier !== undefined) {
      throw new SyntaxError(`${path}:${number}: user "${user}" already defined on line ${earlier}`);
    }
    definedOn.set(user, number);
    entries.set(user, password);
  }
  return new Credentials(entries);
}

/**
 * Reads and parses an auth file.
 *
 * @param path The `--auth-file` value.
 * @returns The credentials.
 * @throws {SyntaxError} For a bad line (see {@linkcode parseAuthFile}).
 * @throws {Deno.errors.NotFound} And the other `Deno.readTextFile` errors, unchanged.
 */
export async function loadAuthFile(path: string): Promise<Credentials> {
  return parseAuthFile(await Deno.readTextFile(path), path);
}
