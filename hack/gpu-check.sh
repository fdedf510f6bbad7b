#!/usr/bin/env bash
# `make gpu-check`: the CUDA path measured in one run (bench/gpu_check.py), on a bare GPU machine.
#
# Installs what it needs and keeps only what it can rebuild: .venv (hack/bootstrap.sh), the
# full-size random model (.models/full, written once by emotivoice_tts.testmodel) and its
# serving files. Arguments go to bench/gpu_check.py (--device cpu, --upstream DIR, --budget-s).
#
# A machine that cannot reach a package index (the lent GPU machines) sets GPU_CHECK_PYTHON to
# an interpreter that already has torch with CUDA; wheels for what it lacks may lie in .whl/
# (installed with --no-index into a temporary folder), and the model package is read from server/.
set -euo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
cd "$REPO"
export PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1

if [ -n "${GPU_CHECK_PYTHON:-}" ]; then
  PY=$GPU_CHECK_PYTHON
  site=$(mktemp -d /tmp/gpu-check-site.XXXXXX)
  trap 'rm -rf "$site"' EXIT
  if compgen -G ".whl/*.whl" >/dev/null; then
    echo ">> installing .whl/*.whl into $site (no index)"
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target "$site" .whl/*.whl
  fi
  export PYTHONPATH="$REPO/server:$site${PYTHONPATH:+:$PYTHONPATH}"
else
  bash hack/bootstrap.sh
  PY=.venv/bin/python
fi

if command -v nvidia-smi >/dev/null; then
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true
fi
"$PY" -c 'import torch; print(f">> torch {torch.__version__}, CUDA build {torch.version.cuda}, cuda available: {torch.cuda.is_available()}")'

model_given=no
for arg in "$@"; do
  case $arg in --model-dir|--model-dir=*) model_given=yes ;; esac
done
if [ "$model_given" = no ]; then
  began=$SECONDS
  "$PY" -m emotivoice_tts.testmodel full .models/full --if-missing
  echo ">> model .models/full ready after $((SECONDS - began)) s"
fi
"$PY" bench/gpu_check.py "$@"
