#!/usr/bin/env bash
# `make torture`: the full reliability and security torture suite (issue 8).
# Runs tests/torture/*_test.ts at full scale, then writes every case's
# FIGURE line into tests/torture/RESULTS.md. Exit status is deno test's.
#
# Needs Linux for the RSS figures (/proc) and root for the tmpfs disk-full
# case (skipped with a printed reason otherwise). Bounded: a few minutes.
set -u
cd "$(dirname "$0")/../.."
DENO=${DENO:-node_modules/.bin/deno}
LOG=$(mktemp -t smtpd-torture.XXXXXX)
trap 'rm -f "$LOG"' EXIT

start=$(date +%s)
# One file at a time: the cases measure RSS and time-outs, keep them off each other's cores.
"$DENO" test --allow-all tests/torture/fuzz_core_test.ts tests/torture/torture_test.ts 2>&1 | tee "$LOG"
status=${PIPESTATUS[0]}
secs=$(( $(date +%s) - start ))

# Strip colours, keep the figures and the per-test verdicts.
clean() { sed -e 's/\x1b\[[0-9;]*m//g' "$LOG"; }
{
  echo "# Torture suite: results of the last full run"
  echo
  echo "Written by \`tests/torture/run.sh\` (\`make torture\`); do not edit by hand."
  echo
  echo "- date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "- host: $(uname -srm), $(nproc 2>/dev/null || echo '?') cores"
  echo "- deno: $("$DENO" --version | head -1)"
  echo "- commit: $(git rev-parse --short HEAD 2>/dev/null || echo unknown) (plus working tree)"
  echo "- duration: ${secs} s; exit status: ${status}"
  echo
  echo "## Verdicts"
  echo
  echo '```'
  clean | grep -E '^torture full: .* \.\.\. (ok|FAILED)' | sed -E 's/ \([0-9.]+m?s\)$//' | sort -u
  echo '```'
  echo
  echo "## Figures"
  echo
  echo "One JSON object per case, as printed by the case (see \`tests/torture/cases.ts\`)."
  echo
  clean | grep -E '^FIGURE ' | sed -E 's/^FIGURE ([^:]+): (.*)$/- **\1**: `\2`/'
  echo
  echo "## Failures"
  echo
  echo '```'
  clean | sed -n '/ERRORS/,/FAILURES/p' | grep -vE '^\s+at ' | head -80
  echo '```'
} > tests/torture/RESULTS.md
# `make test` runs `deno fmt --check` over the repository: keep the report formatted.
"$DENO" fmt --quiet tests/torture/RESULTS.md
echo "torture: figures written to tests/torture/RESULTS.md (exit ${status})"
exit "$status"
