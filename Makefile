# smtpd — toolchain commands. GNU make.
#
# Deno itself comes from npm (package.json pins deno@2.9.6), so `make` works on
# a machine that has only node/npm: the first target that needs Deno runs
# `npm install --no-save` against the committed lockfile (`npm ci` of npm 11
# rejects a lockfile that omits the other platforms' optional @deno/* packages).
#
# `deno compile` (build, release) embeds a runtime, `denort`, that Deno
# downloads from the internet for each target. Where that is not reachable,
# point DENORT_BIN at a local denort for the host: make exports environment
# variables to recipes and Deno honours DENORT_BIN, e.g.
#   make build DENORT_BIN=/opt/denort-2.9.6/denort
# DENORT_BIN is one binary for one platform, so `release` never passes it on
# to other targets; give it a directory instead, holding
# denort-<target>[.exe] for each target (DENORT_DIR=/opt/denort make release).

DENO := node_modules/.bin/deno

# Also when given on the command line (make build DENORT_BIN=…).
ifdef DENORT_BIN
export DENORT_BIN
endif

# One list of runtime flags: permissions and V8 flags.
#
# Permissions. The program needs read/write (spool, ready file, log,
# TLS and auth files: §2, §3), net (listeners, `smtpd send`), env (SMTPD_*),
# sys (default --hostname) and run (--on-message hooks through the system
# shell, §6). An unscoped --allow-run already grants everything (a child
# process is not sandboxed), so a scoped list would protect nothing, and it
# costs: without --allow-all Deno resolves every path of every file call
# (about 15 readlink(2) calls per stored message, 16 µs of ~95 µs CPU).
#
# V8 flags keep memory flat however many messages arrive (bench `growth`):
# --expose-gc lets lib/native_memory.ts ask for a major GC every 3,000
# node:crypto hashes, whose native state V8 does not see and otherwise left
# uncollected (+17 MB RSS per 100,000 messages, without bound);
# --max-semi-space-size=2 (MB) stops V8 growing its young generation to
# 16 MB semispaces under load (+27 MB RSS). Together ~6% of 1 KiB throughput.
# --invocation-count-for-turbofan=100000 (default 3,000) keeps per-message
# code on Maglev and TurboFan for hot loops: a fresh server no longer spends
# its first ~20,000 messages compiling everything twice (once per thread) on
# the cores that serve; +12% on the first 10,000 messages, steady state equal
# (README "Development").
# --unstable-net: Deno.listen's reusePort, which lets a second serving thread
# share the ports (lib/server/threads.ts); without it smtpd serves on one.
#
# Must equal deno.json tasks.run and tasks.compile:
# tests/unit/permissions_test.ts fails when the three drift apart.
RUNTIME_FLAGS := --allow-all --unstable-net --v8-flags=--expose-gc,--max-semi-space-size=2,--invocation-count-for-turbofan=100000

# Modules `deno compile` cannot find by itself: workers are not bundled unless
# included. Without them the binary still works, hashing large messages on
# the main thread and serving on one thread, and says so in a warning. Must equal deno.json tasks.compile's
# --include flags and name every worker in lib/ (tests/unit/permissions_test.ts).
INCLUDES := --include lib/spool/hash_worker.ts --include lib/server/helper_worker.ts

TARGETS := x86_64-unknown-linux-gnu aarch64-unknown-linux-gnu x86_64-apple-darwin \
	aarch64-apple-darwin x86_64-pc-windows-msvc

# Every TypeScript file of the project (`deno check .` would also take .js/.mjs
# files, e.g. bench peers written for Node).
TS_FILES = $(shell find . -name '*.ts' -not -path '*/node_modules/*' -not -path './.git/*' \
	-not -path './dist/*' -not -path './spool/*' -not -path './bench/out/*' | LC_ALL=C sort)

# e2e tests start real processes: run test files two at a time on 2 cores.
TEST_FLAGS := --allow-all
E2E_FLAGS := --allow-all --parallel

ARGS ?=

.PHONY: run test test-unit test-e2e check build release bench torture fmt lint clean

$(DENO):
	npm install --no-save --no-audit --no-fund

run: $(DENO)
	$(DENO) run $(RUNTIME_FLAGS) main.ts --spool ./spool --listen 127.0.0.1:1025 $(ARGS)

# Every step runs even when an earlier one fails, so one CI log shows all
# problems; the target fails if any step did. The "make test: <step> FAILED"
# lines are what .ci/run counts for steps that are not test runs.
# settle: the tests fsync every message (the default). A fresh install
# leaves hundreds of MB unwritten, and while the kernel writes them back one
# small fsync waits 6-50 s (measured here), so replies time out. Flush first.
test: $(DENO)
	@status=0; \
	step() { name=$$1; shift; echo "== $$name: $$1 $$2"; \
	  if "$$@"; then :; else echo "make test: $$name FAILED"; status=1; fi; }; \
	settle() { command -v sync >/dev/null 2>&1 || return 0; t=$$(date +%s); sync; \
	  d=$$(( $$(date +%s) - t )); [ $$d -lt 2 ] || echo "make test: pending disk writes took $${d}s to flush"; }; \
	step fmt $(DENO) fmt --check; \
	step lint $(DENO) lint; \
	step check $(DENO) check $(TS_FILES); \
	settle; step test-unit $(DENO) test $(TEST_FLAGS) tests/unit; \
	settle; step test-e2e $(DENO) test $(E2E_FLAGS) tests/e2e; \
	exit $$status

test-unit: $(DENO)
	$(DENO) test $(TEST_FLAGS) tests/unit

test-e2e: $(DENO)
	$(DENO) test $(E2E_FLAGS) tests/e2e

build: $(DENO)
	$(DENO) compile $(RUNTIME_FLAGS) $(INCLUDES) --output dist/smtpd main.ts

release: $(DENO)
	@mkdir -p dist
	@set -e; for t in $(TARGETS); do \
	  case $$t in *windows*) exe=.exe ;; *) exe= ;; esac; \
	  if [ -n "$(DENORT_DIR)" ]; then \
	    rt="$(DENORT_DIR)/denort-$$t$$exe"; \
	    [ -f "$$rt" ] || { echo "make release: $$rt missing" >&2; exit 1; }; \
	    echo "== $$t (denort $$rt)"; \
	    env DENORT_BIN="$$rt" $(DENO) compile $(RUNTIME_FLAGS) $(INCLUDES) --target $$t --output dist/smtpd-$$t$$exe main.ts; \
	  else \
	    echo "== $$t"; \
	    env -u DENORT_BIN $(DENO) compile $(RUNTIME_FLAGS) $(INCLUDES) --target $$t --output dist/smtpd-$$t$$exe main.ts; \
	  fi; \
	done

bench: $(DENO)
	bash bench/run.sh

torture: $(DENO)
	@if [ -f tests/torture/run.sh ]; then bash tests/torture/run.sh; \
	else echo "make torture: tests/torture/run.sh does not exist yet" >&2; exit 1; fi

fmt: $(DENO)
	$(DENO) fmt

lint: $(DENO)
	$(DENO) lint

check: $(DENO)
	$(DENO) check $(TS_FILES)

clean:
	rm -rf dist
