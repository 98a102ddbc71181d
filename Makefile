# oxsync: `make serve` and `make test` bootstrap everything they need on a fresh Debian machine.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
DEPS_HASH := $(shell cat setup.cfg pyproject.toml | md5sum | cut -c1-12)
RUNTIME := $(VENV)/.runtime-$(DEPS_HASH)
STAMP := $(VENV)/.installed-$(DEPS_HASH)
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: serve test check lint typecheck typecheck-baseline sysdeps bench bench-peers bench-eas-peers bench-capacity conformance clean

# `make serve` needs only the runtime dependencies (install_requires); the test, bench and conformance
# extras are added on top for `make test` and friends.
$(RUNTIME): setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e .
	rm -f $(VENV)/.runtime-*
	touch $(RUNTIME)

$(STAMP): $(RUNTIME)
	$(BIN)/pip install -q -e '.[test,bench,conformance]'
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

# System tools the tests drive for real: PostgreSQL server binaries (throwaway clusters), Debian's
# libwbxml2 tools (WBXML cross-checks), Dovecot with its SQL drivers (throwaway mail servers,
# the demo's mailboxes), Chromium and chromedriver (the console's browser tests). Installed only when missing.
sysdeps:
	@missing=""; \
	command -v wbxml2xml >/dev/null || missing="$$missing libwbxml2-utils"; \
	command -v systemd-analyze >/dev/null || missing="$$missing systemd"; \
	(command -v initdb >/dev/null || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1) || missing="$$missing postgresql"; \
	for p in dovecot-imapd dovecot-lmtpd dovecot-sieve dovecot-managesieved dovecot-sqlite dovecot-pgsql; do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'ok installed' || missing="$$missing $$p"; \
	done; \
	command -v chromium >/dev/null || missing="$$missing chromium"; \
	command -v chromedriver >/dev/null || missing="$$missing chromium-driver"; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing >/dev/null; \
	fi

serve: $(RUNTIME)
	$(BIN)/oxsync serve --demo --admin-listen tcp:9180:interface=127.0.0.1 --console-listen tcp:8090:interface=127.0.0.1

lint: $(STAMP)
	$(BIN)/ruff check oxsync tests bench conformance

# Seconds, before the long suite: lint, the import directions of docs/architecture.md, the docs'
# settings and file references, mypy's per-file ratchet (docs/types.md; cached in .mypy_cache/), and the
# house rules (docs/tests.md names each module's tests, test files say what they guard, modules <= 600 lines).
check: lint
	$(BIN)/pytest -q -p no:cacheprovider tests/test_architecture.py tests/test_docs.py tests/test_types.py tests/test_house.py

# mypy over oxsync/ against tests/data/mypy_baseline.json, with the errors of the files that went up.
typecheck: $(STAMP)
	$(BIN)/python -m tests.typecheck

# Lowers each count of the baseline to today's where today's is lower (never raises one, never adds a file).
typecheck-baseline: $(STAMP)
	$(BIN)/python -m tests.typecheck --lower

# --durations=30: every run (CI's too) ends with its 30 slowest setups, calls and teardowns, so that the
# suite's time is watched where it is spent.
test: $(STAMP) sysdeps lint
	$(BIN)/pytest -q --durations=30

bench: $(STAMP)
	@for b in bench/bench_*.py; do [ -e "$$b" ] && [ "$$b" != bench/bench_peers.py ] && [ "$$b" != bench/bench_eas_peers.py ] && $(BIN)/python $$b; done; true

# oxsync next to Radicale, Xandikos and SOGo (Debian packages sogo, sogo-activesync, memcached; the
# bench says why when a peer cannot start). PEERS_ARGS e.g. "--events 1000 --cards 1000 --runs 1 --pg".
bench-peers: $(STAMP)
	$(BIN)/python -m bench.bench_peers $(PEERS_ARGS)

# The largest simulator user count passing every threshold with a 30 s and a 120 s ramp (bench/README g).
# CAPACITY_ARGS e.g. "--profile pg --out bench/results/capacity-pg".
bench-capacity: $(STAMP)
	$(BIN)/python -m bench.sim.capacity $(CAPACITY_ARGS) -- --seed-cache var/sim-seeds

# oxsync's ActiveSync next to SOGo's (Debian sogo-activesync; SOGo logs in to a throwaway Dovecot).
# EAS_PEERS_ARGS e.g. "--cards 1000 --events 500 --runs 1 --oxsync-pings 200".
bench-eas-peers: $(STAMP)
	$(BIN)/python -m bench.bench_eas_peers $(EAS_PEERS_ARGS)

# The real third-party clients (pyactivesync, caldav-server-tester, ...) also run in `make test`.
conformance: $(STAMP) sysdeps
	$(BIN)/pytest -q conformance

clean:
	rm -rf $(VENV) var .pytest_cache .ruff_cache .mypy_cache
