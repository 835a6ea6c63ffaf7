/**
 * `--help` texts, one per command (SPEC §2).
 *
 * @module
 */

import { DEFAULTS } from "../mod.ts";
import type { CommandName } from "./flags.ts";

const SERVE = `Usage: smtpd [serve] [flags]

Receive mail over SMTP and store each message in the spool as <id>.eml + <id>.json.

Flags (each also read from SMTPD_<FLAG>, e.g. SMTPD_MAX_SIZE; a flag wins over its variable):
  --spool DIR              where messages are stored, created if missing (default ${DEFAULTS.spool})
  --listen HOST:PORT       plain listener, STARTTLS when TLS is configured; repeatable
                           (default ${DEFAULTS.listen} when no listener is given; port 0 picks one)
  --listen-tls HOST:PORT   implicit-TLS listener (SMTPS); repeatable
  --hostname NAME          name in the greeting and EHLO reply (default: the OS host name)
  --tls-cert FILE          PEM certificate chain; needs --tls-key
  --tls-key FILE           PEM private key
  --tls-self-signed        generate an ephemeral self-signed certificate at start-up
  --require-tls            MAIL and AUTH before STARTTLS get 530 5.7.0
  --auth-file FILE         user:password lines; AUTH is checked against them
                           (without it any credentials are accepted)
  --require-auth           MAIL before a successful AUTH gets 530 5.7.0
  --max-size BYTES         largest message, advertised in SIZE (default ${DEFAULTS.maxSize});
                           accepts 10MB (10^6), 1MiB (2^20), KB/KiB/GB/GiB or plain bytes;
                           0 sets no limit
  --max-recipients N       RCPTs per message (default ${DEFAULTS.maxRecipients})
  --max-connections N      concurrent connections (default ${DEFAULTS.maxConnections})
  --timeout DURATION       idle limit per command or DATA chunk (default 5m); 250ms, 30s, 5m, 1h
  --on-message CMD         shell command run after each stored message, with SMTPD_ID,
                           SMTPD_EML, SMTPD_META, SMTPD_FROM and SMTPD_RCPT set
  --no-fsync               skip fsync: faster, but a crash may lose accepted mail
  --log-level LEVEL        debug, info, warn or error (default ${DEFAULTS.logLevel});
                           debug shows the SMTP transcript
  --log-format FORMAT      text or json (default ${DEFAULTS.logFormat})
  --log-file FILE          log here instead of stderr
  --ready-file FILE        once listening, write {"pid":…,"listeners":[…]} here
  --exit-after N           exit 0 after N stored messages
  --threads N              serving threads, 1 or 2 (Linux; default 2 with --no-fsync
                           on 2 or more CPUs, else 1; see the README)
  --accept-rcpt REGEX      only these recipients (JavaScript RegExp); repeatable
  --fault RULE             deterministic failure, e.g. 'rcpt~^bounce@ 550 5.1.1 No such user',
                           'data#3 451 4.3.0 Try again later', 'mail delay 2s'; repeatable
  --trust-proxy CIDR       clients allowed XCLIENT/XFORWARD; repeatable
  --version                print the version
  -h, --help               print this help

Booleans in variables: 1, true, yes (on) or 0, false, no, empty (off). A boolean flag also
takes =true or =false, so --no-fsync=false overrides SMTPD_NO_FSYNC=1. Repeatable flags in
variables: SMTPD_LISTEN, SMTPD_LISTEN_TLS and SMTPD_TRUST_PROXY take several values separated
by commas or spaces; SMTPD_ACCEPT_RCPT and SMTPD_FAULT take one value per line.

Commands: serve (default), list, show, wait, purge, send; smtpd help COMMAND for each.
Exit: 0 after a clean shutdown (SIGINT/SIGTERM), 1 on a run-time failure, 2 on a usage error.
`;

const SPOOL = `  --spool DIR              the spool directory (default ./spool, or SMTPD_SPOOL)`;

const COMPANIONS: Record<Exclude<CommandName, "serve">, string> = {
  list: `Usage: smtpd list [--spool DIR] [--json]

One line per stored message, oldest first: ID, RECEIVED (UTC), FROM, TO, SUBJECT, SIZE (bytes).
On a terminal a header line comes first (an empty spool prints nothing) and long columns are
cut with "…"; in a pipe there is no header and every value is whole, so smtpd list | wc -l
counts messages. A <id>.json that holds no valid metadata is skipped with a warning on stderr.

${SPOOL}
  --json                   one meta object (the <id>.json) per line instead
`,
  show: `Usage: smtpd show ID|latest [--spool DIR] [--meta]

Write the raw message (<id>.eml, byte for byte) to stdout. Exit 1 if there is no such message.

${SPOOL}
  --meta                   print the metadata (<id>.json) instead
`,
  wait: `Usage: smtpd wait [--spool DIR] [--count N] [--from ADDR] [--to ADDR] [--subject TEXT]
                  [--timeout DURATION]

Block until at least N stored messages match every filter given, then print the IDs of all
matching messages, one per line, oldest first. Filters are case-insensitive substrings:
--from matches the envelope sender or the From header, --to any recipient or the To header,
--subject the decoded Subject; --from "<>" selects the null sender only. Messages already in
the spool count: purge first for a clean run.

${SPOOL}
  --count N                how many messages (default 1)
  --from ADDR              sender contains ADDR ("<>": the null sender)
  --to ADDR                a recipient contains ADDR
  --subject TEXT           subject contains TEXT
  --timeout DURATION       give up after this long, exit 1 (default 30s; 0 looks once)
`,
  purge: `Usage: smtpd purge [--spool DIR] [--older-than DURATION]

Delete stored messages (<id>.eml and <id>.json), nothing else, and print "purged N messages"
("purged 1 message").

${SPOOL}
  --older-than DURATION    only messages received at least this long ago (e.g. 1h)
`,
  send: `Usage: smtpd send --server HOST:PORT --from ADDR --to ADDR... [flags] [FILE|-]

Send one message (FILE, or stdin when FILE is - or absent) and print the server's final reply.
Bare-LF files are sent with CRLF line ends; lines starting with "." are dot-stuffed.
Exit 1 on any non-2xx reply (printed) or connection failure. Reads no SMTPD_* variables.

  --server HOST:PORT       the SMTP server ([::1]:1025 for IPv6)
  --from ADDR              envelope sender; --from "" sends the null sender <>
  --to ADDR                recipient; repeatable
  --starttls               upgrade with STARTTLS (fails if not offered)
  --tls                    implicit TLS from the first byte (SMTPS)
  --ca FILE                also trust this PEM certificate (e.g. SPOOL/.tls/cert.pem); repeatable
  --insecure               do not verify the server certificate
  --auth USER:PASS         authenticate (AUTH PLAIN, or LOGIN if PLAIN is not offered)
  --helo NAME              EHLO name (default localhost)
  --timeout DURATION       limit for connecting and for each reply (default 60s)
`,
};

/**
 * The help text of a command.
 *
 * @param command The command (`serve` for the main usage).
 * @returns Text ending in a newline.
 */
export function helpText(command: CommandName): string {
  return command === "serve" ? SERVE : COMPANIONS[command];
}
