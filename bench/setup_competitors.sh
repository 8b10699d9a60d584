#!/usr/bin/env bash
# Optional: separate venvs with DBOS and Prefect so bench/engine.py and bench/scale_out.py can compare side by side.
set -euo pipefail
cd "$(dirname "$0")"
PY=$(command -v python3.11 || command -v python3)
[ -x .venv-dbos/bin/python ] || { $PY -m venv .venv-dbos && .venv-dbos/bin/pip install -q "dbos>=2,<4"; }
[ -x .venv-prefect/bin/python ] || { $PY -m venv .venv-prefect && .venv-prefect/bin/pip install -q "prefect>=3,<4" "fastapi<0.116"; }
