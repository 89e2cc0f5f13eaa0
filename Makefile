# The README's two commands: `make demo` and `make test`. Both create the environment from scratch.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check -q
SURVMOM := $(VENV)/bin/survmom
DEMO := demo_out

.PHONY: setup demo test lint bench clean

# The CPU build of torch goes in first, pinned by constraints.txt, so pip never resolves a CUDA build.
$(VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -c constraints.txt torch
	$(PIP) install -c constraints.txt -e ".[test]"
	touch $@

setup: $(VENV)/.installed

demo: setup
	$(PY) -m survmom.demo

test: setup
	$(VENV)/bin/ruff check survmom tests benchmarks
	$(VENV)/bin/pytest -q

lint: setup
	$(VENV)/bin/ruff check survmom tests benchmarks

clean:
	rm -rf $(VENV) $(DEMO) .pytest_cache .ruff_cache
