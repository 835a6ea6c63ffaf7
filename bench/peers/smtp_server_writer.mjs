// nodemailer's smtp-server with a small durable two-file writer: a peer for smtpd.
//
// Usage: node smtp_server_writer.mjs --port PORT --spool DIR [--no-fsync]
//          [--tls-cert PEM --tls-key PEM]
//
// Each message becomes <id>.eml and <id>.json, committed the way smtpd commits
// (SPEC section 3): stream the body into a temporary file, fsync it, rename it
// to .eml, write the .json the same way, fsync the directory, and only then
// answer 250. With --no-fsync every fsync is skipped. The body is streamed,
// never held whole, so the 1 GiB case measures smtp-server itself.
// STARTTLS is offered as smtp-server does by default; --tls-cert/--tls-key
// replace its bundled certificate, an X.509 v1 one that rustls (Deno) refuses.

import { createHash } from "node:crypto";
import { mkdirSync, readFileSync } from "node:fs";
import { open, rename } from "node:fs/promises";
import { basename, join } from "node:path";
import { parseArgs } from "node:util";
import { SMTPServer } from "smtp-server";

const { values } = parseArgs({
  options: {
    port: { type: "string" },
    spool: { type: "string" },
    "no-fsync": { type: "boolean", default: false },
    "tls-cert": { type: "string" },
    "tls-key": { type: "string" },
  },
});
if (!values.port || !values.spool) {
  process.stderr.write(
    "usage: node smtp_server_writer.mjs --port PORT --spool DIR [--no-fsync] " +
      "[--tls-cert PEM --tls-key PEM]\n",
  );
  process.exit(2);
}
const spool = values.spool;
const tmp = join(spool, ".tmp");
const durable = !values["no-fsync"];
mkdirSync(tmp, { recursive: true });

let counter = 0;
function nextId() {
  // Sortable by time of receipt; the counter keeps ids unique within a ms.
  const ms = String(Date.now()).padStart(15, "0");
  return `${ms}-${process.pid}-${String(counter++).padStart(8, "0")}`;
}

async function commitFile(final, handle) {
  if (durable) await handle.sync();
  await handle.close();
  await rename(join(tmp, basename(final)), final);
}

async function store(stream, session) {
  const id = nextId();
  const emlPath = join(spool, `${id}.eml`);
  const eml = await open(join(tmp, `${id}.eml`), "w");
  const hash = createHash("sha256");
  let size = 0;
  try {
    for await (const chunk of stream) {
      hash.update(chunk);
      size += chunk.length;
      await eml.write(chunk);
    }
  } catch (error) {
    await eml.close();
    throw error;
  }
  await commitFile(emlPath, eml);
  const meta = {
    id,
    receivedAt: new Date().toISOString(),
    mailFrom: session.envelope.mailFrom ? session.envelope.mailFrom.address : "",
    rcptTo: session.envelope.rcptTo.map((r) => r.address),
    helo: session.hostNameAppearsAs,
    client: { address: session.remoteAddress, port: session.remotePort },
    size,
    sha256: hash.digest("hex"),
  };
  const jsonPath = join(spool, `${id}.json`);
  const json = await open(join(tmp, `${id}.json`), "w");
  await json.writeFile(JSON.stringify(meta));
  await commitFile(jsonPath, json);
  if (durable) {
    // The renames are durable only once the directory entry is.
    const dir = await open(spool, "r");
    await dir.sync();
    await dir.close();
  }
  return id;
}

const tls = values["tls-cert"] && values["tls-key"]
  ? { cert: readFileSync(values["tls-cert"]), key: readFileSync(values["tls-key"]) }
  : {};
const server = new SMTPServer({
  ...tls,
  logger: false,
  authOptional: true,
  disabledCommands: ["AUTH"],
  // A PTR lookup per connection measures the resolver, not the server.
  disableReverseLookup: true,
  onData(stream, session, callback) {
    store(stream, session).then(
      (id) => callback(null, `2.0.0 Ok: queued as ${id}`),
      (error) => {
        error.responseCode = 451;
        callback(error);
      },
    );
  },
});
server.on("error", (error) => process.stderr.write(`smtp-server: ${error.message}\n`));
server.listen(Number(values.port), "127.0.0.1");
for (const signal of ["SIGINT", "SIGTERM"]) {
  // Exit at once: the harness stops a server between runs, idle sessions or not.
  process.on(signal, () => process.exit(0));
}
