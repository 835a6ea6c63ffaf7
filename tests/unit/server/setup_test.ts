import assert from "node:assert/strict";
import { OptionError, setup } from "../../../lib/server/setup.ts";

Deno.test("setup refuses --tls-self-signed together with --tls-cert/--tls-key", async () => {
  // Checked before any file is read: the paths need not exist.
  const error = await setup({ tlsCert: "c.pem", tlsKey: "k.pem", tlsSelfSigned: true })
    .catch((e) => e);
  assert.ok(error instanceof OptionError, String(error));
  assert.equal(error.flag, "--tls-self-signed");
  assert.equal(error.message, "cannot be combined with --tls-cert/--tls-key");
});
