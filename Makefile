# The README's two commands: `make demo` and `make test`. Both create the environment from scratch.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check -q
SURVMOM := $(VENV)/bin/survmom
DEMO := demo_out

.PHONY: setup demo figures test lint bench accuracy clean

# The CPU build of torch goes in first, pinned by constraints.txt, so pip never resolves a CUDA build.
$(VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -c constraints.txt torch
	$(PIP) install -c constraints.txt -e ".[test]"
	touch $@

setup: $(VENV)/.installed

# Trains a cox model (CSV) and a weibull model (Parquet) on sample_data/, predicts new rows, inspects,
# evaluates and draws the figures (in-sample on the sample cohort: a demonstration, not a validation).
demo: setup
	mkdir -p $(DEMO)
	$(SURVMOM) train sample_data/cohort.csv --id-col id --out $(DEMO)/cox.pt
	$(SURVMOM) train sample_data/cohort.parquet --id-col id --loss weibull --out $(DEMO)/weibull.pt
	$(SURVMOM) predict $(DEMO)/cox.pt sample_data/new_patients.csv --times 365,730 -o $(DEMO)/cox_predictions.csv
	$(SURVMOM) predict $(DEMO)/weibull.pt sample_data/new_patients.csv --times 365,730 \
		-o $(DEMO)/weibull_predictions.parquet
	$(SURVMOM) inspect $(DEMO)/cox.pt
	@echo "first predictions ($(DEMO)/cox_predictions.csv):"
	@head -n 4 $(DEMO)/cox_predictions.csv
	$(SURVMOM) evaluate $(DEMO)/cox.pt sample_data/cohort.csv --times 365,730,1460
	$(SURVMOM) plot history $(DEMO)/cox.pt -o $(DEMO)/history.png
	$(SURVMOM) plot survival $(DEMO)/cox.pt sample_data/new_patients.csv --rows 5 -o $(DEMO)/survival.png
	$(SURVMOM) plot km $(DEMO)/cox.pt sample_data/cohort.csv --groups 3 -o $(DEMO)/km.png
	$(SURVMOM) plot calibration $(DEMO)/cox.pt sample_data/cohort.csv --time 730 -o $(DEMO)/calibration.png
	$(SURVMOM) explain $(DEMO)/cox.pt sample_data/cohort.csv -o $(DEMO)/importance.png
	$(SURVMOM) plot effect $(DEMO)/cox.pt sample_data/cohort.csv --feature age --time 730 -o $(DEMO)/effect_age.png

# The README's figures (docs/figures/) are the demo's, drawn again from scratch.
figures: demo
	cp $(DEMO)/history.png $(DEMO)/survival.png $(DEMO)/km.png $(DEMO)/calibration.png \
		$(DEMO)/importance.png $(DEMO)/effect_age.png docs/figures/

test: setup
	$(VENV)/bin/ruff check survmom tests benchmarks
	$(VENV)/bin/pytest -q -n 2

# Benchmarks (see BENCHMARKS.md). BENCH_FLAGS=--quick for a short run. Installs benchmark-only peers.
BENCH_FLAGS ?=
$(VENV)/.bench-installed: $(VENV)/.installed
	$(PIP) install -c constraints.txt -e ".[test,bench]"
	touch $@

bench: $(VENV)/.bench-installed
	$(PY) benchmarks/bench_help.py $(BENCH_FLAGS)
	$(PY) benchmarks/bench_momentum_step.py $(BENCH_FLAGS)
	$(PY) benchmarks/bench_designs.py $(BENCH_FLAGS)
	$(PY) benchmarks/bench_metrics.py $(BENCH_FLAGS)
	$(PY) benchmarks/bench_train.py $(BENCH_FLAGS)
	$(PY) benchmarks/bench_distributed.py $(BENCH_FLAGS)
	$(PY) benchmarks/bench_predict.py $(BENCH_FLAGS)

# The README's accuracy table (every method, the 8 data sets, 5 splits), regenerated in place.
accuracy: $(VENV)/.bench-installed
	$(PY) benchmarks/accuracy.py --jobs 2 --readme README.md

lint: setup
	$(VENV)/bin/ruff check survmom tests benchmarks

clean:
	rm -rf $(VENV) $(DEMO) .pytest_cache .ruff_cache
