# `make test` and `make demo` work on a fresh clone with Python 3.10+ and make.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: test demo docs lint typecheck clean

$(BIN)/python:
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 10) and "flask-bitmapist needs Python 3.10 or newer; set PYTHON=python3.X")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# One stamp per extra, redone whenever pyproject.toml changes.
$(VENV)/.installed-%: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e ".[$*]"
	touch $@

lint: $(VENV)/.installed-test
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .

typecheck: $(VENV)/.installed-test
	$(BIN)/mypy

# Warnings are errors, so a broken reference fails the build.
docs: $(VENV)/.installed-test
	$(BIN)/sphinx-build -q -W --keep-going -b html docs docs/_build/html

test: lint typecheck docs
	$(BIN)/pytest

demo: $(VENV)/.installed-demo
	$(BIN)/python examples/demo.py

clean:
	rm -rf $(VENV) build *.egg-info .mypy_cache .ruff_cache .pytest_cache .hypothesis
