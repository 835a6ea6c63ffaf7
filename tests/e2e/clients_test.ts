/**
 * Interoperability with the clients applications really use (SPEC §1):
 * python3 smtplib, swaks, curl, msmtp and Postfix smtp-source. Each test
 * checks the stored bytes and the `.json`, not only that the client was happy.
 */

import assert from "node:assert/strict";
import { assertStored, sha256Hex, started } from "../helpers/launcher.ts";
import { curl, msmtp, python, smtpSource, swaks, toolTest } from "../helpers/clients.ts";

const enc = new TextEncoder();

function encodeBase64(bytes: Uint8Array): string {
  return btoa(Array.from(bytes, (b) => String.fromCharCode(b)).join(""));
}

const SENDMAIL_PY = `
import base64, smtplib, sys
port, data = int(sys.argv[1]), base64.b64decode(sys.argv[2])
with smtplib.SMTP("127.0.0.1", port, local_hostname="py.example", timeout=30) as s:
    refused = s.sendmail("alice@example.com", ["bob@example.com", "carol@example.org"], data)
    assert refused == {}, refused
print("sent")
`;

const SEND_MESSAGE_PY = `
import base64, io, smtplib, sys
from email.generator import BytesGenerator
from email.message import EmailMessage
port = int(sys.argv[1])
msg = EmailMessage()
msg["From"] = "Jörg <joerg@example.com>"
msg["To"] = "bob@example.com"
msg["Subject"] = "Grüße aus Köln ✓ — a subject long enough to be folded by the generator"
msg["Message-ID"] = "<py1@example.com>"
msg.set_content("Hallo Bob,\\n.ein Punkt am Zeilenanfang\\nÄÖÜ\\n")
# The same flattening smtplib.send_message does, so the test knows the exact bytes.
buf = io.BytesIO()
BytesGenerator(buf).flatten(msg, linesep="\\r\\n")
print(base64.b64encode(buf.getvalue()).decode())
with smtplib.SMTP("127.0.0.1", port, local_hostname="py.example", timeout=30) as s:
    s.send_message(msg)
`;

toolTest("e2e: python3 smtplib sendmail to two recipients", ["python3"], async () => {
  await using server = await started();
  const message = "From: alice@example.com\r\nTo: bob@example.com, carol@example.org\r\n" +
    "Subject: smtplib\r\n\r\n.dot first\r\nbody\r\n";
  const r = await python(SENDMAIL_PY, [String(server.port), encodeBase64(enc.encode(message))]);
  assert.equal(r.code, 0, r.stderr);
  const msgs = await server.waitForMessages(1);
  assert.equal(msgs.length, 1);
  await assertStored(msgs[0]!, message);
  const m = msgs[0]!.meta;
  assert.equal(m.mailFrom, "alice@example.com");
  assert.deepEqual(m.rcptTo, ["bob@example.com", "carol@example.org"]);
  assert.equal(m.helo, "py.example");
  assert.equal(m.protocol, "ESMTP");
  assert.deepEqual(m.mailParams, { SIZE: String(enc.encode(message).length) });
  assert.equal(m.headers.subject, "smtplib");
});

toolTest("e2e: python3 smtplib send_message with an RFC 2047 Subject", ["python3"], async () => {
  await using server = await started();
  const r = await python(SEND_MESSAGE_PY, [String(server.port)]);
  assert.equal(r.code, 0, r.stderr);
  const flat = Uint8Array.from(atob(r.stdout.trim()), (ch) => ch.charCodeAt(0));
  assert.match(
    new TextDecoder().decode(flat),
    /^Subject: =\?utf-8\?/m,
    "python encoded the subject",
  );
  const [msg] = await server.waitForMessages(1);
  assert.ok(msg);
  await assertStored(msg, flat);
  assert.equal(
    msg.meta.headers.subject,
    "Grüße aus Köln ✓ — a subject long enough to be folded by the generator",
  );
  assert.equal(msg.meta.headers.from, "Jörg <joerg@example.com>");
  assert.equal(msg.meta.headers.messageId, "<py1@example.com>");
  assert.equal(msg.meta.sha256, await sha256Hex(flat));
});

toolTest("e2e: swaks sends a message with --data", ["swaks"], async () => {
  await using server = await started();
  const message = "From: a@example.com\r\nTo: b@example.com\r\nSubject: swaks\r\n\r\n" +
    ".dotted\r\nline\r\n";
  const file = `${server.dir}/swaks.eml`;
  // swaks sends CRLF . CRLF after the data as given, so a final line ending in
  // the file would become an extra empty line of the message.
  await Deno.writeTextFile(file, message.slice(0, -2));
  const r = await swaks(server.port, [
    "--from",
    "a@example.com",
    "--to",
    "b@example.com,c@example.com",
    "--helo",
    "swaks.example",
    "--data",
    file,
  ]);
  assert.equal(r.code, 0, r.stdout + r.stderr);
  const [msg] = await server.waitForMessages(1);
  assert.ok(msg);
  await assertStored(msg, message);
  assert.deepEqual(msg.meta.rcptTo, ["b@example.com", "c@example.com"]);
  assert.equal(msg.meta.helo, "swaks.example");
  assert.equal(msg.meta.headers.subject, "swaks");
});

toolTest("e2e: curl smtp:// uploads a file", ["curl"], async () => {
  await using server = await started();
  const message = "From: a@example.com\r\nTo: b@example.com\r\nSubject: curl\r\n\r\n" +
    ".dotted\r\nline\r\n";
  const file = `${server.dir}/curl.eml`;
  await Deno.writeTextFile(file, message);
  const r = await curl(`smtp://127.0.0.1:${server.port}/curl.example`, [
    "--mail-from",
    "a@example.com",
    "--mail-rcpt",
    "b@example.com",
    "--mail-rcpt",
    "c@example.com",
    "-T",
    file,
  ]);
  assert.equal(r.code, 0, r.stderr);
  const [msg] = await server.waitForMessages(1);
  assert.ok(msg);
  await assertStored(msg, message);
  assert.equal(msg.meta.mailFrom, "a@example.com");
  assert.deepEqual(msg.meta.rcptTo, ["b@example.com", "c@example.com"]);
  assert.equal(msg.meta.helo, "curl.example");
});

toolTest("e2e: msmtp sends a message read from stdin", ["msmtp"], async () => {
  await using server = await started();
  // Applications hand msmtp LF text (the sendmail interface); the wire form is CRLF.
  const lf = "From: a@example.com\nTo: b@example.com\nSubject: msmtp\n" +
    "Date: Mon, 23 Nov 2026 06:53:00 +0000\nMessage-ID: <m@example.com>\n\n.dotted\nline\n";
  const r = await msmtp(server.port, "a@example.com", ["b@example.com"], lf);
  assert.equal(r.code, 0, r.stderr);
  const [msg] = await server.waitForMessages(1);
  assert.ok(msg);
  await assertStored(msg, lf.replaceAll("\n", "\r\n"));
  assert.equal(msg.meta.helo, "client.example");
  assert.equal(msg.meta.headers.subject, "msmtp");
});

toolTest(
  "e2e: Postfix smtp-source stores 50 messages over 5 sessions",
  ["smtp-source"],
  async () => {
    await using server = await started();
    const r = await smtpSource(server.port, [
      "-s",
      "5",
      "-m",
      "50",
      "-l",
      "1024",
      "-f",
      "load@example.com",
      "-t",
      "sink@example.com",
    ]);
    assert.equal(r.code, 0, r.stderr);
    const msgs = await server.waitForMessages(50);
    assert.equal(msgs.length, 50);
    assert.equal(new Set(msgs.map((m) => m.id)).size, 50);
    for (const m of msgs) {
      await assertStored(m, m.eml); // self-consistency: .json digest and size match the .eml
      assert.ok(m.eml.length >= 1024, `${m.id}: ${m.eml.length} bytes`);
      assert.equal(m.meta.mailFrom, "load@example.com");
      assert.deepEqual(m.meta.rcptTo, ["sink@example.com"]);
    }
  },
);
