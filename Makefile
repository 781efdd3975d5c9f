# Postern - the two Quick start commands and their helpers.
#   make run    install what is missing, build, start a demo server
#   make test   install, build, run every test, then again under ASan+UBSan
#   make fresh-test  (root, long) both commands on a fresh debootstrapped Debian 12
#   make deb    the Debian package (dpkg-buildpackage in build-deb/, lintian clean)
BUILD ?= build
ASAN_BUILD ?= build-asan
FUZZ_BUILD ?= build-fuzz
PY := /usr/bin/python3
FUZZ_SECONDS ?= 30
SANITIZE := -Db_sanitize=address,undefined -Db_lundef=false
# The integration tests mostly wait on servers and clients (a run uses a quarter of the
# CPU time it takes), so pytest-xdist runs them on more workers than there are cores.
TEST_JOBS ?= 4
PYTEST := $(PY) -m pytest -q -n $(TEST_JOBS)

.PHONY: all deps build run test unit integration integration-pg asan fuzz bench crash-test clean fresh-test deb

# $(call meson_setup,DIR ARGS...[,ENV]): meson setup, quiet when it works; when it fails,
# print what meson said (its ERROR line names the missing dependency) and where its log is.
meson_setup = out=$$($(2) meson setup $(1) 2>&1) || { printf '%s\n' "$$out" >&2; \
	echo "make: meson setup failed; full log: $(firstword $(1))/meson-logs/meson-log.txt" >&2; exit 1; }

all: build

deps:
	@scripts/install-deps test

build:
	@[ -f $(BUILD)/build.ninja ] || { $(call meson_setup,$(BUILD) --buildtype=debugoptimized); }
	@ninja -C $(BUILD)

run:
	@scripts/install-deps run
	@$(MAKE) --no-print-directory build
	@scripts/demo $(BUILD)/postern

unit: build
	meson test -C $(BUILD) --suite unit --print-errorlogs

integration: build
	POSTERN_BIN=$(CURDIR)/$(BUILD)/postern $(PYTEST) tests/integration

# The suite again with the PostgreSQL directory: every test server's configuration names a
# database of its own in a PostgreSQL cluster each test process starts (conftest.py).
integration-pg: build
	POSTERN_TEST_DIRECTORY=postgresql POSTERN_BIN=$(CURDIR)/$(BUILD)/postern $(PYTEST) tests/integration

asan:
	@[ -f $(ASAN_BUILD)/build.ninja ] || { $(call meson_setup,$(ASAN_BUILD) --buildtype=debug $(SANITIZE),CC=clang); }
	@ninja -C $(ASAN_BUILD)
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
		meson test -C $(ASAN_BUILD) --suite unit --print-errorlogs
	ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 POSTERN_SKIP_PACKAGE_TEST=asan \
		POSTERN_BIN=$(CURDIR)/$(ASAN_BUILD)/postern $(PYTEST) tests/integration

test: deps
	@$(MAKE) --no-print-directory build
	@$(MAKE) --no-print-directory unit
	@$(MAKE) --no-print-directory integration
	@$(MAKE) --no-print-directory integration-pg
	@$(MAKE) --no-print-directory asan

fuzz:
	@scripts/install-deps test
	@[ -f $(FUZZ_BUILD)/build.ninja ] || { $(call meson_setup,$(FUZZ_BUILD) --buildtype=debug -Dfuzz=true \
		-Dtests=disabled $(SANITIZE),CC=clang); }
	@ninja -C $(FUZZ_BUILD)
	@for f in $(FUZZ_BUILD)/fuzz_*; do \
		[ -f "$$f" ] && [ -x "$$f" ] || continue; \
		echo "== $$f ($(FUZZ_SECONDS)s)"; \
		mkdir -p $(FUZZ_BUILD)/corpus/$$(basename $$f); \
		$$f -max_total_time=$(FUZZ_SECONDS) -max_len=8192 $(FUZZ_BUILD)/corpus/$$(basename $$f) tests/fuzz/seeds/$$(basename $$f) 2>&1 | tail -3 || exit 1; \
	done

# kill -9 under load, CRASH_CYCLES times, with local and slow-relay recipients;
# prints lost / duplicated / partial counts (also appended to $(BUILD)/crash-test.txt).
CRASH_CYCLES ?= 40
crash-test: build
	CRASH_CYCLES=$(CRASH_CYCLES) CRASH_REPORT=$(CURDIR)/$(BUILD)/crash-test.txt POSTERN_BIN=$(CURDIR)/$(BUILD)/postern \
		$(PY) -m pytest -q -s tests/integration/test_crash.py -k mixed

bench:
	@scripts/install-deps bench
	@$(MAKE) --no-print-directory build
	@POSTERN_BIN=$(CURDIR)/$(BUILD)/postern bench/throughput
	@POSTERN_BIN=$(CURDIR)/$(BUILD)/postern bench/run
	@POSTERN_BIN=$(CURDIR)/$(BUILD)/postern bench/run --events --quick --target postern
	@POSTERN_BIN=$(CURDIR)/$(BUILD)/postern bench/submission
	@POSTERN_BIN=$(CURDIR)/$(BUILD)/postern bench/e2e
	@POSTERN_BIN=$(CURDIR)/$(BUILD)/postern bench/pop3
	@POSTERN_BIN=$(CURDIR)/$(BUILD)/postern bench/imap
	@POSTERN_BIN=$(CURDIR)/$(BUILD)/postern bench/dkim
	@POSTERN_BIN=$(CURDIR)/$(BUILD)/postern bench/cluster

# Not part of `make test`: debootstraps a minimal Debian 12 and runs `make test` and
# `make run` in it (scripts/fresh-machine-test; root, 20-60 minutes, needs the network).
fresh-test:
	scripts/fresh-machine-test

# The Debian package: dpkg-buildpackage -b -us -uc on a copy of the tree in build-deb/
# (never in this tree's build dirs), then lintian with no error or warning.
deb:
	@scripts/install-deps deb
	@scripts/build-deb

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) $(FUZZ_BUILD) build-deb
