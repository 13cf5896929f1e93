# corrbench — `make quickstart` and `make test` create .venv with pip when it is missing.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install quickstart test smoke bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

quickstart: $(STAMP)
	$(BIN)/corrbench run recipes/quickstart.toml --runs-dir quickstart/runs --results quickstart/results

# Every table recipe in smoke form: 1 epoch on mnist5k with mnist_cnn, two corruptions at severity 3.
smoke: $(STAMP)
	for recipe in recipes/*.toml; do \
	  $(BIN)/corrbench run $$recipe --runs-dir smoke/runs --results smoke/results --set epochs=1 \
	    --set dataset=mnist5k --set arch=mnist_cnn --set seed=0 --set eval.suites=c \
	    --set eval.corruptions=contrast,gaussian_noise --set eval.severities=3 --format md || exit 1; \
	done

test: $(STAMP)
	$(BIN)/python -m pytest -n 2 --durations=15

bench: $(STAMP)
	$(BIN)/python benchmarks/throughput.py

clean:
	rm -rf $(VENV) runs results/*.parquet results/plots .pytest_cache quickstart smoke
