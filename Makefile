# The two commands of the README: `make demo` and `make test`. Each sets up .venv from nothing.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
# The CPU build of PyTorch; an unpinned torch would pull a multi-GB CUDA build.
TORCH  ?= torch==2.13.0
STAMP  := $(VENV)/.installed

.PHONY: demo test test-all bench lint clean

$(STAMP): pyproject.toml Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check "$(TORCH)"
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[test,ray]'
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/iclreg demo --out runs/demo

test: $(STAMP)
	$(PY) -m pytest -q -m "not slow and not gpu" --durations=15

test-all: $(STAMP)
	$(PY) -m pytest -q

bench: $(STAMP)
	$(PY) benchmarks/estimators.py

# The one GPU check (< 9 min on one H100/H200): runs/gpu/gpu.json + gpu.txt. CPU: GPU_ARGS=--dry
.PHONY: bench-gpu
bench-gpu: $(STAMP)
	ICLREG_PYTHON=$(PY) bash benchmarks/gpu.sh $(GPU_ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests benchmarks

clean:
	rm -rf $(VENV) runs .pytest_cache
