import { deepStrictEqual, strictEqual } from "node:assert/strict";
import fc from "fast-check";
import { decodeBase64, encodeBase64, SaslExchange, type SaslStep } from "../../../lib/smtp/sasl.ts";

const b64 = (s: string) => encodeBase64(s);
function summary(step: SaslStep): string {
  if (step.type === "credentials") return JSON.stringify(step.credentials);
  return `${step.reply.code} ${step.reply.enhanced} ${step.reply.lines[0]}`.replace("  ", " ");
}

Deno.test("base64: strict decoding, round trip with the encoder", () => {
  deepStrictEqual(decodeBase64(""), new Uint8Array(0));
  strictEqual(new TextDecoder().decode(decodeBase64("aGk=")!), "hi");
  for (const bad of ["a", "aGk", "aG=k", "a===", "aGk=\n", "****", "aGk=aGk="]) {
    strictEqual(decodeBase64(bad), null, bad);
  }
  fc.assert(
    fc.property(fc.string({ maxLength: 40 }), (s) => {
      strictEqual(new TextDecoder().decode(decodeBase64(encodeBase64(s))!), s);
    }),
    { numRuns: 200 },
  );
});

Deno.test("PLAIN with an initial response, via 334, and = for empty", () => {
  const creds = '{"mechanism":"PLAIN","username":"bob","password":"secret"}';
  strictEqual(summary(new SaslExchange("PLAIN", () => "").start(b64("\0bob\0secret"))), creds);
  strictEqual(
    summary(new SaslExchange("PLAIN", () => "").start(b64("admin\0bob\0secret"))),
    '{"mechanism":"PLAIN","username":"bob","password":"secret","authzid":"admin"}',
    "the authzid is kept for the server to check (RFC 4616 §2)",
  );
  const sasl = new SaslExchange("PLAIN", () => "");
  strictEqual(summary(sasl.start(null)), "334 ");
  strictEqual(summary(sasl.respond(b64("\0bob\0secret"))), creds);
  strictEqual(
    summary(new SaslExchange("PLAIN", () => "").start("=")),
    "501 5.5.2 Malformed authentication data",
  );
});

Deno.test("PLAIN refusals: bad base64, malformed, cancelled", () => {
  const start = (ir: string) => summary(new SaslExchange("PLAIN", () => "").start(ir));
  strictEqual(start("!!!"), "501 5.5.2 Cannot decode response");
  strictEqual(start(b64("bob\0secret")), "501 5.5.2 Malformed authentication data");
  strictEqual(start(b64("\0\0secret")), "501 5.5.2 Malformed authentication data");
  const sasl = new SaslExchange("PLAIN", () => "");
  sasl.start(null);
  strictEqual(summary(sasl.respond("*")), "501 5.0.0 Authentication cancelled");
});

Deno.test("LOGIN prompts for user name and password", () => {
  const sasl = new SaslExchange("LOGIN", () => "");
  strictEqual(summary(sasl.start(null)), "334 VXNlcm5hbWU6");
  strictEqual(summary(sasl.respond(b64("bob"))), "334 UGFzc3dvcmQ6");
  strictEqual(
    summary(sasl.respond(b64("pw"))),
    '{"mechanism":"LOGIN","username":"bob","password":"pw"}',
  );
  const ir = new SaslExchange("LOGIN", () => "");
  strictEqual(summary(ir.start(b64("bob"))), "334 UGFzc3dvcmQ6");
});

Deno.test("CRAM-MD5 sends the challenge and returns the digest", () => {
  const sasl = new SaslExchange("CRAM-MD5", () => "<1.2@mx>");
  strictEqual(summary(sasl.start(null)), `334 ${b64("<1.2@mx>")}`);
  const digest = "B913A602C7EDA7A495B4E6E7334D3890";
  strictEqual(
    summary(sasl.respond(b64(`tim ${digest}`))),
    JSON.stringify({
      mechanism: "CRAM-MD5",
      username: "tim",
      challenge: "<1.2@mx>",
      digest: digest.toLowerCase(),
    }),
  );
  const bad = new SaslExchange("CRAM-MD5", () => "<1.2@mx>");
  bad.start(null);
  strictEqual(summary(bad.respond(b64("tim"))), "501 5.5.2 Malformed authentication data");
  strictEqual(
    summary(new SaslExchange("CRAM-MD5", () => "").start("x")),
    "501 5.5.4 Syntax: AUTH CRAM-MD5",
  );
});
