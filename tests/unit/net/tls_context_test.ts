import assert from "node:assert/strict";
import { X509Certificate } from "node:crypto";
import type net from "node:net";
import "reflect-metadata";
import * as x509 from "@peculiar/x509";
import {
  certificateProblem,
  loadTlsContext,
  TlsConfigError,
  type TlsMaterial,
} from "../../../lib/net/tls_context.ts";
import { upgradeServerSocket } from "../../../lib/net/starttls.ts";
import { hasCommand, listen, readLine, run, type TestServer, writeText } from "./_tls_helpers.ts";

const ALGORITHM = { name: "ECDSA", namedCurve: "P-256", hash: "SHA-256" } as const;
const FINGERPRINT_REGEXP = /^(?:[0-9A-F]{2}:){31}[0-9A-F]{2}$/;
const HOUR_MS = 3_600_000;

/** A CA and a server certificate for `localhost` signed by it, as PEM. */
async function makeChain(
  notBefore = new Date(Date.now() - HOUR_MS),
  notAfter = new Date(Date.now() + 24 * HOUR_MS),
): Promise<{ caPem: string; leafPem: string; leafKeyPem: string }> {
  const caKeys = await crypto.subtle.generateKey(ALGORITHM, true, ["sign", "verify"]);
  const leafKeys = await crypto.subtle.generateKey(ALGORITHM, true, ["sign", "verify"]);
  const ca = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: "0a",
    name: "CN=Test CA",
    notBefore,
    notAfter,
    signingAlgorithm: ALGORITHM,
    keys: caKeys,
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign, true),
      await x509.SubjectKeyIdentifierExtension.create(caKeys.publicKey),
    ],
  });
  const leaf = await x509.X509CertificateGenerator.create({
    serialNumber: "0b",
    subject: "CN=localhost",
    issuer: ca.subject,
    notBefore,
    notAfter,
    signingAlgorithm: ALGORITHM,
    publicKey: leafKeys.publicKey,
    signingKey: caKeys.privateKey,
    extensions: [
      new x509.SubjectAlternativeNameExtension([
        { type: "dns", value: "localhost" },
        { type: "ip", value: "127.0.0.1" },
      ]),
      await x509.AuthorityKeyIdentifierExtension.create(caKeys.publicKey),
    ],
  });
  const pkcs8 = await crypto.subtle.exportKey("pkcs8", leafKeys.privateKey);
  return {
    caPem: ca.toString("pem") + "\n",
    leafPem: leaf.toString("pem") + "\n",
    leafKeyPem: x509.PemConverter.encode(pkcs8, "PRIVATE KEY") + "\n",
  };
}

/** Writes `files` into a fresh temporary directory; returns their paths by name. */
async function tempFiles(files: Record<string, string>): Promise<Record<string, string>> {
  const dir = await Deno.makeTempDir();
  const paths: Record<string, string> = { dir };
  for (const [name, text] of Object.entries(files)) {
    paths[name] = `${dir}/${name}`;
    await Deno.writeTextFile(paths[name]!, text);
  }
  return paths;
}

/** An implicit-TLS server with `material` answering each TLS chunk with `answer(chunk)`. */
function tlsServer(material: TlsMaterial, answer: (text: string) => string): Promise<TestServer> {
  return listen((socket: net.Socket) => {
    upgradeServerSocket(socket, material.secureContext, 5_000).then((secure) => {
      secure.on("error", () => {});
      secure.on("data", (chunk: Uint8Array) => {
        secure.end(answer(new TextDecoder().decode(chunk)));
      });
    }, () => {});
  });
}

/** Connects to 127.0.0.1 with Deno's client (rustls), verifying the IP SAN against `caPem`. */
async function roundTripByIp(port: number, caPem: string): Promise<string> {
  const conn = await Deno.connectTls({ hostname: "127.0.0.1", port, caCerts: [caPem] });
  try {
    await writeText(conn, "ping\r\n");
    return await readLine(conn);
  } finally {
    conn.close();
  }
}

/** Like roundTrip, but verifies the certificate for `hostname` (SNI and SAN) over 127.0.0.1. */
async function roundTripByName(port: number, hostname: string, caPem: string): Promise<string> {
  const plain = await Deno.connect({ hostname: "127.0.0.1", port });
  const conn = await Deno.startTls(plain, { hostname, caCerts: [caPem] });
  try {
    await writeText(conn, "ping\r\n");
    return await readLine(conn);
  } finally {
    conn.close();
  }
}

/** The certificate's SANs; Node prints ::1 expanded, Deno compressed. */
function sans(certPem: string): string[] {
  const text = new X509Certificate(certPem).subjectAltName ?? "";
  return text.split(", ").map((san) => san.replace("IP Address:0:0:0:0:0:0:0:1", "IP Address:::1"));
}

const LOOPBACK_SANS = ["DNS:localhost", "IP Address:127.0.0.1", "IP Address:::1"];

function echoAnswer(text: string): string {
  return `echo: ${text}`;
}

Deno.test("loadTlsContext generates a self-signed certificate for the host name and loopback", async () => {
  const before = Date.now();
  const material = await loadTlsContext({ selfSigned: true, hostname: "mail.example.test" });
  const cert = new X509Certificate(material.certPem);
  assert.match(
    material.certPem,
    /^-----BEGIN CERTIFICATE-----\n[\s\S]+-----END CERTIFICATE-----\n$/,
  );
  assert.equal(cert.subject, "CN=mail.example.test");
  assert.deepEqual(sans(material.certPem), ["DNS:mail.example.test", ...LOOPBACK_SANS]);
  assert.match(material.fingerprint256, FINGERPRINT_REGEXP);
  assert.equal(material.fingerprint256, cert.fingerprint256);
  assert.ok(Date.parse(cert.validFrom) <= before - HOUR_MS + 1000);
  assert.ok(Date.parse(cert.validTo) >= before + 364 * 24 * HOUR_MS);
  assert.equal(cert.ca, false);
  assert.equal(material.certPath, undefined);
});

Deno.test("loadTlsContext makes a fresh key every time", async () => {
  const a = await loadTlsContext({ selfSigned: true, hostname: "localhost" });
  const b = await loadTlsContext({ selfSigned: true, hostname: "localhost" });
  assert.notEqual(a.fingerprint256, b.fingerprint256);
  assert.deepEqual(sans(a.certPem), LOOPBACK_SANS);
});

Deno.test("loadTlsContext puts an IP host name in an IP SAN and skips a name DNS cannot hold", async () => {
  const ip = await loadTlsContext({ selfSigned: true, hostname: "10.1.2.3" });
  assert.deepEqual(sans(ip.certPem), ["IP Address:10.1.2.3", ...LOOPBACK_SANS]);
  const odd = await loadTlsContext({ selfSigned: true, hostname: "my host" });
  assert.deepEqual(sans(odd.certPem), LOOPBACK_SANS);
});

Deno.test("loadTlsContext publishes cert.pem into publishDir, creating it", async () => {
  const dir = await Deno.makeTempDir();
  const publishDir = `${dir}/spool/.tls`;
  const material = await loadTlsContext({ selfSigned: true, hostname: "localhost", publishDir });
  assert.equal(material.certPath, `${publishDir}/cert.pem`);
  assert.equal(await Deno.readTextFile(`${publishDir}/cert.pem`), material.certPem);
  const names = [];
  for await (const entry of Deno.readDir(publishDir)) names.push(entry.name);
  assert.deepEqual(names, ["cert.pem"]);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("loadTlsContext's self-signed certificate verifies by name and by IP in Deno's client", async () => {
  const material = await loadTlsContext({ selfSigned: true, hostname: "localhost" });
  const server = await tlsServer(material, echoAnswer);
  assert.equal(await roundTripByIp(server.port, material.certPem), "echo: ping\r\n");
  assert.equal(await roundTripByName(server.port, "localhost", material.certPem), "echo: ping\r\n");
  await server.close();
});

Deno.test("loadTlsContext serves a PEM chain from files; clients verify with the CA alone", async () => {
  const chain = await makeChain();
  const files = await tempFiles({
    "cert.pem": chain.leafPem + chain.caPem,
    "key.pem": chain.leafKeyPem,
  });
  const material = await loadTlsContext({
    certFile: files["cert.pem"]!,
    keyFile: files["key.pem"]!,
    hostname: "ignored",
  });
  assert.equal(material.certPath, files["cert.pem"]);
  assert.equal(material.fingerprint256, new X509Certificate(chain.leafPem).fingerprint256);
  const server = await tlsServer(material, echoAnswer);
  assert.equal(await roundTripByName(server.port, "localhost", chain.caPem), "echo: ping\r\n");
  await server.close();
  await Deno.remove(files.dir!, { recursive: true });
});

Deno.test("loadTlsContext loads an expired certificate; certificateProblem says so", async () => {
  const notBefore = new Date("2020-01-01T00:00:00Z");
  const notAfter = new Date("2021-01-01T00:00:00Z");
  const chain = await makeChain(notBefore, notAfter);
  const files = await tempFiles({ "cert.pem": chain.leafPem, "key.pem": chain.leafKeyPem });
  const material = await loadTlsContext({
    certFile: files["cert.pem"]!,
    keyFile: files["key.pem"]!,
    hostname: "ignored",
  });
  assert.deepEqual([material.notBefore, material.notAfter], [notBefore, notAfter]);
  assert.equal(certificateProblem(material, new Date()), "expired on 2021-01-01T00:00:00.000Z");
  assert.equal(
    certificateProblem(material, new Date("2019-06-01T00:00:00Z")),
    "not valid before 2020-01-01T00:00:00.000Z",
  );
  assert.equal(certificateProblem(material, new Date("2020-06-01T00:00:00Z")), null);
  await Deno.remove(files.dir!, { recursive: true });
});

Deno.test("loadTlsContext takes a file holding key and chain for both flags; only the chain is published", async () => {
  const chain = await makeChain();
  const files = await tempFiles({ "both.pem": chain.leafKeyPem + chain.leafPem + chain.caPem });
  const material = await loadTlsContext({
    certFile: files["both.pem"]!,
    keyFile: files["both.pem"]!,
    hostname: "ignored",
    publishDir: `${files.dir}/published`,
  });
  assert.equal(material.fingerprint256, new X509Certificate(chain.leafPem).fingerprint256);
  assert.doesNotMatch(material.certPem, /PRIVATE KEY/);
  assert.equal(material.certPem, chain.leafPem + chain.caPem);
  assert.doesNotMatch(await Deno.readTextFile(material.certPath!), /PRIVATE KEY/);
  const server = await tlsServer(material, echoAnswer);
  assert.equal(await roundTripByName(server.port, "localhost", chain.caPem), "echo: ping\r\n");
  await server.close();
  await Deno.remove(files.dir!, { recursive: true });
});

Deno.test("loadTlsContext rejects unusable files with one line naming the file", async () => {
  const chain = await makeChain();
  const other = await makeChain();
  const files = await tempFiles({
    "cert.pem": chain.leafPem,
    "key.pem": chain.leafKeyPem,
    "other-key.pem": other.leafKeyPem,
    "junk.pem": "hello\n",
    "broken-cert.pem": "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
    "broken-key.pem": "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
    "encrypted-key.pem":
      "-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n",
  });
  const path = (name: string) => files[name]!;
  const cases: [Parameters<typeof loadTlsContext>[0], string][] = [
    [
      { certFile: `${files.dir}/missing.pem`, keyFile: path("key.pem"), hostname: "h" },
      `Cannot read TLS certificate "${files.dir}/missing.pem": no such file`,
    ],
    [
      { certFile: path("cert.pem"), keyFile: `${files.dir}/missing.pem`, hostname: "h" },
      `Cannot read TLS key "${files.dir}/missing.pem": no such file`,
    ],
    [
      { certFile: path("junk.pem"), keyFile: path("key.pem"), hostname: "h" },
      `Cannot use TLS certificate "${
        path("junk.pem")
      }": not PEM (expected "-----BEGIN CERTIFICATE-----")`,
    ],
    [
      { certFile: path("broken-cert.pem"), keyFile: path("key.pem"), hostname: "h" },
      `Cannot use TLS certificate "${path("broken-cert.pem")}": not a valid X.509 certificate`,
    ],
    [
      { certFile: path("cert.pem"), keyFile: path("junk.pem"), hostname: "h" },
      `Cannot use TLS key "${path("junk.pem")}": not PEM (expected "-----BEGIN PRIVATE KEY-----")`,
    ],
    [
      { certFile: path("cert.pem"), keyFile: path("broken-key.pem"), hostname: "h" },
      `Cannot use TLS key "${path("broken-key.pem")}": not a valid private key`,
    ],
    [
      { certFile: path("cert.pem"), keyFile: path("encrypted-key.pem"), hostname: "h" },
      `Cannot use TLS key "${
        path("encrypted-key.pem")
      }": it is encrypted (decrypt it: openssl pkey -in KEY -out PLAIN)`,
    ],
    [
      { certFile: path("cert.pem"), keyFile: path("other-key.pem"), hostname: "h" },
      `Cannot use TLS key "${path("other-key.pem")}": it does not match the certificate in "${
        path("cert.pem")
      }"`,
    ],
    [
      { certFile: path("cert.pem"), hostname: "h" },
      `Cannot use TLS certificate "${path("cert.pem")}": no key given`,
    ],
    [
      { keyFile: path("key.pem"), hostname: "h" },
      `Cannot use TLS key "${path("key.pem")}": no certificate given`,
    ],
    [{ hostname: "h" }, "Cannot set up TLS: no certificate and key files, and no self-signed"],
  ];
  for (const [options, message] of cases) {
    await assert.rejects(loadTlsContext(options), new TlsConfigError(message));
  }
  await Deno.remove(files.dir!, { recursive: true });
});

const opensslAvailable = await hasCommand("openssl", "version");
const python3Available = await hasCommand("python3", "--version");
const curlAvailable = await hasCommand("curl", "--version");

Deno.test({
  name:
    "loadTlsContext accepts the key formats openssl writes: SEC1 EC, PKCS#1 RSA, PKCS#8 Ed25519",
  ignore: !opensslAvailable,
  async fn() {
    const dir = await Deno.makeTempDir();
    const generate: Record<string, string[]> = {
      ec: ["ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", `${dir}/ec.key`],
      rsa: ["genrsa", "-traditional", "-out", `${dir}/rsa.key`, "2048"],
      ed25519: ["genpkey", "-algorithm", "ed25519", "-out", `${dir}/ed25519.key`],
    };
    const headers: Record<string, string> = {
      ec: "-----BEGIN EC PRIVATE KEY-----",
      rsa: "-----BEGIN RSA PRIVATE KEY-----",
      ed25519: "-----BEGIN PRIVATE KEY-----",
    };
    for (const [kind, args] of Object.entries(generate)) {
      const key = `${dir}/${kind}.key`;
      const cert = `${dir}/${kind}.crt`;
      assert.equal((await run("openssl", args)).code, 0, kind);
      const made = await run("openssl", [
        "req",
        "-x509",
        "-key",
        key,
        "-out",
        cert,
        "-days",
        "2",
        "-subj",
        "/CN=localhost",
        "-addext",
        "subjectAltName=DNS:localhost,IP:127.0.0.1",
      ]); // deno-fmt-ignore
      assert.equal(made.code, 0, made.stderr);
      assert.ok((await Deno.readTextFile(key)).startsWith(headers[kind]!), kind);
      const material = await loadTlsContext({ certFile: cert, keyFile: key, hostname: "x" });
      // Ed25519 is not offered by every client; the TLS check uses openssl's own client.
      const server = await tlsServer(material, echoAnswer);
      const result = await run("openssl", [
        "s_client",
        "-connect",
        `127.0.0.1:${server.port}`,
        "-CAfile",
        cert,
        "-verify_return_error",
        "-verify_ip",
        "127.0.0.1",
        "-quiet",
      ], "ping\n"); // deno-fmt-ignore
      assert.equal(result.code, 0, `${kind}: ${result.stderr}`);
      assert.equal(result.stdout, "echo: ping\n", kind);
      await server.close();
    }
    await Deno.remove(dir, { recursive: true });
  },
});

Deno.test({
  name: "loadTlsContext's self-signed certificate passes openssl verify -x509_strict",
  ignore: !opensslAvailable,
  async fn() {
    const material = await loadTlsContext({ selfSigned: true, hostname: "mail.example.test" });
    const files = await tempFiles({ "cert.pem": material.certPem });
    for (const name of ["mail.example.test", "localhost"]) {
      const result = await run("openssl", [
        "verify",
        "-x509_strict",
        "-purpose",
        "sslserver",
        "-verify_hostname",
        name,
        "-CAfile",
        files["cert.pem"]!,
        files["cert.pem"]!,
      ]); // deno-fmt-ignore
      assert.equal(result.code, 0, result.stdout + result.stderr);
    }
    for (const ip of ["127.0.0.1", "::1"]) {
      const result = await run("openssl", [
        "verify",
        "-x509_strict",
        "-verify_ip",
        ip,
        "-CAfile",
        files["cert.pem"]!,
        files["cert.pem"]!,
      ]); // deno-fmt-ignore
      assert.equal(result.code, 0, result.stdout + result.stderr);
    }
    await Deno.remove(files.dir!, { recursive: true });
  },
});

const PYTHON_CLIENT = `
import socket, ssl, sys
context = ssl.create_default_context(cafile=sys.argv[1])
# Python 3.13 turns this on by default; check now that the certificate survives it.
context.verify_flags |= ssl.VERIFY_X509_STRICT
for name in ("localhost", "127.0.0.1"):
    with socket.create_connection(("127.0.0.1", int(sys.argv[2]))) as raw:
        with context.wrap_socket(raw, server_hostname=name) as tls:
            tls.sendall(b"ping\\r\\n")
            print(name, tls.version(), tls.recv(100).decode().strip())
`;

Deno.test({
  name: "loadTlsContext's self-signed certificate is accepted by python ssl with cafile",
  ignore: !python3Available,
  async fn() {
    const material = await loadTlsContext({ selfSigned: true, hostname: "localhost" });
    const files = await tempFiles({ "cert.pem": material.certPem });
    const server = await tlsServer(material, echoAnswer);
    const result = await run("python3", [
      "-c",
      PYTHON_CLIENT,
      files["cert.pem"]!,
      String(server.port),
    ]);
    assert.equal(result.code, 0, result.stderr);
    assert.equal(
      result.stdout,
      "localhost TLSv1.3 echo: ping\n127.0.0.1 TLSv1.3 echo: ping\n",
    );
    await server.close();
    await Deno.remove(files.dir!, { recursive: true });
  },
});

Deno.test({
  name: "loadTlsContext's self-signed certificate is accepted by curl --cacert",
  ignore: !curlAvailable,
  async fn() {
    const material = await loadTlsContext({ selfSigned: true, hostname: "localhost" });
    const files = await tempFiles({ "cert.pem": material.certPem });
    const server = await tlsServer(
      material,
      () => "HTTP/1.0 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok",
    );
    for (const url of [`https://127.0.0.1:${server.port}/`, `https://localhost:${server.port}/`]) {
      const result = await run("curl", [
        "--silent",
        "--show-error",
        "--cacert",
        files["cert.pem"]!,
        "--resolve",
        `localhost:${server.port}:127.0.0.1`,
        url,
      ]); // deno-fmt-ignore
      assert.equal(result.code, 0, `${url}: ${result.stderr}`);
      assert.equal(result.stdout, "ok");
    }
    await server.close();
    await Deno.remove(files.dir!, { recursive: true });
  },
});
