# Two commands: `make run` and `make test`. Both create ./.venv and install what they need.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
HOST ?= 127.0.0.1
PORT ?= 8000
WORKERS ?= 2

.PHONY: install run test test-slow test-wheel lint bench clean

$(STAMP): setup.cfg setup.py pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check 'torch==2.13.0'
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[test,postgres]'
	touch $(STAMP)

install: $(STAMP)

run: install
	$(BIN)/airec serve --host $(HOST) --port $(PORT) --workers $(WORKERS)

test: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/pytest -q

test-slow: install
	$(BIN)/pytest -q -m slow

# The wheel, installed in a fresh virtualenv outside the checkout, serves, trains and recommends.
# Dependencies come from .cache/wheelhouse (filled once by `pip wheel`, torch from the local file).
test-wheel: install
	$(BIN)/pytest -q -m wheel tests/test_wheel.py

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

bench: install
	$(BIN)/airec bench accuracy --seeds 3

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache .ruff_cache build dist
