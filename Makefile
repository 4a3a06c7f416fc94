# mgpy — the two commands a newcomer needs are `make run` and `make test`.
# Both create .venv on first use; `make run` installs mgpy with its runtime dependency
# (brotli) only, `make test` adds the test extra (pytest, websockets, playwright, linters).
# Nothing else is needed but Python >= 3.10 with its venv module, and make.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
# mgpy installed (editable) with its runtime dependency: enough for `make run`
STAMP  := $(VENV)/.installed-stamp
# ... and with the test extra: `make test`, `make lint`
TEST_STAMP := $(VENV)/.test-stamp
HOST   ?= 127.0.0.1
PORT   ?= 8000
# `make test-pure`: the suites that exercise the C accelerators' pure-Python fallbacks
PURE_TESTS ?= $(wildcard tests/proto tests/net tests/core tests/ws)
PIP    := $(BIN)/python -m pip --disable-pip-version-check

.PHONY: run test test-pure lint typecheck bench soak autobahn autobahn-setup autobahn-server \
	autobahn-client sysdeps venv clean help

help:
	@echo "make run        serve the dashboard (web_root/) on http://$(HOST):$(PORT) with WebSocket push"
	@echo "make test       run the test suite (sets up .venv and system test peers on first use)"
	@echo "make test-pure  the core and WebSocket tests again with MGPY_NO_EXTENSIONS=1 (no C speedups)"
	@echo "make lint       ruff, mypy --strict, import-linter layers, no core internals outside core"
	@echo "make bench      benchmarks against aiohttp, uvicorn, websockets, nginx (prints ratios)"
	@echo "make soak       ~5 min of mixed load and abuse against the CLI (RSS, descriptors)"
	@echo "make autobahn   Autobahn WebSocket conformance, server and client modes"

# A venv needs the interpreter's ensurepip.  Debian and Ubuntu ship it separately
# (python3.X-venv): as root it is installed with apt-get, otherwise the one-line fix is
# printed.  A venv left without pip by an earlier failed attempt is completed here too.
APT_GET ?= apt-get
venv:
	@if [ ! -x $(BIN)/pip ]; then \
	  if ! command -v $(PYTHON) >/dev/null 2>&1; then \
	    echo "make: $(PYTHON) not found: install Python >= 3.10 (or run make PYTHON=/path/to/python3)" >&2; \
	    exit 1; \
	  fi; \
	  if ! $(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 10))'; then \
	    echo "make: mgpy needs Python >= 3.10; $(PYTHON) is $$($(PYTHON) -V 2>&1) (try make PYTHON=python3.11)" >&2; \
	    exit 1; \
	  fi; \
	  if ! $(PYTHON) -c 'import ensurepip' >/dev/null 2>&1; then \
	    pkg=$$($(PYTHON) -c 'import sys; print("python%d.%d-venv" % sys.version_info[:2])'); \
	    if [ "$$(id -u)" -eq 0 ] && command -v $(APT_GET) >/dev/null 2>&1; then \
	      echo "make: $(PYTHON) cannot create a virtual environment (no ensurepip): installing $$pkg with apt-get" >&2; \
	      export DEBIAN_FRONTEND=noninteractive; \
	      $(APT_GET) install -y -qq --no-install-recommends $$pkg >/dev/null 2>&1 || \
	        { $(APT_GET) update -qq && $(APT_GET) install -y -qq --no-install-recommends $$pkg >/dev/null; }; \
	    fi; \
	    if ! $(PYTHON) -c 'import ensurepip' >/dev/null 2>&1; then \
	      echo "make: $(PYTHON) cannot create a virtual environment (no ensurepip). Fix: sudo apt-get install $$pkg" >&2; \
	      exit 1; \
	    fi; \
	  fi; \
	  echo "$(PYTHON) -m venv $(VENV)"; \
	  $(PYTHON) -m venv $(VENV) || exit 1; \
	fi

# The distribution was called "mgpy" before it became "mgpy-net": an old editable
# install of it in this venv is removed so that the two do not both claim the package.
$(STAMP): pyproject.toml $(wildcard setup.py) mgpy/_speedups.c | venv
	@if $(PIP) show -q mgpy >/dev/null 2>&1; then $(PIP) uninstall -q -y mgpy; fi
	$(PIP) install -q -e .
	@touch $(STAMP)

$(TEST_STAMP): pyproject.toml $(wildcard setup.py) mgpy/_speedups.c | venv
	@if $(PIP) show -q mgpy >/dev/null 2>&1; then $(PIP) uninstall -q -y mgpy; fi
	$(PIP) install -q -e '.[test]'
	@touch $(STAMP) $(TEST_STAMP)

run: $(STAMP)
	$(BIN)/python -m mgpy --root web_root --listen $(HOST):$(PORT) --upload-dir uploads

sysdeps:
	@bash tools/sysdeps.sh

test: $(TEST_STAMP) sysdeps
	$(BIN)/python -m pytest -q

# The fallback a compiler-less install runs: every C accelerator switched off.
test-pure: $(TEST_STAMP)
	MGPY_NO_EXTENSIONS=1 $(BIN)/python -m pytest -q $(PURE_TESTS)

lint: $(TEST_STAMP)
	$(BIN)/ruff check mgpy tests examples bench tools
	$(BIN)/ruff format --check mgpy tests examples
	$(BIN)/mypy --strict mgpy
	$(BIN)/lint-imports
	$(BIN)/python tools/check_private.py

# mgpy side by side with aiohttp, uvicorn, websockets and nginx; prints ratios and targets
bench: $(STAMP)
	bash bench/setup.sh
	$(BIN)/python bench/run.py
	$(BIN)/python bench/mqtt_bench.py
	$(BIN)/python bench/push_bench.py

# ~5 minutes of mixed load plus issue 13's abuse patterns against python -m mgpy;
# prints the server's RSS and descriptors at start, peak and end; exit 1 on a leak
SOAK_SECONDS ?= 300
soak: $(STAMP)
	$(BIN)/python tools/soak.py --duration $(SOAK_SECONDS)

AUTOBAHN_SERVER_CMD := $(BIN)/python -m mgpy --listen 127.0.0.1:{port} --ws-max-message 16777216 --ws-max-fragments 65537 --log-level warning
AUTOBAHN_CLIENT_CMD := $(BIN)/python examples/ws_autobahn_client.py {url} {agent}

autobahn-setup:
	@bash tools/autobahn/setup.sh

autobahn-server: $(STAMP) autobahn-setup
	$(BIN)/python tools/autobahn/run.py server --path /ws --cmd '$(AUTOBAHN_SERVER_CMD)'

autobahn-client: $(STAMP) autobahn-setup
	$(BIN)/python tools/autobahn/run.py client --cmd '$(AUTOBAHN_CLIENT_CMD)'

# Autobahn sections 1-13 (12-13: permessage-deflate, 517 cases) in both modes: fuzzingclient against mgpy's server, fuzzingserver
# against a connect_ws client.  Fails if any case FAILED.
autobahn: $(STAMP) autobahn-setup
	@rc=0; \
	$(BIN)/python tools/autobahn/run.py server --path /ws --cmd '$(AUTOBAHN_SERVER_CMD)' || rc=1; \
	$(BIN)/python tools/autobahn/run.py client --cmd '$(AUTOBAHN_CLIENT_CMD)' || rc=1; \
	exit $$rc

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .mypy_cache .ruff_cache tools/autobahn/reports
