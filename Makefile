# authkestra -- the two commands a newcomer needs:
#   make demo   the main job, end to end, on the embedded defaults
#   make test   the whole suite (installs what it needs: venv, npm peers, servers)

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PEERS  := tests/interop/peers

# Servers the suite runs for real are installed from Debian when missing (root or sudo).
SUDO   := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: test check lint typecheck bench-smoke install peers servers demo bench clean

install: $(VENV)/.installed
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

peers: $(PEERS)/node_modules/.installed
$(PEERS)/node_modules/.installed: $(PEERS)/package-lock.json
	cd $(PEERS) && npm ci --no-audit --no-fund --loglevel=error
	touch $@

# redis-server, and PostgreSQL's server binaries (initdb, pg_ctl): the tests start their own;
# wrk, the load generator of the server benchmarks.
servers:
	@missing=""; \
	command -v redis-server >/dev/null || missing="$$missing redis-server"; \
	command -v wrk >/dev/null || missing="$$missing wrk"; \
	ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null || missing="$$missing postgresql"; \
	if [ -n "$$missing" ]; then \
		$(SUDO) apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $$missing; \
	fi

lint: install
	$(BIN)/ruff check src tests examples bench
	$(BIN)/ruff format --check src

typecheck: install
	$(BIN)/mypy

# Every benchmark, seconds-long (--smoke): a benchmark that no longer runs fails the build.
BENCHES := $(sort $(wildcard bench/[a-z]*.py))
bench-smoke: install peers servers
	@for script in $(BENCHES); do \
		echo "bench-smoke: $$script"; \
		out=$$($(BIN)/python $$script --smoke 2>&1) || { \
			echo "$$out" | tail -40; echo "bench-smoke: $$script failed"; exit 1; }; \
	done

check: lint typecheck bench-smoke

test: install peers servers check
	$(BIN)/pytest

# The demo needs the server and the resource side, not the test toolchain.
demo: $(VENV)/.demo-installed
	$(BIN)/authkestra demo
$(VENV)/.demo-installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[server,resource]'
	touch $@

# Side-by-side benchmarks (several minutes; results go in bench/README.md).
bench: install peers servers
	$(BIN)/python -m pip install --quiet -e '.[bench]'
	bench/run_client.sh
	$(BIN)/python bench/verifier_throughput.py --breakdown --charts bench/results
	$(BIN)/python bench/server_bench.py --json bench/results/server.json --charts bench/results

clean:
	rm -rf $(VENV) $(PEERS)/node_modules .pytest_cache .mypy_cache .ruff_cache .hypothesis
