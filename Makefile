# corrbench — `make quickstart` and `make test` create .venv with pip when it is missing.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# pyproject.toml gives lower bounds only; the torch / torchvision this project is tested with are pinned
# here (this machine's pip finds them on local disk). `make install TORCH_PINS=` lets pip choose.
TORCH_PINS ?= torch==2.14.1 torchvision==0.29.1

.PHONY: install quickstart test test-full smoke bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]' $(TORCH_PINS)
	touch $(STAMP)

install: $(STAMP)

# Trains and evaluates (prints the table with intervals), writes the HTML report, and ends with the paired
# comparison of NoisyMix against standard training on the same images.
quickstart: $(STAMP)
	$(BIN)/corrbench run quickstart --runs-dir quickstart/runs --results quickstart/results
	$(BIN)/corrbench report --results quickstart/results --runs-dir quickstart/runs --out quickstart/table.md \
	  --html quickstart/report.html
	$(BIN)/corrbench compare noisymix standard --results quickstart/results

# Every table recipe in smoke form: 1 epoch on mnist5k with mnist_cnn, two corruptions at severity 3.
smoke: $(STAMP)
	for recipe in corrbench/bundled_recipes/*.toml; do \
	  $(BIN)/corrbench run $$recipe --runs-dir smoke/runs --results smoke/results --set epochs=1 \
	    --set dataset=mnist5k --set arch=mnist_cnn --set seed=0 --set eval.suites=c \
	    --set eval.corruptions=contrast,gaussian_noise --set eval.severities=3 --format md || exit 1; \
	done

test: $(STAMP)
	$(BIN)/python -m pytest -n 2 --durations=15

# The suite plus the all-methods × both-data-sets NaN regression (tests/test_methods_finite.py), ~15 min more.
test-full: $(STAMP)
	CORRBENCH_FULL_REGRESSION=1 $(BIN)/python -m pytest -n 2 --durations=15

bench: $(STAMP)
	$(BIN)/python benchmarks/throughput.py

clean:
	rm -rf $(VENV) runs results/*.parquet results/plots .pytest_cache quickstart smoke
