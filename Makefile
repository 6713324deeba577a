# Front door. `make demo` and `make test` are the README's first two commands.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: venv test lint format demo bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

venv: $(STAMP)

# Two workers, one test file each (pytest-xdist): the suite is mostly real runs waiting on sockets and
# subprocesses; a file's module-scoped services (e.g. the private SLURM) stay on one worker.
PYTEST_ARGS ?= -n 2 --dist loadfile

test: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks tools workflow/scripts
	$(BIN)/ruff format --check src tests benchmarks tools workflow/scripts
	$(BIN)/snakefmt --check workflow
	$(BIN)/snakemake --lint --workflow-profile none --cores 1

format: $(STAMP)
	$(BIN)/ruff format src tests benchmarks workflow/scripts
	$(BIN)/snakefmt workflow

demo: $(STAMP)
	$(BIN)/python -m amsr2flow.cli.demo

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_archive.py

clean:
	rm -rf $(VENV) demo .pytest_cache
