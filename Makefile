# Two commands on a fresh machine: `make demo` and `make test`. Each sets itself up from a bare clone.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
STAMP := $(VENV)/.installed-$(shell cat uv.lock pyproject.toml | cksum | cut -d' ' -f1)
UV_VERSION := 0.13.9

.PHONY: demo demo-prometheus test lint bench setup clean

$(STAMP): pyproject.toml uv.lock
	@test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	@test -x $(VENV)/bin/uv || $(VENV)/bin/python -m pip install -q "uv==$(UV_VERSION)"
	UV_PROJECT_ENVIRONMENT=$(VENV) $(VENV)/bin/uv sync --frozen --inexact --compile-bytecode
	@rm -f $(VENV)/.installed-*
	@touch $@

setup: $(STAMP)

PORT ?= 8501
demo: $(STAMP)
	$(VENV)/bin/agentops demo --port $(PORT)

# The same with Debian's prometheus and prometheus-alertmanager on loopback (apt-get install them first).
demo-prometheus: $(STAMP)
	$(VENV)/bin/agentops demo --with-prometheus --port $(PORT)

# Most of the suite waits on servers and subprocesses, so four workers on two cores halve its time; a test file
# stays on one worker, so its module-scoped servers start once.
TEST_WORKERS ?= 4
test: $(STAMP)
	$(VENV)/bin/pytest -n $(TEST_WORKERS) --dist loadfile

lint: $(STAMP)
	$(VENV)/bin/ruff check agentops tools flows app tests bench scripts
	$(VENV)/bin/lint-imports
	$(VENV)/bin/mypy

bench: $(STAMP)
	$(VENV)/bin/python bench/engine.py
	$(VENV)/bin/python bench/scheduler.py
	$(VENV)/bin/python bench/app_runs_page.py
	$(VENV)/bin/python bench/sessions.py
	$(VENV)/bin/python bench/data_query.py
	$(VENV)/bin/python bench/agent_loop.py
	$(VENV)/bin/python bench/approvals.py
	$(VENV)/bin/python bench/api.py
	$(VENV)/bin/python bench/ledger.py
	$(VENV)/bin/python bench/scale_out.py
	$(VENV)/bin/python bench/mcp_calls.py

clean:
	rm -rf $(VENV) .agentops
