# govrag — two commands: `make demo` and `make test` (each sets up what it needs first).
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
export SCARF_NO_ANALYTICS := true
export DO_NOT_TRACK := true
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export UNSTRUCTURED_DISABLE_NOTICE := 1

.PHONY: setup triton-env demo lint test test-fast bench nvfp4-report clean

setup: $(VENV)/.installed

# torch first, the CPU build (the wheel on disk): nothing later may pull a CUDA torch.
# unstructured-inference is needed by partition_pdf's imports, but its own requirements
# (timm -> torchvision) would replace torch with a CUDA build, so it goes in --no-deps;
# the pieces it really uses are in pyproject.toml.
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet torch==2.13.0
	$(PIP) install --quiet --no-deps "unstructured-inference>=1.6.12,<2"
	$(PIP) install --quiet -e ".[dev]"
	$(PY) -c "import torch, sys; v = torch.__version__; sys.exit(0 if v.endswith('+cpu') else 'CUDA torch pulled in: ' + v)"
	touch $@

# The Triton server's own environment (nvidia-pytriton pins numpy<2; see the script).
triton-env: .venv-triton/.installed
.venv-triton/.installed: scripts/setup_triton_env.sh
	bash scripts/setup_triton_env.sh
	touch $@

demo: setup
	$(VENV)/bin/govrag demo

# Code checks (configured in pyproject.toml): ruff's lint rules and formatting, and mypy
# (strict on governance and retrieval). `make test` runs them first.
lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

# Three workers on two cores: most of the slow tests wait on processes they start (servers,
# CLI runs, kill-and-recover faults), so a third worker fills the waits. Each worker gets its
# own temp dirs, its own milvus-server and fresh PostgreSQL databases.
TEST_WORKERS ?= 3
test: setup triton-env lint
	$(PY) -m pytest -q -ra -n $(TEST_WORKERS)

test-fast: setup
	$(PY) -m pytest -q -m "not slow"

bench: setup
	$(PY) bench/search_latency.py
	$(PY) bench/ingest_throughput.py

nvfp4-report: setup
	$(PY) scripts/nvfp4_report.py

clean:
	rm -rf .govrag .pytest_cache
