#!/usr/bin/env bash
# Creates .venv with every Python dependency of the project (operator, server, dev tools).
# Idempotent: a second run with an unchanged pyproject.toml costs about a second.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  echo ">> creating .venv with $($PY --version)"
  "$PY" -m venv .venv
fi
stamp=.venv/.installed-$(sha256sum pyproject.toml | cut -c1-16)
if [ ! -f "$stamp" ]; then
  echo ">> installing Python dependencies (first time: torch is large, a few minutes)"
  .venv/bin/python -m pip install --quiet --upgrade pip
  .venv/bin/python -m pip install --progress-bar off -e '.[dev]'
  rm -f .venv/.installed-*
  touch "$stamp"
fi
