# Two set-up-free entry points (see README): `make demo` and `make test`.
# Each creates .venv with everything it needs on first use.
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
STAMP   = $(VENV)/.installed

.PHONY: demo test test-fast lint clean

$(STAMP): pyproject.toml bench/pyproject.toml
	$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "deploytune needs Python >= 3.11")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	scripts/ensure-swig
	$(BIN)/python -m pip install -q -e ".[dev,gp,workloads,peers,ray,postgres]" -e bench
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/deploytune demo

lint: $(STAMP)
	$(BIN)/ruff check src bench/src tests
	$(BIN)/mypy

test: lint
	scripts/ensure-espeak-ng
	scripts/ensure-llama-cpp $(VENV)
	scripts/ensure-postgres
	$(BIN)/python -m pytest -q -n 2 tests

# the developers' loop: lint, types and the tests not marked slow (CONTRIBUTING.md)
test-fast: lint
	scripts/ensure-postgres
	$(BIN)/python -m pytest -q -n 2 -m "not slow" tests

clean:
	rm -rf $(VENV) results .pytest_cache .mypy_cache .ruff_cache
