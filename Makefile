# authkestra -- the two commands a newcomer needs:
#   make demo   the main job, end to end, on the embedded defaults
#   make test   the whole suite (installs what it needs: venv, npm peers, servers)

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PEERS  := tests/interop/peers

.PHONY: test check lint typecheck install peers demo bench clean

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

lint: install
	$(BIN)/ruff check src tests examples bench
	$(BIN)/ruff format --check src

typecheck: install
	$(BIN)/mypy

check: lint typecheck

test: install peers check
	$(BIN)/pytest

clean:
	rm -rf $(VENV) $(PEERS)/node_modules .pytest_cache .mypy_cache .ruff_cache .hypothesis
