#!/usr/bin/env bash
# The GPU check of what runs without vLLM (scripts/gpu_check.py): one command, one table, under 8 minutes.
#
#   scripts/gpu_check.sh --wheels DIR   # here, with a package index: DIR gets the pure-Python wheels the check
#                                       # imports beyond torch and transformers (hydra-core, omegaconf, antlr4;
#                                       # under 1 MiB together), built from the sdist where PyPI has no wheel
#   scripts/gpu_check.sh [DIR] [ARGS]   # on the GPU machine (torch with CUDA, transformers): installs DIR's
#                                       # wheels offline if given, then runs the check with ARGS (see --help);
#                                       # exit 1 if a check fails, 124 past 8 minutes
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
# The versions CI tested (constraints-cpu.txt); antlr4 4.9.x is the one omegaconf 2.3 accepts.
WHEELS=(hydra-core==1.3.8 omegaconf==2.3.1 antlr4-python3-runtime==4.9.3)

if [ "${1:-}" = --wheels ]; then
  dir=${2:?usage: scripts/gpu_check.sh --wheels DIR}
  mkdir -p "$dir"
  "$PY" -m pip wheel --quiet --no-deps -w "$dir" "${WHEELS[@]}"
  ls -l "$dir"
  exit 0
fi
if [ -n "${1:-}" ] && [ -d "$1" ]; then
  "$PY" -m pip install --quiet --no-index --no-deps "$1"/*.whl
  shift
fi
"$PY" -c "import torch, transformers; print('torch', torch.__version__, 'CUDA', torch.version.cuda, '| transformers', transformers.__version__)"
exec timeout 480 env PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" "$PY" scripts/gpu_check.py "$@"
