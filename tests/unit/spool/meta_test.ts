import assert from "node:assert/strict";
import { buildMeta, type MetaInput, parseMeta, protocolName } from "../../../lib/spool/meta.ts";

Deno.test("protocolName follows RFC 3848 and RFC 6531 §3.7.3", () => {
  const cases: [boolean, boolean, boolean, boolean, string][] = [
    // esmtp, tls, auth, smtputf8
    [false, false, false, false, "SMTP"],
    [false, true, true, false, "SMTP"],
    [true, false, false, false, "ESMTP"],
    [true, true, false, false, "ESMTPS"],
    [true, false, true, false, "ESMTPA"],
    [true, true, true, false, "ESMTPSA"],
    [true, false, false, true, "UTF8SMTP"],
    [true, true, false, true, "UTF8SMTPS"],
    [true, false, true, true, "UTF8SMTPA"],
    [true, true, true, true, "UTF8SMTPSA"],
    [false, true, false, true, "UTF8SMTPS"],
  ];
  for (const [esmtp, tls, auth, smtputf8, expected] of cases) {
    assert.equal(protocolName({ esmtp, tls, auth, smtputf8 }), expected);
  }
});

const INPUT: MetaInput = {
  xforward: { ADDR: "192.0.2.1" },
  auth: null,
  tls: null,
  server: { address: "127.0.0.1", port: 1025 },
  client: { address: "127.0.0.1", port: 50412 },
  protocol: "ESMTP",
  helo: "client.example",
  rcptParams: [{}],
  mailParams: { BODY: "8BITMIME", SMTPUTF8: true },
  rcptTo: ["bob@example.com"],
  mailFrom: "",
};

Deno.test("buildMeta orders keys as SPEC §3 shows them", () => {
  const meta = buildMeta(INPUT, {
    id: "01ARZ3NDEKTSV4RRFFQ69G5FAV",
    receivedAt: "2026-11-23T06:53:00.123Z",
    size: 0,
    sha256: "e3b0",
    headers: { messageId: "<m@x>", subject: "s" },
  });
  assert.deepEqual(Object.keys(meta), [
    "id",
    "receivedAt",
    "mailFrom",
    "rcptTo",
    "mailParams",
    "rcptParams",
    "helo",
    "protocol",
    "client",
    "server",
    "tls",
    "auth",
    "size",
    "sha256",
    "headers",
    "xforward",
  ]);
  assert.deepEqual(Object.keys(meta.headers), ["subject", "messageId"]);
  assert.deepEqual(parseMeta(JSON.stringify(meta)), meta);
});

Deno.test("buildMeta leaves out xforward when it was not used", () => {
  const { xforward: _, ...input } = INPUT;
  const meta = buildMeta(input, { id: "x", receivedAt: "t", size: 0, sha256: "", headers: {} });
  assert.ok(!("xforward" in meta));
});

Deno.test("buildMeta keeps client.name (XCLIENT NAME) only when given", () => {
  const facts = { id: "x", receivedAt: "t", size: 0, sha256: "", headers: {} };
  const named = { ...INPUT, client: { ...INPUT.client, name: "mail.example.org" } };
  assert.deepEqual(buildMeta(named, facts).client, {
    address: "127.0.0.1",
    port: 50412,
    name: "mail.example.org",
  });
  assert.deepEqual(Object.keys(buildMeta(INPUT, facts).client), ["address", "port"]);
});

Deno.test("parseMeta rejects what is not a meta", () => {
  for (const text of ["", "{", "null", "[]", '{"id":"x"}', '"str"']) {
    assert.equal(parseMeta(text), null, text);
  }
});
