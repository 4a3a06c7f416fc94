# mgpy — the two commands a newcomer needs are `make run` and `make test`.
# Both create .venv and install mgpy with its test extra on first use.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
HOST   ?= 127.0.0.1
PORT   ?= 8000

.PHONY: run test lint typecheck bench autobahn autobahn-setup autobahn-server autobahn-client sysdeps clean help

help:
	@echo "make run        serve web_root/ on http://$(HOST):$(PORT) with WebSocket push"
	@echo "make test       run the test suite (sets up .venv and system test peers on first use)"
	@echo "make lint       ruff + mypy --strict"
	@echo "make bench      benchmarks against aiohttp, uvicorn, websockets, nginx (prints ratios)"
	@echo "make autobahn   Autobahn WebSocket conformance, server and client modes"

$(STAMP): pyproject.toml $(wildcard setup.py)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/python -m mgpy --root web_root --listen $(HOST):$(PORT) --upload-dir uploads

sysdeps:
	@bash tools/sysdeps.sh

test: $(STAMP) sysdeps
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check mgpy tests examples bench
	$(BIN)/ruff format --check mgpy tests examples
	$(BIN)/mypy --strict mgpy

# mgpy side by side with aiohttp, uvicorn, websockets and nginx; prints ratios and targets
bench: $(STAMP)
	bash bench/setup.sh
	$(BIN)/python bench/run.py

AUTOBAHN_SERVER_CMD := $(BIN)/python -m mgpy --listen 127.0.0.1:{port} --ws-max-message 16777216 --log-level warning
AUTOBAHN_CLIENT_CMD := $(BIN)/python examples/ws_autobahn_client.py {url} {agent}

autobahn-setup:
	@bash tools/autobahn/setup.sh

autobahn-server: $(STAMP) autobahn-setup
	$(BIN)/python tools/autobahn/run.py server --path /ws --cmd '$(AUTOBAHN_SERVER_CMD)'

autobahn-client: $(STAMP) autobahn-setup
	$(BIN)/python tools/autobahn/run.py client --cmd '$(AUTOBAHN_CLIENT_CMD)'

# Autobahn sections 1-10 in both modes: fuzzingclient against mgpy's server, fuzzingserver
# against a connect_ws client.  Fails if any case FAILED.
autobahn: $(STAMP) autobahn-setup
	@rc=0; \
	$(BIN)/python tools/autobahn/run.py server --path /ws --cmd '$(AUTOBAHN_SERVER_CMD)' || rc=1; \
	$(BIN)/python tools/autobahn/run.py client --cmd '$(AUTOBAHN_CLIENT_CMD)' || rc=1; \
	exit $$rc

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .mypy_cache .ruff_cache tools/autobahn/reports
