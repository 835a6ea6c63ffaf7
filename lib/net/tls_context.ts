/**
 * TLS material for STARTTLS and implicit-TLS listeners (SPEC §2 `--tls-cert`,
 * `--tls-key`, `--tls-self-signed`): PEM files checked up front, or an
 * ephemeral self-signed certificate made at start-up.
 *
 * @module
 */

// @peculiar/x509 is loaded only when a certificate is generated: it costs
// ~50 ms of start-up that a server without --tls-self-signed should not pay.
import type * as X509 from "@peculiar/x509";
import { createPrivateKey, type KeyObject, X509Certificate } from "node:crypto";
import { isIP } from "node:net";
import tls from "node:tls";

/** What a listener needs to speak TLS, and what clients need to verify it. */
export interface TlsMaterial {
  secureContext: tls.SecureContext;
  /** The certificate (chain) in PEM, leaf first. */
  certPem: string;
  /** SHA-256 of the leaf certificate, `AB:CD:…` as `openssl x509 -fingerprint -sha256` prints it. */
  fingerprint256: string;
  /** Where a client finds `certPem`: the published `cert.pem`, else the `--tls-cert` file. */
  certPath?: string;
  /** The leaf certificate's validity period. */
  notBefore: Date;
  notAfter: Date;
}

/**
 * Why the certificate is not valid at `now`, or null when it is. Not a
 * start-up failure: a sink may serve an expired certificate on purpose, to
 * test how a client handles one; the server logs it as a warning.
 *
 * @example Usage
 * ```ts ignore
 * certificateProblem(material, new Date()); // "expired on 2021-01-01T00:00:00.000Z"
 * ```
 */
export function certificateProblem(
  material: Pick<TlsMaterial, "notBefore" | "notAfter">,
  now: Date,
): string | null {
  if (now > material.notAfter) return `expired on ${material.notAfter.toISOString()}`;
  if (now < material.notBefore) return `not valid before ${material.notBefore.toISOString()}`;
  return null;
}

/** Options of {@linkcode loadTlsContext}, from `--tls-cert`, `--tls-key`, `--tls-self-signed`, `--hostname`. */
export interface TlsContextOptions {
  certFile?: string;
  keyFile?: string;
  selfSigned?: boolean;
  /** Put in the self-signed certificate's subject and SANs. */
  hostname: string;
  /** When given, the certificate PEM is written to `<publishDir>/cert.pem` for clients. */
  publishDir?: string;
}

/** A certificate or key that cannot be used; the message is one line naming the file. */
export class TlsConfigError extends Error {
  /** @param message One line: the file and what is wrong with it. */
  constructor(message: string) {
    super(message);
    this.name = "TlsConfigError";
  }
}

/** ECDSA P-256: generated in milliseconds and accepted by OpenSSL, rustls, Python, curl and swaks. */
const SELF_SIGNED_ALGORITHM = { name: "ECDSA", namedCurve: "P-256", hash: "SHA-256" } as const;
/** Back-dated so a client whose clock lags a little still accepts a fresh certificate. */
const SELF_SIGNED_BACKDATE_MS = 60 * 60_000;
const SELF_SIGNED_VALIDITY_MS = 365 * 24 * 60 * 60_000;
/** X.520 ub-common-name: a longer CN makes strict parsers reject the certificate. */
const MAX_COMMON_NAME = 64;
/** Names every self-signed certificate covers besides `--hostname`: the loopback ways in. */
const LOOPBACK_NAMES = ["localhost", "127.0.0.1", "::1"];
const DNS_NAME_REGEXP = /^[A-Za-z0-9*_-]+(?:\.[A-Za-z0-9_-]+)*\.?$/;
const CERT_BEGIN = "-----BEGIN CERTIFICATE-----";
const KEY_BEGIN_REGEXP = /-----BEGIN (?:RSA |EC |ENCRYPTED )?PRIVATE KEY-----/;
/** PEM labels of {@linkcode pemBlocks}. */
const CERT_LABEL = /^CERTIFICATE$/;
const KEY_LABEL = /^(?:RSA |EC |ENCRYPTED )?PRIVATE KEY$/;

/**
 * Loads the PEM certificate and key (`certFile` + `keyFile`) or, with
 * `selfSigned`, generates an ephemeral certificate for `hostname`, `localhost`,
 * `127.0.0.1` and `::1`. Files win over `selfSigned`.
 *
 * @param options Where the certificate comes from.
 * @returns The secure context for listeners plus what clients need to verify it.
 * @throws {TlsConfigError} A file is missing, unreadable, not PEM, encrypted, or the key does not match.
 *
 * @example Usage
 * ```ts ignore
 * const material = await loadTlsContext({ selfSigned: true, hostname: "mail.test" });
 * ```
 */
export async function loadTlsContext(options: TlsContextOptions): Promise<TlsMaterial> {
  let certPem: string;
  let keyPem: string;
  let certPath: string | undefined;
  if (options.certFile !== undefined || options.keyFile !== undefined) {
    if (options.certFile === undefined) {
      throw new TlsConfigError(`Cannot use TLS key "${options.keyFile}": no certificate given`);
    }
    if (options.keyFile === undefined) {
      throw new TlsConfigError(`Cannot use TLS certificate "${options.certFile}": no key given`);
    }
    // One file may hold both (Postfix's smtpd_tls_chain_files, `cat key.pem cert.pem`):
    // each flag takes its own blocks, and the key never reaches the published cert.pem.
    certPem = pemBlocks(await readPem(options.certFile, "certificate"), CERT_LABEL, Infinity);
    keyPem = pemBlocks(await readPem(options.keyFile, "key"), KEY_LABEL, 1);
    checkPair(options.certFile, certPem, options.keyFile, keyPem);
    certPath = options.certFile;
  } else if (options.selfSigned) {
    ({ certPem, keyPem } = await generateSelfSigned(options.hostname));
  } else {
    throw new TlsConfigError("Cannot set up TLS: no certificate and key files, and no self-signed");
  }
  if (options.publishDir !== undefined) {
    certPath = await publish(options.publishDir, certPem);
  }
  const leaf = new X509Certificate(certPem);
  const material: TlsMaterial = {
    // Deno's createSecureContext only stores the PEM text; checkPair above is
    // what catches a bad pair at start-up instead of at the first handshake.
    secureContext: tls.createSecureContext({ cert: certPem, key: keyPem }),
    certPem,
    fingerprint256: leaf.fingerprint256,
    notBefore: new Date(leaf.validFrom),
    notAfter: new Date(leaf.validTo),
  };
  if (certPath !== undefined) material.certPath = certPath;
  return material;
}

/**
 * The first `max` PEM blocks of `text` whose label matches `label`, joined;
 * `text` unchanged when none does (checkPair then says what is wrong).
 */
function pemBlocks(text: string, label: RegExp, max: number): string {
  const blocks: string[] = [];
  for (const m of text.matchAll(/-----BEGIN ([A-Z0-9 ]+)-----[\s\S]*?-----END \1-----/g)) {
    if (label.test(m[1]!)) blocks.push(m[0]);
    if (blocks.length === max) break;
  }
  return blocks.length === 0 ? text : blocks.join("\n") + "\n";
}

async function readPem(path: string, what: "certificate" | "key"): Promise<string> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (e: unknown) {
    const reason = e instanceof Deno.errors.NotFound
      ? "no such file"
      : e instanceof Deno.errors.PermissionDenied
      ? "permission denied"
      : e instanceof Error
      ? e.message.split("\n")[0]
      : String(e);
    throw new TlsConfigError(`Cannot read TLS ${what} "${path}": ${reason}`);
  }
  return text;
}

/** Parses both files and proves the key belongs to the (first) certificate. */
function checkPair(certFile: string, certPem: string, keyFile: string, keyPem: string): void {
  if (!certPem.includes(CERT_BEGIN)) {
    throw new TlsConfigError(
      `Cannot use TLS certificate "${certFile}": not PEM (expected "${CERT_BEGIN}")`,
    );
  }
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(certPem);
  } catch {
    throw new TlsConfigError(
      `Cannot use TLS certificate "${certFile}": not a valid X.509 certificate`,
    );
  }
  const keyHeader = KEY_BEGIN_REGEXP.exec(keyPem);
  if (!keyHeader) {
    throw new TlsConfigError(
      `Cannot use TLS key "${keyFile}": not PEM (expected "-----BEGIN PRIVATE KEY-----")`,
    );
  }
  // OpenSSL's legacy encrypted form keeps the plain header and adds Proc-Type.
  if (keyHeader[0].includes("ENCRYPTED") || /Proc-Type:\s*4,ENCRYPTED/.test(keyPem)) {
    throw new TlsConfigError(
      `Cannot use TLS key "${keyFile}": it is encrypted (decrypt it: openssl pkey -in KEY -out PLAIN)`,
    );
  }
  let key: KeyObject;
  try {
    key = createPrivateKey(keyPem);
  } catch {
    throw new TlsConfigError(`Cannot use TLS key "${keyFile}": not a valid private key`);
  }
  let matches = false;
  try {
    matches = cert.checkPrivateKey(key);
  } catch {
    // Different key types (RSA key, EC certificate) throw instead of returning false.
  }
  if (!matches) {
    throw new TlsConfigError(
      `Cannot use TLS key "${keyFile}": it does not match the certificate in "${certFile}"`,
    );
  }
}

/** Subject alternative names for `hostname` plus the loopback names, without duplicates. */
function subjectAltNames(hostname: string): X509.JsonGeneralName[] {
  const names: X509.JsonGeneralName[] = [];
  const seen = new Set<string>();
  for (const name of [hostname, ...LOOPBACK_NAMES]) {
    const key = name.toLowerCase();
    if (seen.has(key)) continue;
    seen.add(key);
    if (isIP(name) !== 0) names.push({ type: "ip", value: name });
    // A DNS SAN is an IA5String: a host name outside it (spaces, non-ASCII)
    // is left out rather than making an unparsable certificate.
    else if (DNS_NAME_REGEXP.test(name)) names.push({ type: "dns", value: name });
  }
  return names;
}

async function generateSelfSigned(hostname: string): Promise<{ certPem: string; keyPem: string }> {
  // tsyringe, under @peculiar/x509, needs the Reflect metadata polyfill first.
  await import("reflect-metadata");
  const x509 = await import("@peculiar/x509");
  const keys = await crypto.subtle.generateKey(SELF_SIGNED_ALGORITHM, true, ["sign", "verify"]);
  // RFC 5280 §4.1.2.2: a positive serial of at most 20 octets; 16 random ones suffice.
  const serial = crypto.getRandomValues(new Uint8Array(16));
  serial[0] = (serial[0]! & 0x7f) | 0x01;
  const now = Date.now();
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: Array.from(serial, (b) => b.toString(16).padStart(2, "0")).join(""),
    name: [{ CN: [hostname.slice(0, MAX_COMMON_NAME) || "localhost"] }],
    notBefore: new Date(now - SELF_SIGNED_BACKDATE_MS),
    notAfter: new Date(now + SELF_SIGNED_VALIDITY_MS),
    signingAlgorithm: SELF_SIGNED_ALGORITHM,
    keys,
    extensions: [
      // An end-entity certificate that is its own trust anchor (`--cacert`):
      // rustls rejects a CA certificate used as a server certificate.
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth]),
      new x509.SubjectAlternativeNameExtension(subjectAltNames(hostname)),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
      await x509.AuthorityKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  const pkcs8 = await crypto.subtle.exportKey("pkcs8", keys.privateKey);
  return {
    certPem: cert.toString("pem") + "\n",
    keyPem: x509.PemConverter.encode(pkcs8, "PRIVATE KEY") + "\n",
  };
}

/** Writes `<dir>/cert.pem` via a temporary name, so a reader never sees half a file. */
async function publish(dir: string, certPem: string): Promise<string> {
  const path = `${dir}/cert.pem`;
  const temporary = `${dir}/.cert.pem.${crypto.randomUUID()}`;
  try {
    await Deno.mkdir(dir, { recursive: true });
    await Deno.writeTextFile(temporary, certPem);
    await Deno.rename(temporary, path);
  } catch (e: unknown) {
    await Deno.remove(temporary).catch(() => {});
    const reason = e instanceof Error ? e.message.split("\n")[0] : String(e);
    throw new TlsConfigError(`Cannot publish the TLS certificate to "${path}": ${reason}`);
  }
  return path;
}
