#!/usr/bin/env bash
# make bench: install what the peers need, then run bench/run.ts.
# Env knobs (see bench/README.md): BENCH_RUNS, BENCH_CASES, BENCH_SERVERS,
# BENCH_RESULTS, BENCH_SPOOL_DIR, BENCH_SETTLE_SECONDS, BENCH_REMOVE_SPOOLS,
# BENCH_TIMEOUT (seconds for the whole run, default 5400).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(dirname "$here")"
out="$here/out"
deno="${DENO:-$root/node_modules/.bin/deno}"
mkdir -p "$out"

# Servers the harness started and has not stopped yet (bench/run.ts keeps
# this list); killed by pid if the harness itself dies or is interrupted.
harness=""
cleanup() {
  if [[ -n "$harness" ]] && kill -0 "$harness" 2>/dev/null; then
    kill -TERM "$harness" 2>/dev/null || true
    wait "$harness" 2>/dev/null || true
  fi
  if [[ -f "$out/pids" ]]; then
    while read -r pid; do
      [[ -n "$pid" ]] && kill -KILL "$pid" 2>/dev/null || true
    done <"$out/pids"
    rm -f "$out/pids"
  fi
  rm -rf "$out"/spool-*
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Debian peers: Postfix's smtp-source/smtp-sink and aiosmtpd for /usr/bin/python3.
if ! command -v /usr/sbin/smtp-source >/dev/null || ! command -v /usr/sbin/smtp-sink >/dev/null \
  || ! /usr/bin/python3 -c 'import aiosmtpd' 2>/dev/null; then
  echo "bench: installing postfix and python3-aiosmtpd" >&2
  export DEBIAN_FRONTEND=noninteractive
  timeout 600 apt-get update -q >&2
  # postfix asks for a mail configuration unless told there is none.
  echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
  timeout 900 apt-get install -y -q postfix python3-aiosmtpd >&2
fi

# npm peers (smtp-server, maildev 3), pinned by bench/peers/package-lock.json.
if [[ ! -d "$here/peers/node_modules/smtp-server" || ! -d "$here/peers/node_modules/maildev" ]]; then
  echo "bench: installing npm peers into bench/peers/node_modules" >&2
  (cd "$here/peers" && timeout 600 npm ci --no-audit --no-fund >&2)
fi

if [[ ! -x "$deno" ]]; then
  echo "bench: $deno is missing: run 'make test' or 'npm ci' first" >&2
  exit 1
fi

cd "$root"
# In the background and waited for, so that INT/TERM reach the trap at once.
timeout --kill-after=10 "${BENCH_TIMEOUT:-5400}" "$deno" run --allow-all bench/run.ts &
harness=$!
status=0
wait "$harness" || status=$?
harness=""
exit "$status"
