#!/usr/bin/env bash
# The GPU check (scripts/gpu_check.py; its loop rows need vllm installed): one command, one table, under 10 minutes.
#
#   scripts/gpu_check.sh --wheels DIR   # here, with a package index: DIR gets the pure-Python wheels the check
#                                       # imports beyond torch and transformers (hydra-core, omegaconf, antlr4;
#                                       # under 1 MiB together), built from the sdist where PyPI has no wheel
#   scripts/gpu_check.sh [DIR] [ARGS]   # on the GPU machine (torch with CUDA, transformers): puts DIR's wheels
#                                       # on the path if given, then runs the check with ARGS (see --help);
#                                       # exit 1 if a check fails, 124 past 9.5 minutes
#
# The Python: $PYTHON if set; else the project's .venv (after `make setup`, torch lives there); else python3,
# a bare machine's system torch.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -n "${PYTHON:-}" ]; then PY=$PYTHON
elif [ -x .venv/bin/python ]; then PY=.venv/bin/python
else PY=python3
fi
# The versions CI tested (constraints-cpu.txt); antlr4 4.9.x is the one omegaconf 2.3 accepts.
WHEELS=(hydra-core==1.3.8 omegaconf==2.3.1 antlr4-python3-runtime==4.9.3)

if [ "${1:-}" = --wheels ]; then
  dir=${2:?usage: scripts/gpu_check.sh --wheels DIR}
  mkdir -p "$dir"
  "$PY" -m pip wheel --quiet --no-deps -w "$dir" "${WHEELS[@]}"
  ls -l "$dir"
  exit 0
fi
deps=
if [ -n "${1:-}" ] && [ -d "$1" ]; then
  # Unpacked into a temporary dir on PYTHONPATH, not installed: a system Python may be externally managed
  # (PEP 668: pip refuses, rightly), and may have no pip. The wheels are pure Python (Root-Is-Purelib), so
  # unpacking one is what installing it does to the import path.
  deps=$(mktemp -d)
  trap 'rm -rf "$deps"' EXIT
  for whl in "$1"/*.whl; do "$PY" -m zipfile -e "$whl" "$deps"; done
  shift
fi
"$PY" -c "import sys, torch, transformers; print(sys.executable, '| torch', torch.__version__, 'CUDA', torch.version.cuda, '| transformers', transformers.__version__)"
# Not exec: the trap removes the unpacked wheels afterwards. The script's status is the check's.
timeout 570 env PYTHONPATH="$PWD${deps:+:$deps}${PYTHONPATH:+:$PYTHONPATH}" "$PY" scripts/gpu_check.py "$@"
