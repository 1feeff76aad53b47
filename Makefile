# `make test` and `make demo` work on a fresh clone with Python 3.10+ and make.
#
# Variables (on the command line: make test PYTHON=python3.13 EXTRAS=test,bitmapist):
#   PYTHON    the interpreter. Each one gets a venv of its own: .venv for the
#             default python3, .venv-3.13 (.venv-<X.Y>) for any other, so
#             switching PYTHON never reuses another Python's venv.
#   EXTRAS    the extras `make test` installs: test (default), or
#             test,bitmapist to run the bitmapist-compatibility tests too.
#   REDIS_PY  a redis-py requirement, e.g. 'redis>=5,<6', installed (upgraded
#             to the newest it allows) in the same pip command as the package,
#             so pip resolves the two together. Empty: whatever the extras get.
#   VENV      the venv's folder, to override the one PYTHON picks.
# `make test-oldest` and `make test-newest` run the two ends of what is supported.
PYTHON ?= python3
EXTRAS ?= test
REDIS_PY ?=
PYTHON_OLDEST ?= python3.10
PYTHON_NEWEST ?= python3.13

# What identifies an interpreter: version, implementation and installation.
# A venv made by another one (another python3 after an upgrade, say) is
# refused below rather than silently reused.
PY_ID_CODE := import sys; print("%d.%d" % sys.version_info[:2], sys.implementation.name, sys.base_prefix)
PY_ID := $(shell $(PYTHON) -c '$(PY_ID_CODE)' 2>/dev/null)
ifeq ($(PY_ID),)
$(error PYTHON=$(PYTHON) does not run here: set PYTHON (or PYTHON_OLDEST, PYTHON_NEWEST) to an interpreter's path, e.g. PYTHON=/usr/bin/python3.13)
endif
ifeq ($(PYTHON),python3)
VENV ?= .venv
else
# .venv-3.13 for CPython; .venv-pypy3.10 for another implementation.
VENV ?= .venv-$(if $(filter cpython,$(word 2,$(PY_ID))),,$(word 2,$(PY_ID)))$(word 1,$(PY_ID))
endif
BIN := $(VENV)/bin

# Each requirement of REDIS_PY quoted for the shell: 'redis>=5,<6' holds a '<'.
REDIS_PY_ARGS := $(foreach requirement,$(REDIS_PY),'$(requirement)')
INSTALL := $(BIN)/python -m pip install --quiet
# Run after each install, so a set whose requirements conflict fails the build.
PIP_CHECK := $(BIN)/python -m pip check || { echo "pip check failed in $(VENV): if it holds packages of an earlier EXTRAS or REDIS_PY, remove it (rm -rf $(VENV)) and run make again" >&2; exit 1; }

.PHONY: test test-oldest test-newest demo docs lint typecheck clean venv-check FORCE

$(BIN)/python:
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 10) and "flask-bitmapist needs Python 3.10 or newer; set PYTHON=python3.X")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

venv-check: | $(BIN)/python
	@test "$$($(BIN)/python -c '$(PY_ID_CODE)')" = '$(PY_ID)' || { echo "$(VENV) was made by another Python than PYTHON=$(PYTHON) ($(PY_ID)): remove it (rm -rf $(VENV)) or set VENV=" >&2; exit 1; }

# What `make test` installs; the file changes only when EXTRAS or REDIS_PY
# do, and then the install below runs again.
$(VENV)/.requested-test: FORCE | venv-check
	@printf '%s\n' 'EXTRAS=$(EXTRAS)' 'REDIS_PY=$(REDIS_PY)' | cmp -s - $@ || printf '%s\n' 'EXTRAS=$(EXTRAS)' 'REDIS_PY=$(REDIS_PY)' > $@

# Stamps, redone whenever pyproject.toml (or what is requested) changes.
$(VENV)/.installed-test: pyproject.toml $(VENV)/.requested-test | venv-check
	$(INSTALL)$(if $(REDIS_PY_ARGS), --upgrade) -e ".[$(EXTRAS)]"$(if $(REDIS_PY_ARGS), $(REDIS_PY_ARGS))
	$(PIP_CHECK)
	touch $@

$(VENV)/.installed-demo: pyproject.toml | venv-check
	$(INSTALL) -e ".[demo]"
	$(PIP_CHECK)
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
	@$(BIN)/python -c 'import sys, importlib.metadata as m; v = lambda name: next((d.version for d in m.distributions(name=name)), "not installed"); print("== pytest on Python %s ($(VENV)), redis-py %s, bitmapist %s, extras $(EXTRAS)" % (sys.version.split()[0], v("redis"), v("bitmapist")))'
	$(BIN)/pytest

# The two ends of what is supported, each in its interpreter's venv.
test-oldest:
	$(MAKE) test PYTHON='$(PYTHON_OLDEST)' EXTRAS=test,bitmapist REDIS_PY='redis>=5,<6'

test-newest:
	$(MAKE) test PYTHON='$(PYTHON_NEWEST)' EXTRAS=test REDIS_PY='redis>=8'

demo: $(VENV)/.installed-demo
	$(BIN)/python examples/demo.py

clean:
	rm -rf $(VENV) build *.egg-info .mypy_cache .ruff_cache .pytest_cache .hypothesis

FORCE:
