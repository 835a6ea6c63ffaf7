import assert from "node:assert/strict";
import { envName, type Invocation, parseCommandLine, parseCount } from "../../../lib/cli/flags.ts";
import { UsageError } from "../../../lib/cli/errors.ts";
import type { ServeOptions } from "../../../lib/mod.ts";

function serve(argv: string[], env: Record<string, string> = {}): ServeOptions {
  const parsed = parseCommandLine(argv, env);
  assert.equal(parsed.command, "serve");
  return (parsed as Extract<Invocation, { command: "serve" }>).options;
}

/** The UsageError thrown, as the one line `main` prints. */
function usage(argv: string[], env: Record<string, string> = {}): string {
  try {
    parseCommandLine(argv, env);
  } catch (e: unknown) {
    assert.ok(e instanceof UsageError, `expected a UsageError, got ${e}`);
    return e.flag === undefined ? e.message : `${e.flag}: ${e.message}`;
  }
  assert.fail(`no usage error for ${JSON.stringify(argv)}`);
}

Deno.test("parseCommandLine defaults to serve with no options set", () => {
  assert.deepEqual(parseCommandLine([], {}), { command: "serve", options: {}, envNames: {} });
  assert.deepEqual(parseCommandLine(["serve"], {}), {
    command: "serve",
    options: {},
    envNames: {},
  });
});

Deno.test("parseCommandLine maps every serve flag to its ServeOptions key", () => {
  // --tls-self-signed, which excludes --tls-cert, is in the next two tests.
  const options = serve([
    "--spool=/tmp/mail",
    "--listen",
    "127.0.0.1:0",
    "--listen",
    "[::1]:2525",
    "--listen-tls",
    "0.0.0.0:465",
    "--hostname",
    "mx.test",
    "--tls-cert",
    "c.pem",
    "--tls-key",
    "k.pem",
    "--require-tls",
    "--auth-file",
    "users.txt",
    "--require-auth",
    "--max-size",
    "10MB",
    "--max-recipients",
    "5",
    "--max-connections",
    "7",
    "--timeout",
    "30s",
    "--on-message",
    "echo $SMTPD_ID",
    "--no-fsync",
    "--log-level",
    "debug",
    "--log-format",
    "json",
    "--log-file",
    "smtpd.log",
    "--ready-file",
    "ready.json",
    "--exit-after",
    "3",
    "--accept-rcpt",
    "^bob@",
    "--accept-rcpt",
    "@example\\.(com|org)$",
    "--fault",
    "rcpt~^bounce@ 550 5.1.1 No such user",
    "--fault",
    "data#3 451 4.3.0 Try again later",
    "--trust-proxy",
    "10.0.0.0/8",
  ]);
  assert.deepEqual(options, {
    spool: "/tmp/mail",
    listen: ["127.0.0.1:0", "[::1]:2525"],
    listenTls: ["0.0.0.0:465"],
    hostname: "mx.test",
    tlsCert: "c.pem",
    tlsKey: "k.pem",
    requireTls: true,
    authFile: "users.txt",
    requireAuth: true,
    maxSize: 10_000_000,
    maxRecipients: 5,
    maxConnections: 7,
    timeout: 30_000,
    onMessageCommand: "echo $SMTPD_ID",
    noFsync: true,
    logLevel: "debug",
    logFormat: "json",
    logFile: "smtpd.log",
    readyFile: "ready.json",
    exitAfter: 3,
    acceptRcpt: ["^bob@", "@example\\.(com|org)$"],
    faults: ["rcpt~^bounce@ 550 5.1.1 No such user", "data#3 451 4.3.0 Try again later"],
    trustProxy: ["10.0.0.0/8"],
  });
});

Deno.test("parseCommandLine reads every serve flag from SMTPD_* variables", () => {
  const options = serve([], {
    SMTPD_SPOOL: "/var/mail",
    SMTPD_LISTEN: "127.0.0.1:1025, [::1]:1025",
    SMTPD_LISTEN_TLS: "127.0.0.1:465",
    SMTPD_HOSTNAME: "mx.test",
    SMTPD_TLS_SELF_SIGNED: "yes",
    SMTPD_REQUIRE_TLS: "TRUE",
    SMTPD_AUTH_FILE: "users.txt",
    SMTPD_REQUIRE_AUTH: "1",
    SMTPD_MAX_SIZE: "1MiB",
    SMTPD_MAX_RECIPIENTS: "2",
    SMTPD_MAX_CONNECTIONS: "3",
    SMTPD_TIMEOUT: "1m",
    SMTPD_ON_MESSAGE: "true",
    SMTPD_NO_FSYNC: "true",
    SMTPD_LOG_LEVEL: "warn",
    SMTPD_LOG_FORMAT: "text",
    SMTPD_LOG_FILE: "log.txt",
    SMTPD_READY_FILE: "ready",
    SMTPD_EXIT_AFTER: "1",
    SMTPD_ACCEPT_RCPT: "^a@(x|y),z$\n\n  ^b@  \n",
    SMTPD_FAULT: "mail delay 2s\nconnect 421 4.3.2 Not now",
    SMTPD_TRUST_PROXY: "10.0.0.0/8 192.168.0.0/16,::1/128",
  });
  assert.deepEqual(options, {
    spool: "/var/mail",
    listen: ["127.0.0.1:1025", "[::1]:1025"],
    listenTls: ["127.0.0.1:465"],
    hostname: "mx.test",
    tlsSelfSigned: true,
    requireTls: true,
    authFile: "users.txt",
    requireAuth: true,
    maxSize: 1_048_576,
    maxRecipients: 2,
    maxConnections: 3,
    timeout: 60_000,
    onMessageCommand: "true",
    noFsync: true,
    logLevel: "warn",
    logFormat: "text",
    logFile: "log.txt",
    readyFile: "ready",
    exitAfter: 1,
    acceptRcpt: ["^a@(x|y),z$", "^b@"],
    faults: ["mail delay 2s", "connect 421 4.3.2 Not now"],
    trustProxy: ["10.0.0.0/8", "192.168.0.0/16", "::1/128"],
  });
});

Deno.test("parseCommandLine lets a flag win over its variable, repeatable ones whole", () => {
  const env = { SMTPD_MAX_SIZE: "1KB", SMTPD_LISTEN: "127.0.0.1:1,127.0.0.1:2" };
  const options = serve(["--max-size", "2KB", "--listen", "127.0.0.1:3"], env);
  assert.equal(options.maxSize, 2000);
  assert.deepEqual(options.listen, ["127.0.0.1:3"]);
  assert.equal(serve([], env).maxSize, 1000);
});

Deno.test("parseCommandLine takes --max-size 0 (no limit)", () => {
  assert.equal(serve(["--max-size", "0"], {}).maxSize, 0);
  assert.equal(serve([], { SMTPD_MAX_SIZE: "0MB" }).maxSize, 0);
});

Deno.test("parseCommandLine reads boolean variables as 1/true/yes and 0/false/no/empty", () => {
  for (const on of ["1", "true", "yes", "YES", " True "]) {
    assert.equal(serve([], { SMTPD_NO_FSYNC: on }).noFsync, true, on);
  }
  for (const off of ["0", "false", "no", "", "NO"]) {
    assert.equal(serve([], { SMTPD_NO_FSYNC: off }).noFsync, undefined, off);
  }
  assert.equal(
    usage([], { SMTPD_NO_FSYNC: "maybe" }),
    'SMTPD_NO_FSYNC (--no-fsync): Cannot parse "maybe": expected 1, true, yes, 0, false or no',
  );
  assert.equal(serve(["--no-fsync"], { SMTPD_NO_FSYNC: "0" }).noFsync, true);
});

Deno.test("parseCommandLine: --flag=false switches off a boolean its variable switched on", () => {
  const on = { SMTPD_NO_FSYNC: "1", SMTPD_REQUIRE_AUTH: "yes" };
  assert.equal(serve([], on).noFsync, true);
  assert.equal(serve(["--no-fsync=false"], on).noFsync, false);
  assert.equal(serve(["--no-fsync=0", "--require-auth=NO"], on).requireAuth, false);
  assert.equal(serve(["--no-fsync=yes"]).noFsync, true);
  assert.equal(serve(["--no-fsync=1"]).noFsync, true);
  // The last of --flag and --flag=false wins.
  assert.equal(serve(["--no-fsync", "--no-fsync=false"]).noFsync, false);
  assert.equal(serve(["--no-fsync=false", "--no-fsync"]).noFsync, true);
  assert.equal(serve(["--no-fsync=false"]).noFsync, false);
});

Deno.test("parseCommandLine treats an empty value variable as unset", () => {
  assert.deepEqual(serve([], { SMTPD_LOG_FILE: "", SMTPD_MAX_SIZE: " ", SMTPD_FAULT: "" }), {});
});

Deno.test("parseCommandLine ignores variables that are not serve flags", () => {
  assert.deepEqual(serve([], { SMTPD_BOGUS: "1", HOME: "/root", SMTPD_VERSION: "1" }), {});
});

Deno.test("parseCommandLine names the flag and the problem in each usage error", () => {
  const cases: [string[], string][] = [
    [
      ["--max-size", "10XB"],
      '--max-size: Cannot parse "10XB": expected bytes, KB, MB, GB, KiB, MiB or GiB',
    ],
    [
      ["--max-size", "0.0001KB"],
      '--max-size: Cannot use "0.0001KB": expected 0 (no limit) or at least 1 byte',
    ],
    [
      ["--max-recipients", "0"],
      '--max-recipients: Cannot parse "0": expected a positive whole number',
    ],
    [
      ["--max-connections", "1.5"],
      '--max-connections: Cannot parse "1.5": expected a positive whole number',
    ],
    [
      ["--exit-after", "-1"],
      "--exit-after: expected a value (write --exit-after=VALUE for one starting with -)",
    ],
    [["--exit-after=-1"], '--exit-after: Cannot parse "-1": expected a positive whole number'],
    [
      ["--timeout", "5 minutes"],
      '--timeout: Cannot parse "5 minutes": expected a duration like 250ms, 30s, 5m or 1h',
    ],
    [["--timeout", "0s"], '--timeout: Cannot use "0s": expected a duration above 0'],
    // A bare 0 parses as a duration, but an idle limit of nothing is no limit a server can keep.
    [["--timeout", "0"], '--timeout: Cannot use "0": expected a duration above 0'],
    [
      ["--listen", "localhost"],
      '--listen: Cannot parse "localhost": expected HOST:PORT, e.g. 127.0.0.1:1025 or [::1]:1025',
    ],
    [
      ["--listen", "*:41160"],
      '--listen: Cannot use "*:41160": "*" is not a host name or address',
    ],
    [
      ["--listen-tls", "a/b:465", "--tls-self-signed"],
      '--listen-tls: Cannot use "a/b:465": "a/b" is not a host name or address',
    ],
    [
      ["--listen", "127.0.0.1:70000"],
      '--listen: Cannot use "127.0.0.1:70000": port must be 0 to 65535',
    ],
    [
      ["--log-level", "verbose"],
      '--log-level: Cannot use "verbose": expected debug, info, warn or error',
    ],
    [["--log-format", "xml"], '--log-format: Cannot use "xml": expected text or json'],
    [
      ["--accept-rcpt", "(unclosed"],
      '--accept-rcpt: Cannot parse "(unclosed": Invalid regular expression: /(unclosed/: Unterminated group',
    ],
    [["--accept-rcpt", ""], '--accept-rcpt: Cannot use "": expected a value'],
    [["--tls-cert", "c.pem"], "--tls-cert: needs --tls-key as well"],
    [["--tls-key", "k.pem"], "--tls-key: needs --tls-cert as well"],
    [["--require-tls"], "--require-tls: needs --tls-cert and --tls-key, or --tls-self-signed"],
    [
      ["--tls-cert", "c.pem", "--tls-key", "k.pem", "--tls-self-signed"],
      "--tls-self-signed: cannot be combined with --tls-cert/--tls-key",
    ],
    [
      ["--listen-tls", "127.0.0.1:465"],
      "--listen-tls: needs --tls-cert and --tls-key, or --tls-self-signed",
    ],
    [["--spool", ""], '--spool: Cannot use "": expected a value'],
    [["--spool"], "--spool: expected a value (write --spool=VALUE for one starting with -)"],
    [["--no-fsync=maybe"], '--no-fsync: expected true or false (1/0, yes/no), found "maybe"'],
    [["--no-fsync="], '--no-fsync: expected true or false (1/0, yes/no), found ""'],
    [["--bogus"], "--bogus: unknown flag (see smtpd --help)"],
    [["-x"], "-x: unknown flag (see smtpd --help)"],
    [["--help=false"], "--help: takes no value"],
    [["-h=1"], "--help: takes no value"],
    [["send", "-h=yes"], "--help: takes no value"],
    [["list", "--version=1"], "--version: takes no value"],
    [["serve", "extra"], 'unexpected argument "extra"'],
    [
      ["--spool", "x", "list"],
      'unexpected argument "list" (the command comes first: smtpd list [flags])',
    ],
    [["lsit"], 'unknown command "lsit" (commands: serve, list, show, wait, purge, send)'],
    [["help", "nope"], 'unknown command "nope" (commands: serve, list, show, wait, purge, send)'],
  ];
  for (const [argv, expected] of cases) assert.equal(usage(argv), expected, argv.join(" "));
});

Deno.test("parseCommandLine: a flag given twice takes its last value; flags beat variables", () => {
  const options = serve(
    ["--max-size", "1KB", "--max-size", "2KB", "--timeout", "1s", "--timeout=2s"],
    { SMTPD_MAX_SIZE: "3KB", SMTPD_HOSTNAME: "env.test" },
  );
  assert.equal(options.maxSize, 2000);
  assert.equal(options.timeout, 2000);
  assert.equal(options.hostname, "env.test");
  const wait = parseCommandLine(["wait", "--timeout", "1s", "--timeout", "0"], {});
  assert.equal((wait as { timeoutMs: number }).timeoutMs, 0);
});

Deno.test("parseCommandLine names the variable and its flag in a bad variable's error", () => {
  assert.equal(
    usage([], { SMTPD_MAX_SIZE: "10XB" }),
    'SMTPD_MAX_SIZE (--max-size): Cannot parse "10XB": expected bytes, KB, MB, GB, KiB, MiB or GiB',
  );
  assert.match(
    usage([], { SMTPD_LISTEN: "127.0.0.1:1,nope" }),
    /^SMTPD_LISTEN \(--listen\): Cannot parse "nope"/,
  );
  assert.equal(
    usage([], { SMTPD_TLS_CERT: "c.pem" }),
    "SMTPD_TLS_CERT (--tls-cert): needs --tls-key as well",
  );
  assert.equal(
    usage([], { SMTPD_TLS_CERT: "c.pem", SMTPD_TLS_KEY: "k.pem", SMTPD_TLS_SELF_SIGNED: "1" }),
    "SMTPD_TLS_SELF_SIGNED (--tls-self-signed): cannot be combined with --tls-cert/--tls-key",
  );
  assert.equal(
    usage(["--tls-cert", "c.pem"], { SMTPD_TLS_CERT: "d.pem" }),
    "--tls-cert: needs --tls-key as well",
  );
});

Deno.test("parseCommandLine: a certificate on the command line sets aside the variables' one", () => {
  // Flags win over variables (SPEC §2), also across --tls-self-signed and --tls-cert/--tls-key.
  assert.deepEqual(
    serve(["--tls-cert", "c.pem", "--tls-key", "k.pem"], { SMTPD_TLS_SELF_SIGNED: "1" }),
    { tlsCert: "c.pem", tlsKey: "k.pem" },
  );
  assert.deepEqual(
    serve(["--tls-self-signed"], { SMTPD_TLS_CERT: "c.pem", SMTPD_TLS_KEY: "k.pem" }),
    { tlsSelfSigned: true },
  );
  // Half a pair on the command line still takes its other half from a variable.
  assert.deepEqual(
    serve(["--tls-cert", "c.pem"], { SMTPD_TLS_KEY: "k.pem", SMTPD_TLS_SELF_SIGNED: "yes" }),
    { tlsCert: "c.pem", tlsKey: "k.pem" },
  );
});

Deno.test("parseCommandLine accepts TLS flags in pairs or self-signed", () => {
  assert.deepEqual(serve(["--tls-self-signed", "--require-tls"]), {
    tlsSelfSigned: true,
    requireTls: true,
  });
  assert.deepEqual(serve(["--tls-cert", "c", "--tls-key", "k", "--listen-tls", "127.0.0.1:0"]), {
    listenTls: ["127.0.0.1:0"],
    tlsCert: "c",
    tlsKey: "k",
  });
});

Deno.test("parseCommandLine answers --help and --version for any command", () => {
  assert.deepEqual(parseCommandLine(["--help"], {}), { command: "help", topic: "serve" });
  assert.deepEqual(parseCommandLine(["-h", "--bogus"], {}), { command: "help", topic: "serve" });
  assert.deepEqual(parseCommandLine(["wait", "--help"], {}), { command: "help", topic: "wait" });
  assert.deepEqual(parseCommandLine(["help", "send"], {}), { command: "help", topic: "send" });
  assert.deepEqual(parseCommandLine(["help"], {}), { command: "help", topic: "serve" });
  assert.deepEqual(parseCommandLine(["help", "help"], {}), { command: "help", topic: "serve" });
  assert.deepEqual(parseCommandLine(["--version"], {}), { command: "version" });
  assert.deepEqual(parseCommandLine(["list", "--version"], {}), { command: "version" });
});

Deno.test("parseCommandLine parses list and show, with SMTPD_SPOOL and ./spool", () => {
  assert.deepEqual(parseCommandLine(["list"], {}), {
    command: "list",
    spool: "./spool",
    json: false,
  });
  assert.deepEqual(parseCommandLine(["list", "--json"], { SMTPD_SPOOL: "/m" }), {
    command: "list",
    spool: "/m",
    json: true,
  });
  assert.deepEqual(parseCommandLine(["list", "--spool", "/a"], { SMTPD_SPOOL: "/m" }), {
    command: "list",
    spool: "/a",
    json: false,
  });
  assert.deepEqual(parseCommandLine(["show", "latest", "--meta"], {}), {
    command: "show",
    spool: "./spool",
    id: "latest",
    meta: true,
  });
  assert.equal(usage(["show"]), "expected a message ID or latest");
  assert.equal(usage(["show", "a", "b"]), 'unexpected argument "b"');
  assert.equal(usage(["list", "x"]), 'unexpected argument "x"');
  assert.equal(usage(["list", "--listen", "x"]), "--listen: unknown flag (see smtpd list --help)");
});

Deno.test("parseCommandLine gives companions only SMTPD_SPOOL, not the server's variables", () => {
  const parsed = parseCommandLine(["wait"], { SMTPD_TIMEOUT: "10m", SMTPD_SPOOL: "/m" });
  assert.deepEqual(parsed, {
    command: "wait",
    spool: "/m",
    count: 1,
    filter: {},
    timeoutMs: 30_000,
    timeoutText: "30s",
  });
});

Deno.test("parseCommandLine parses wait filters, count and timeout", () => {
  assert.deepEqual(
    parseCommandLine(
      [
        "wait",
        "--count",
        "2",
        "--from",
        "alice",
        "--to",
        "bob@",
        "--subject",
        "Hi",
        "--timeout",
        "1500ms",
      ],
      {},
    ),
    {
      command: "wait",
      spool: "./spool",
      count: 2,
      filter: { from: "alice", to: "bob@", subject: "Hi" },
      timeoutMs: 1500,
      timeoutText: "1500ms",
    },
  );
  for (const zero of ["0s", "0"]) {
    // `smtpd help wait`: 0 looks once.
    assert.equal(
      (parseCommandLine(["wait", "--timeout", zero], {}) as { timeoutMs: number }).timeoutMs,
      0,
      zero,
    );
  }
  assert.equal(
    usage(["wait", "--count", "0"]),
    '--count: Cannot parse "0": expected a positive whole number',
  );
  assert.equal(usage(["wait", "--to", ""]), '--to: Cannot use "": expected a value');
  assert.match(usage(["wait", "--timeout", "soon"]), /^--timeout: Cannot parse "soon"/);
});

Deno.test("parseCommandLine parses purge with and without --older-than", () => {
  assert.deepEqual(parseCommandLine(["purge"], {}), { command: "purge", spool: "./spool" });
  assert.deepEqual(parseCommandLine(["purge", "--older-than", "1h"], {}), {
    command: "purge",
    spool: "./spool",
    olderThanMs: 3_600_000,
  });
  assert.match(usage(["purge", "--older-than", "old"]), /^--older-than: Cannot parse "old"/);
  assert.deepEqual(parseCommandLine(["purge", "--older-than", "0"], {}), {
    command: "purge",
    spool: "./spool",
    olderThanMs: 0,
  });
});

Deno.test("parseCommandLine parses send with every flag", () => {
  const parsed = parseCommandLine([
    "send",
    "--server",
    "[::1]:2525",
    "--starttls",
    "--insecure",
    "--ca",
    "a.pem",
    "--ca",
    "b.pem",
    "--auth",
    "bob:pa:ss",
    "--helo",
    "client.test",
    "--from",
    "<alice@example.com>",
    "--to",
    "bob@example.com",
    "--to",
    "<carol@example.org>",
    "--timeout",
    "5s",
    "message.eml",
  ], {});
  assert.deepEqual(parsed, {
    command: "send",
    send: {
      host: "::1",
      port: 2525,
      tls: false,
      starttls: true,
      insecure: true,
      caFiles: ["a.pem", "b.pem"],
      auth: { user: "bob", pass: "pa:ss" },
      helo: "client.test",
      from: "alice@example.com",
      to: ["bob@example.com", "carol@example.org"],
      file: "message.eml",
      timeoutMs: 5000,
    },
  });
});

Deno.test("parseCommandLine parses a minimal send reading stdin, null sender allowed", () => {
  for (const from of ["", "<>"]) {
    assert.deepEqual(
      parseCommandLine(["send", "--server", "127.0.0.1:1025", "--from", from, "--to", "b@x"], {}),
      {
        command: "send",
        send: {
          host: "127.0.0.1",
          port: 1025,
          tls: false,
          starttls: false,
          insecure: false,
          caFiles: [],
          from: "",
          to: ["b@x"],
          timeoutMs: 60_000,
        },
      },
    );
  }
  const dash = parseCommandLine(["send", "--server", "h:1", "--from", "a", "--to", "b", "-"], {});
  assert.equal((dash as Extract<Invocation, { command: "send" }>).send.file, "-");
});

Deno.test("parseCommandLine refuses an incomplete or contradictory send", () => {
  const ok = ["--server", "h:25", "--from", "a@x", "--to", "b@x"];
  assert.equal(usage(["send", "--from", "a", "--to", "b"]), "--server: required (HOST:PORT)");
  assert.equal(
    usage(["send", "--server", "h:25", "--to", "b"]),
    '--from: required (use --from "" for <>)',
  );
  assert.equal(
    usage(["send", "--server", "h:25", "--from", "a"]),
    "--to: required: at least one address",
  );
  assert.equal(
    usage(["send", ...ok, "--to", ""]),
    "--to: an empty address (<> is only a sender)",
  );
  assert.equal(
    usage(["send", ...ok, "--tls", "--starttls"]),
    "--tls: cannot be combined with --starttls",
  );
  assert.equal(
    usage(["send", ...ok, "--auth", "bob"]),
    "--auth: expected USER:PASS",
  );
  assert.equal(
    usage(["send", ...ok, "--auth", ":pw"]),
    "--auth: expected USER:PASS",
  );
  assert.match(
    usage(["send", "--server", "nohost", "--from", "a", "--to", "b"]),
    /^--server: Cannot parse/,
  );
  assert.equal(usage(["send", ...ok, "a.eml", "b.eml"]), 'unexpected argument "b.eml"');
  // EHLO <name>: CR LF would start a command, a space would add an argument.
  assert.equal(
    usage(["send", ...ok, "--helo", "x\r\nRCPT TO:<i@evil>"]),
    '--helo: Cannot use "x\\r\\nRCPT TO:<i@evil>": a space or control character',
  );
  assert.equal(
    usage(["send", ...ok, "--helo", "bad name"]),
    '--helo: Cannot use "bad name": a space or control character',
  );
  // CR LF would end RCPT TO:<…> and start a command of the user's making.
  const base = ["send", "--server", "h:25"];
  const cases: [string, string][] = [
    ["--to", "ok@y>\r\nRCPT TO:<ok2@y"],
    ["--to", "a@b\nDATA"],
    ["--to", "a\0@b"],
    ["--to", "a b@c"],
    ["--to", "<a@b>>"],
    ["--from", "a@b>\r\nRSET"],
    ["--from", "x<y@z"],
    ["--from", "a\t@b"],
  ];
  for (const [flag, value] of cases) {
    const args = flag === "--to" ? [...base, "--from", "a@x", "--to", value] : [
      ...base,
      "--to",
      "b@x",
      "--from",
      value,
    ];
    assert.equal(
      usage(args),
      `${flag}: Cannot use ${
        JSON.stringify(value)
      }: an address holds no space, control character, < or >`,
      JSON.stringify(value),
    );
  }
  for (const zero of ["0", "0s"]) {
    // A zero limit could never connect.
    assert.equal(
      usage(["send", ...ok, "--timeout", zero]),
      `--timeout: Cannot use "${zero}": expected a duration above 0`,
    );
  }
});

Deno.test("envName upper-cases and replaces dashes", () => {
  assert.equal(envName("max-size"), "SMTPD_MAX_SIZE");
  assert.equal(envName("no-fsync"), "SMTPD_NO_FSYNC");
});

Deno.test("parseCount accepts only whole numbers in range", () => {
  assert.equal(parseCount("42"), 42);
  assert.equal(parseCount("0", 0), 0);
  for (const bad of ["", "1e3", "0x10", " ", "-1", "99999999999999999999"]) {
    assert.throws(() => parseCount(bad), SyntaxError, bad);
  }
});
