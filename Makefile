# One entry point for set-up and checks. `make demo` and `make test` are the README's two commands.
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
NATIVE := $(VENV)/.native

.PHONY: demo test lint bench clean

$(STAMP): pyproject.toml
	bash scripts/system-packages.sh
	python3 -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

# The compiled extensions (streams, the task service's front end), rebuilt in place when their
# source changes (an editable install builds them once; a stale one would test old code).
$(NATIVE): $(STAMP) setup.py headwater/stream/_native.c headwater/tasks/_front.cc
	$(BIN)/python -m pip install --quiet --no-deps -e .
	touch $(NATIVE)

demo: $(NATIVE)
	PATH="$(abspath $(BIN)):$$PATH" bash examples/demo.sh

lint: $(NATIVE)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

# pytest exits 5 when it collects no tests; make stops on any non-zero exit, so that fails too.
test: lint
	$(BIN)/pytest

bench: $(NATIVE)
	bash bench/run.sh

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache headwater/stream/_native*.so headwater/tasks/_front*.so
