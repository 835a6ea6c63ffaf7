import assert from "node:assert/strict";
import * as net from "node:net";
import * as tls from "node:tls";
import fc from "fast-check";
import { DotStuffer, SendError, sendMail, type SendOptions } from "../../../lib/net/client.ts";

// A private test CA and a leaf for localhost/127.0.0.1, valid until 2126 (openssl, P-256).
const CA_PEM = `-----BEGIN CERTIFICATE-----
MIIBhzCCAS2gAwIBAgIUF1Jx07z+IA4r+c3fVSOyXt9Mq50wCgYIKoZIzj0EAwIw
GDEWMBQGA1UEAwwNc210cGQgdGVzdCBDQTAgFw0yNjExMjMxNzUzMjZaGA8yMTI2
MTAzMDE3NTMyNlowGDEWMBQGA1UEAwwNc210cGQgdGVzdCBDQTBZMBMGByqGSM49
AgEGCCqGSM49AwEHA0IABOHz3fBiZ6sBKHf+O7bvPjclOUpPaTiIEhDewrLt2uco
Uh6psS1frSNV/WJDXTymRSfoJeeQ758/WUZBUUSe7FKjUzBRMB0GA1UdDgQWBBT2
ZSVQ1SkXlmWszhXCMHSHp8juJTAfBgNVHSMEGDAWgBT2ZSVQ1SkXlmWszhXCMHSH
p8juJTAPBgNVHRMBAf8EBTADAQH/MAoGCCqGSM49BAMCA0gAMEUCICwl7f5HXLaE
lgNCGq4IDtU9cUWp0AHEYzKcZN1gatfLAiEAzdV7rZJGhuVNQQZDX+F+RNX/WOyz
EKZ4L4ny0hJ/k7Q=
-----END CERTIFICATE-----
`;
const LEAF_PEM = `-----BEGIN CERTIFICATE-----
MIIBvTCCAWOgAwIBAgIUXQ8MHP4KavHpQfdHiolyraga9nwwCgYIKoZIzj0EAwIw
GDEWMBQGA1UEAwwNc210cGQgdGVzdCBDQTAgFw0yNjExMjMxNzUzMjZaGA8yMTI2
MTAzMDE3NTMyNlowFDESMBAGA1UEAwwJbG9jYWxob3N0MFkwEwYHKoZIzj0CAQYI
KoZIzj0DAQcDQgAE5CAo8cmsiqNEhYzMODDoPRtbaj5ZOoW4b5dF0ANyYAP/PihL
YliBw5PVJfw4Xilyqdz1arSxZbqMskagSNPmPKOBjDCBiTAaBgNVHREEEzARggls
b2NhbGhvc3SHBH8AAAEwCQYDVR0TBAIwADALBgNVHQ8EBAMCB4AwEwYDVR0lBAww
CgYIKwYBBQUHAwEwHQYDVR0OBBYEFGtsIbmQbfEooHmZob2XCe1QnYEmMB8GA1Ud
IwQYMBaAFPZlJVDVKReWZazOFcIwdIenyO4lMAoGCCqGSM49BAMCA0gAMEUCIB0r
z3u2d8/wERBGLgPoc+XTT3Yk1u0yoYQvZrgNTuT5AiEAqY7npO27YzK3Sa3sKiGz
RFAis7iCh1eGIgawlKphujc=
-----END CERTIFICATE-----
`;
const LEAF_KEY = `-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgNiyXlzbeq4EPVdh2
xo8rm17tNyyGOdlgj1PuJwC279+hRANCAATkICjxyayKo0SFjMw4MOg9G1tqPlk6
hbhvl0XQA3JgA/8+KEtiWIHDk9Ul/DheKXKp3PVqtLFluoyyRqBI0+Y8
-----END PRIVATE KEY-----
`;

const encoder = new TextEncoder();
const decoder = new TextDecoder();

interface FakeOptions {
  greeting?: string;
  /** EHLO reply lines after the first; null answers EHLO with 502. */
  ehlo?: string[] | null;
  /** "implicit" wraps the socket in TLS before the greeting. */
  tls?: "starttls" | "implicit";
  /** Reply for a command line (upper-case verb given); undefined falls back to the defaults. */
  reply?: (verb: string, line: string) => string | undefined;
  /** Reply to the final dot; null hangs up instead. */
  endOfData?: string | null;
  /** Stays silent after connecting (time-out tests). */
  mute?: boolean;
}

interface Fake {
  port: number;
  /** Command lines received, in order. */
  transcript: string[];
  /** Raw DATA bytes as on the wire (still dot-stuffed), without the final `.` CRLF. */
  data: Uint8Array[];
  close(): Promise<void>;
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}

function indexOf(haystack: Uint8Array, needle: Uint8Array): number {
  outer: for (let i = 0; i + needle.length <= haystack.length; i++) {
    for (let j = 0; j < needle.length; j++) if (haystack[i + j] !== needle[j]) continue outer;
    return i;
  }
  return -1;
}

/** A scripted SMTP server on 127.0.0.1:0, enough to watch what the client sends. */
function fakeServer(options: FakeOptions = {}): Promise<Fake> {
  const transcript: string[] = [];
  const data: Uint8Array[] = [];
  const sockets = new Set<net.Socket>();
  const secureContext = tls.createSecureContext({ key: LEAF_KEY, cert: LEAF_PEM });
  const ehlo = options.ehlo === undefined
    ? ["fake.test", "PIPELINING", "SIZE 1000000", "8BITMIME", "AUTH PLAIN LOGIN", "STARTTLS"]
    : options.ehlo;

  function handle(raw: net.Socket): void {
    sockets.add(raw);
    raw.on("error", () => {});
    let socket: net.Socket = raw;
    let buf: Uint8Array = new Uint8Array(0);
    let inData = false;
    const send = (text: string) => socket.write(text + "\r\n");
    const onData = (chunk: Uint8Array) => {
      buf = concat(buf, chunk);
      pump();
    };
    function pump(): void {
      for (let guard = 0; guard < 10_000; guard++) {
        if (inData) {
          const end = buf[0] === 0x2e && buf[1] === 0x0d && buf[2] === 0x0a
            ? -2
            : indexOf(buf, encoder.encode("\r\n.\r\n"));
          if (end === -1) return;
          data.push(buf.slice(0, end + 2));
          buf = buf.subarray(end + 5);
          inData = false;
          if (options.endOfData === null) return void socket.end();
          send(options.endOfData ?? "250 2.0.0 Ok: queued as FAKE123");
          continue;
        }
        const lf = buf.indexOf(0x0a);
        if (lf < 0) return;
        const line = decoder.decode(buf.subarray(0, lf)).replace(/\r$/, "");
        buf = buf.subarray(lf + 1);
        transcript.push(line);
        const verb = line.split(" ")[0]!.toUpperCase();
        const custom = options.reply?.(verb, line);
        if (custom !== undefined) {
          send(custom);
          if (custom.startsWith("221") || custom.startsWith("421")) socket.end();
          continue;
        }
        if (verb === "EHLO") {
          if (ehlo === null) send("502 5.5.1 No EHLO here");
          else ehlo.forEach((l, i) => send(`250${i === ehlo.length - 1 ? " " : "-"}${l}`));
        } else if (verb === "DATA") {
          send("354 End data with <CR><LF>.<CR><LF>");
          inData = true;
        } else if (verb === "QUIT") {
          send("221 2.0.0 Bye");
          socket.end();
          return;
        } else if (verb === "STARTTLS") {
          socket.write("220 2.0.0 Ready to start TLS\r\n", () => {
            socket.off("data", onData);
            socket = new tls.TLSSocket(socket, { isServer: true, secureContext });
            socket.on("error", () => {});
            socket.on("data", onData);
          });
          return;
        } else if (verb === "AUTH") send("235 2.7.0 Authentication successful");
        else if (["HELO", "MAIL", "RCPT", "RSET", "NOOP"].includes(verb)) send("250 2.0.0 Ok");
        else send("500 5.5.2 Unknown command");
      }
    }
    if (options.tls === "implicit") {
      socket = new tls.TLSSocket(raw, { isServer: true, secureContext });
      socket.on("error", () => {});
    }
    socket.on("data", onData);
    if (!options.mute) send(options.greeting ?? "220 fake.test ESMTP");
  }

  const server = net.createServer(handle);
  return new Promise((resolve) => {
    server.listen(0, "127.0.0.1", () => {
      const port = (server.address() as net.AddressInfo).port;
      resolve({
        port,
        transcript,
        data,
        close: () =>
          new Promise<void>((done) => {
            for (const s of sockets) s.destroy();
            server.close(() => done());
          }),
      });
    });
  });
}

function base(fake: Fake, extra: Partial<SendOptions> = {}): SendOptions {
  return {
    host: "127.0.0.1",
    port: fake.port,
    from: "alice@example.com",
    to: ["bob@example.com"],
    message: "Subject: hi\r\n\r\nHello\r\n",
    timeoutMs: 5_000,
    ...extra,
  };
}

async function withFake(
  options: FakeOptions,
  body: (fake: Fake) => Promise<void>,
): Promise<void> {
  const fake = await fakeServer(options);
  try {
    await body(fake);
  } finally {
    await fake.close();
  }
}

function stuff(text: string, chunkSize = Infinity): string {
  const stuffer = new DotStuffer();
  const bytes = encoder.encode(text);
  let out = "";
  const step = Math.min(chunkSize, Math.max(bytes.length, 1));
  for (let i = 0; i < bytes.length; i += step) {
    out += decoder.decode(stuffer.push(bytes.subarray(i, i + step)));
  }
  return out + decoder.decode(stuffer.end());
}

Deno.test("DotStuffer doubles a dot that starts a CRLF line, including the first line", () => {
  assert.equal(stuff(".a\r\nb\r\n..c\r\n"), "..a\r\nb\r\n...c\r\n.\r\n");
});

Deno.test("DotStuffer turns bare-LF line ends into CRLF when the input uses them", () => {
  assert.equal(stuff("Subject: x\n\n.dot\nend\n"), "Subject: x\r\n\r\n..dot\r\nend\r\n.\r\n");
});

Deno.test("DotStuffer sends a stray bare LF or bare CR as CRLF and stuffs the line after it", () => {
  // RFC 5321 §2.3.8; a relay reading "\n.\n" as end of data would run what follows.
  assert.equal(stuff("a\r\nb\n.c\r\n"), "a\r\nb\r\n..c\r\n.\r\n");
  assert.equal(
    stuff("s\r\n\r\nx\n.\nMAIL FROM:<e@x>\r\n"),
    "s\r\n\r\nx\r\n..\r\nMAIL FROM:<e@x>\r\n.\r\n",
  );
  assert.equal(stuff("abc\rdef\n"), "abc\r\ndef\r\n.\r\n");
  assert.equal(stuff("a\r\r\n.b"), "a\r\n\r\n..b\r\n.\r\n");
});

Deno.test("DotStuffer output has no bare CR or LF and unstuffs to its input's lines, any chunking", () => {
  fc.assert(
    fc.property(
      fc.stringMatching(/^[.a\r\n]{0,24}$/),
      fc.integer({ min: 1, max: 7 }),
      (text, n) => {
        const wire = stuff(text, n);
        assert.equal(wire, stuff(text));
        assert.ok(!/\r(?!\n)|(?<!\r)\n/.test(wire), JSON.stringify(wire));
        assert.ok(wire.endsWith("\r\n.\r\n") || wire === ".\r\n", JSON.stringify(wire));
        // Every input line end (CRLF, CR or LF) is one CRLF on the wire.
        const lines = text.split(/\r\n|\r|\n/);
        if (lines.at(-1) === "") lines.pop();
        const expected = lines.map((l) => l + "\r\n").join("");
        assert.equal(unstuff(wire), expected);
        // SIZE= (RFC 1870 §4): the message octets, without stuffing dots or the end marker.
        const stuffer = new DotStuffer();
        stuffer.push(encoder.encode(text));
        stuffer.end();
        assert.equal(stuffer.size, encoder.encode(expected).length);
        assert.equal(stuffer.eightBit, false);
      },
    ),
    { numRuns: 500 },
  );
});

Deno.test("DotStuffer notes a byte above 127 for BODY=8BITMIME", () => {
  const stuffer = new DotStuffer();
  stuffer.push(encoder.encode("Subject: \u00e9\n"));
  stuffer.end();
  assert.equal(stuffer.eightBit, true);
  assert.equal(stuffer.size, encoder.encode("Subject: \u00e9\r\n").length);
});

Deno.test("DotStuffer adds CRLF before the final dot when the message lacks it", () => {
  assert.equal(stuff("no newline"), "no newline\r\n.\r\n");
  assert.equal(stuff("ends in cr\r"), "ends in cr\r\n.\r\n");
  assert.equal(stuff(""), ".\r\n");
  assert.equal(stuff("."), "..\r\n.\r\n");
});

Deno.test("DotStuffer gives the same bytes for any chunking (byte by byte)", () => {
  const text = ".x\r\n..\r\n.\r\nlast";
  assert.equal(stuff(text, 1), stuff(text));
  assert.equal(stuff("a\n.b\n", 1), "a\r\n..b\r\n.\r\n");
});

function unstuff(wire: string): string {
  // The server side (RFC 5321 §4.5.2): strip the end marker, then one dot per CRLF line.
  const body = wire.slice(0, -3);
  return body.split("\r\n").map((l) => l.startsWith(".") ? l.slice(1) : l).join("\r\n");
}

Deno.test("DotStuffer round-trips any CRLF message through server-side unstuffing", () => {
  const line = fc.stringMatching(/^[.a]{0,6}$/);
  fc.assert(
    fc.property(fc.array(line, { maxLength: 8 }), fc.integer({ min: 1, max: 7 }), (lines, n) => {
      const message = lines.map((l) => l + "\r\n").join("");
      const wire = stuff(message, n);
      assert.equal(wire, stuff(message));
      assert.equal(unstuff(wire), message);
    }),
    { numRuns: 300 },
  );
});

Deno.test("sendMail sends the envelope and message and returns the queue id", async () => {
  await withFake({}, async (fake) => {
    const result = await sendMail(base(fake, { to: ["bob@example.com", "carol@example.org"] }));
    assert.deepEqual(result, {
      reply: "250 2.0.0 Ok: queued as FAKE123",
      id: "FAKE123",
      rejected: [],
    });
    assert.deepEqual(fake.transcript, [
      "EHLO localhost",
      "MAIL FROM:<alice@example.com>",
      "RCPT TO:<bob@example.com>",
      "RCPT TO:<carol@example.org>",
      "DATA",
      "QUIT",
    ]);
    assert.equal(decoder.decode(fake.data[0]), "Subject: hi\r\n\r\nHello\r\n");
  });
});

Deno.test("sendMail dot-stuffs on the wire and streams a ReadableStream message", async () => {
  await withFake({}, async (fake) => {
    const parts = ["Subject: dots\n\n", ".leading\n", "..two\nlast"];
    const message = ReadableStream.from(parts.map((p) => encoder.encode(p)));
    await sendMail(base(fake, { message }));
    assert.equal(
      decoder.decode(fake.data[0]),
      "Subject: dots\r\n\r\n..leading\r\n...two\r\nlast\r\n",
    );
  });
});

Deno.test("sendMail sends the null reverse-path, SIZE and the HELO name given", async () => {
  await withFake({}, async (fake) => {
    await sendMail(base(fake, { from: "", size: 24, helo: "client.test" }));
    assert.equal(fake.transcript[0], "EHLO client.test");
    assert.equal(fake.transcript[1], "MAIL FROM:<> SIZE=24");
  });
});

Deno.test("sendMail reads multi-line greetings and replies", async () => {
  const ehlo = ["fake.test greets you", "SIZE", "X-ONE", "X-TWO", "X-THREE"];
  await withFake(
    { greeting: "220-fake.test first\r\n220-second\r\n220 third", ehlo },
    async (fake) => {
      const result = await sendMail(base(fake, { size: 10_000_000 }));
      assert.equal(result.id, "FAKE123");
    },
  );
});

Deno.test("sendMail refuses locally when the message is larger than the advertised SIZE", async () => {
  await withFake({ ehlo: ["fake.test", "SIZE 100"] }, async (fake) => {
    const error = await sendMail(base(fake, { size: 200 })).catch((e) => e);
    assert.ok(error instanceof SendError);
    // Our own refusal: code 0, worded so that it cannot pass for a server's reply.
    assert.equal(error.code, 0);
    assert.equal(
      error.message,
      "the message is 200 bytes; the server accepts at most 100 (SIZE)",
    );
    assert.deepEqual(fake.transcript, ["EHLO localhost", "QUIT"]);
  });
});

Deno.test("sendMail refuses an address that would end its command line, sending nothing", async () => {
  await withFake({}, async (fake) => {
    for (const bad of [{ to: ["ok@y>\r\nRCPT TO:<ok2@y"] }, { from: "a@b\r\nRSET" }]) {
      const error = await sendMail(base(fake, bad)).catch((e) => e);
      assert.ok(error instanceof SendError, String(error));
      assert.match(error.message, /^Cannot use address ".*": it holds a space/);
    }
    const error = await sendMail(base(fake, { helo: "x\r\nRCPT TO:<i@evil>" })).catch((e) => e);
    assert.ok(error instanceof SendError, String(error));
    assert.match(error.message, /^Cannot use helo ".*": it holds a space/);
    assert.deepEqual(fake.transcript, []);
  });
});

Deno.test("sendMail throws SendError with the reply when the only recipient is refused", async () => {
  const reply = (verb: string) => verb === "RCPT" ? "550 5.1.1 No such user" : undefined;
  await withFake({ reply }, async (fake) => {
    const error = await sendMail(base(fake)).catch((e) => e);
    assert.ok(error instanceof SendError);
    assert.equal(error.code, 550);
    assert.equal(error.text, "5.1.1 No such user");
    assert.equal(error.command, "RCPT TO:<bob@example.com>");
    assert.equal(error.message, "550 5.1.1 No such user");
    assert.equal(fake.transcript.at(-1), "QUIT");
    assert.ok(!fake.transcript.includes("DATA"));
  });
});

Deno.test("sendMail still sends to accepted recipients and lists the refused ones", async () => {
  const reply = (_verb: string, line: string) =>
    line.includes("bounce@") ? "550-5.1.1 No such user\r\n550 5.1.1 (really)" : undefined;
  await withFake({ reply }, async (fake) => {
    const result = await sendMail(base(fake, { to: ["bounce@example.com", "bob@example.com"] }));
    assert.equal(result.id, "FAKE123");
    assert.deepEqual(result.rejected, [
      { address: "bounce@example.com", code: 550, text: "5.1.1 No such user 5.1.1 (really)" },
    ]);
  });
});

Deno.test("sendMail throws SendError for a failing MAIL and a failing end of data", async () => {
  await withFake(
    { reply: (v) => v === "MAIL" ? "451 4.3.0 Try later" : undefined },
    async (fake) => {
      const error = await sendMail(base(fake)).catch((e) => e);
      assert.ok(error instanceof SendError);
      assert.equal(error.message, "451 4.3.0 Try later");
    },
  );
  await withFake({ endOfData: "554 5.6.0 Rejected" }, async (fake) => {
    const error = await sendMail(base(fake)).catch((e) => e);
    assert.ok(error instanceof SendError);
    assert.equal(error.code, 554);
    assert.equal(fake.transcript.at(-1), "QUIT");
  });
});

Deno.test("sendMail takes a 3xx where a 2xx belongs for a failure (SPEC §2: non-2xx)", async () => {
  await withFake({ endOfData: "354 weird" }, async (fake) => {
    const error = await sendMail(base(fake)).catch((e) => e);
    assert.ok(error instanceof SendError);
    assert.equal(error.message, "354 weird");
  });
  await withFake({ reply: (v) => v === "MAIL" ? "334 what" : undefined }, async (fake) => {
    const error = await sendMail(base(fake)).catch((e) => e);
    assert.ok(error instanceof SendError);
    assert.equal(error.code, 334);
  });
  await withFake({ reply: (v) => v === "RCPT" ? "354 odd" : undefined }, async (fake) => {
    const error = await sendMail(base(fake)).catch((e) => e);
    assert.ok(error instanceof SendError);
    assert.equal(error.code, 354);
    assert.ok(!fake.transcript.includes("DATA"));
  });
});

Deno.test("sendMail throws SendError for a refusing greeting", async () => {
  await withFake({ greeting: "554 5.3.2 Go away" }, async (fake) => {
    const error = await sendMail(base(fake)).catch((e) => e);
    assert.ok(error instanceof SendError);
    assert.equal(error.message, "554 5.3.2 Go away");
  });
});

Deno.test("sendMail falls back to HELO when EHLO gets a 5xx", async () => {
  await withFake({ ehlo: null }, async (fake) => {
    await sendMail(base(fake, { size: 20 }));
    assert.deepEqual(fake.transcript.slice(0, 3), [
      "EHLO localhost",
      "HELO localhost",
      "MAIL FROM:<alice@example.com>",
    ]);
  });
});

Deno.test("sendMail authenticates with AUTH PLAIN and an initial response", async () => {
  await withFake({}, async (fake) => {
    await sendMail(base(fake, { auth: { user: "bob", pass: "s3cret" } }));
    assert.equal(fake.transcript[1], `AUTH PLAIN ${btoa("\0bob\0s3cret")}`);
  });
});

Deno.test("sendMail uses AUTH LOGIN when only LOGIN is offered", async () => {
  let step = 0;
  const reply = (verb: string) => {
    if (verb === "AUTH" || step === 1) return ++step < 3 ? "334 VXNlcm5hbWU6" : undefined;
    if (step === 2) return (step++, "235 2.7.0 Ok");
    return undefined;
  };
  await withFake({ ehlo: ["fake.test", "AUTH LOGIN"], reply }, async (fake) => {
    await sendMail(base(fake, { auth: { user: "bob", pass: "pw" } }));
    assert.deepEqual(fake.transcript.slice(1, 4), ["AUTH LOGIN", btoa("bob"), btoa("pw")]);
  });
});

Deno.test("sendMail reports a failed AUTH without the secret", async () => {
  const reply = (verb: string) => verb === "AUTH" ? "535 5.7.8 Bad credentials" : undefined;
  await withFake({ reply }, async (fake) => {
    const error = await sendMail(base(fake, { auth: { user: "bob", pass: "pw" } })).catch((e) => e);
    assert.ok(error instanceof SendError);
    assert.equal(error.command, "AUTH PLAIN");
    assert.equal(error.message, "535 5.7.8 Bad credentials");
  });
});

Deno.test("sendMail upgrades with STARTTLS, verifying against caCerts, and says EHLO again", async () => {
  await withFake({}, async (fake) => {
    const result = await sendMail(base(fake, { starttls: true, caCerts: [CA_PEM] }));
    assert.equal(result.id, "FAKE123");
    assert.deepEqual(fake.transcript.slice(0, 3), ["EHLO localhost", "STARTTLS", "EHLO localhost"]);
  });
});

Deno.test("sendMail refuses an untrusted certificate unless insecure", async () => {
  await withFake({}, async (fake) => {
    const error = await sendMail(base(fake, { starttls: true })).catch((e) => e);
    assert.ok(error instanceof SendError);
    assert.equal(error.code, 0);
    assert.match(
      error.message,
      /^TLS with 127\.0\.0\.1:\d+ failed: the server's certificate is signed by no CA trusted here \(give it with --ca, or use --insecure\) \(.*UnknownIssuer.*\)$/,
    );
  });
  await withFake({}, async (fake) => {
    const result = await sendMail(base(fake, { starttls: true, insecure: true }));
    assert.equal(result.id, "FAKE123");
    assert.deepEqual(fake.transcript.slice(0, 3), ["EHLO localhost", "STARTTLS", "EHLO localhost"]);
  });
});

Deno.test("sendMail speaks implicit TLS, verified or insecure", async () => {
  await withFake({ tls: "implicit" }, async (fake) => {
    const result = await sendMail(base(fake, { tls: true, caCerts: [CA_PEM], host: "localhost" }));
    assert.equal(result.id, "FAKE123");
  });
  await withFake({ tls: "implicit" }, async (fake) => {
    const error = await sendMail(base(fake, { tls: true })).catch((e) => e);
    assert.ok(error instanceof SendError);
    assert.match(error.message, /^TLS with 127\.0\.0\.1:\d+ failed: /);
  });
  await withFake({ tls: "implicit" }, async (fake) => {
    const result = await sendMail(base(fake, { tls: true, insecure: true }));
    assert.equal(result.id, "FAKE123");
  });
});

Deno.test("sendMail fails when STARTTLS is wanted but not offered", async () => {
  await withFake({ ehlo: ["fake.test", "SIZE 1000"] }, async (fake) => {
    const error = await sendMail(base(fake, { starttls: true })).catch((e) => e);
    assert.ok(error instanceof SendError);
    assert.match(error.message, /^127\.0\.0\.1:\d+ does not offer STARTTLS$/);
  });
});

Deno.test("sendMail reports a refused connection in one line", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  const error = await sendMail({
    host: "127.0.0.1",
    port,
    from: "a@b",
    to: ["c@d"],
    message: "x",
  }).catch((e) => e);
  assert.ok(error instanceof SendError);
  assert.equal(error.code, 0);
  assert.match(error.message, new RegExp(`^cannot connect to 127\\.0\\.0\\.1:${port}: `));
  assert.ok(!error.message.includes("\n"));
});

Deno.test("sendMail times out on a server that never greets", async () => {
  await withFake({ mute: true }, async (fake) => {
    const error = await sendMail(base(fake, { timeoutMs: 200 })).catch((e) => e);
    assert.ok(error instanceof SendError);
    assert.equal(error.message, "timed out after 0.2s waiting for the server before its greeting");
  });
  await withFake({ mute: true }, async (fake) => {
    const error = await sendMail(base(fake, { timeoutMs: 200, insecure: true })).catch((e) => e);
    assert.ok(error instanceof SendError);
    assert.equal(error.message, "timed out after 0.2s waiting for the server before its greeting");
  });
});

Deno.test("sendMail clamps a time-out past 2^31-1 ms instead of timing out at once", async () => {
  // An overflowed timer fires after 1 ms: the greeting wait would have failed at once.
  await withFake({ mute: true }, async (fake) => {
    let settled = false;
    const sending = sendMail(base(fake, { timeoutMs: 1000 * 3_600_000 }))
      .catch((e) => e)
      .finally(() => (settled = true));
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(settled, false, "still waiting for the greeting");
    await fake.close();
    const error = await sending;
    assert.ok(error instanceof SendError);
    assert.doesNotMatch(error.message, /timed out/);
  });
});

Deno.test("sendMail reports a server that hangs up mid-session", async () => {
  const reply = (verb: string) => verb === "MAIL" ? "421 4.3.2 Shutting down" : undefined;
  await withFake({ reply }, async (fake) => {
    const error = await sendMail(base(fake)).catch((e) => e);
    assert.ok(error instanceof SendError);
    assert.equal(error.message, "421 4.3.2 Shutting down");
  });
});

Deno.test("sendMail names the end of data when the server hangs up instead of answering it", async () => {
  await withFake({ endOfData: null }, async (fake) => {
    const error = await sendMail(base(fake)).catch((e) => e);
    assert.ok(error instanceof SendError);
    assert.equal(error.message, "server closed the connection after end of data");
  });
});

const SMTP_SINK = "/usr/sbin/smtp-sink";
const HAVE_SMTP_SINK = (() => {
  try {
    return Deno.statSync(SMTP_SINK).isFile;
  } catch {
    return false;
  }
})();
if (!HAVE_SMTP_SINK) {
  // deno-lint-ignore no-console
  console.log(`skipping the smtp-sink test: ${SMTP_SINK} is not installed (Postfix)`);
}

Deno.test({
  name: "sendMail against Postfix smtp-sink",
  ignore: !HAVE_SMTP_SINK,
  fn: async () => {
    const dir = await Deno.makeTempDir();
    await Deno.chmod(dir, 0o777);
    const probe = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const port = (probe.addr as Deno.NetAddr).port;
    probe.close();
    // smtp-sink must drop root privileges (-u); -d dumps each message to a file.
    const uid = Deno.uid?.() ?? 1;
    const args = [
      ...(uid === 0 ? ["-u", "nobody"] : []),
      "-d",
      `${dir}/%M.`,
      `127.0.0.1:${port}`,
      "10",
    ];
    const child = new Deno.Command(SMTP_SINK, { args, stdout: "null", stderr: "piped" }).spawn();
    try {
      let result = null;
      for (let attempt = 0; attempt < 50 && result === null; attempt++) {
        try {
          result = await sendMail({
            host: "127.0.0.1",
            port,
            from: "alice@example.com",
            to: ["bob@example.com"],
            message: "Subject: sink\n\n.dotted\nbody\n",
            timeoutMs: 5_000,
          });
        } catch (e: unknown) {
          if (!(e instanceof SendError && e.code === 0 && e.message.startsWith("cannot connect"))) {
            throw e;
          }
          await new Promise((r) => setTimeout(r, 100));
        }
      }
      assert.ok(result, "smtp-sink did not start");
      assert.match(result.reply, /^250 /);
      let dump = "";
      for (let attempt = 0; attempt < 50 && !dump.includes("body"); attempt++) {
        for await (const entry of Deno.readDir(dir)) {
          dump = await Deno.readTextFile(`${dir}/${entry.name}`);
        }
        if (!dump.includes("body")) await new Promise((r) => setTimeout(r, 100));
      }
      // smtp-sink stores lines with LF; the dot must be unstuffed back to one.
      assert.ok(dump.includes("\nSubject: sink\n\n.dotted\nbody\n"), dump);
    } finally {
      child.kill("SIGTERM");
      await child.status;
      await child.stderr.cancel();
      await Deno.remove(dir, { recursive: true });
    }
  },
});
