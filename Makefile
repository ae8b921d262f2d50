# repeval — the two commands of the README, and a few helpers.
SHELL := /bin/bash
VENV := .venv
BIN := $(VENV)/bin

.PHONY: setup setup-all run test lint bench clean mkl-shim

setup:
	bash scripts/setup.sh

## base install plus every embedding-model family (what the tests use)
setup-all:
	EXTRAS=models bash scripts/setup.sh

## Render the quickstart notes, run the quickstart experiment, print the table, write the report
run: setup
	@test -f data/quickstart/manifest.csv || $(BIN)/repeval data render data/quickstart
	$(BIN)/repeval run configs/quickstart.yaml
	$(BIN)/repeval report runs/quickstart

## Run the test suite, listing its 25 slowest steps (its short-lived Ray instances run without Ray's token authentication; `make run`
## keeps Ray's default, token authentication on: Ray 2.60 listens on every interface, see docs/SECURITY.md)
test: export RAY_AUTH_MODE ?= disabled
test: setup-all
	$(BIN)/python -m pytest -q --durations=25

## AMD CPUs: MKL's Intel code path for torch (repeval/mkl_intel_cpu.c). setup builds it when gcc exists and
## `repeval` then preloads it by itself (repeval/cpu.py; REPEVAL_MKL_SHIM=0 turns it off); this rebuilds it
mkl-shim:
	rm -f $(VENV)/lib/librepeval-mkl-intel-cpu.so
	bash scripts/setup.sh

lint: setup
	$(BIN)/ruff check repeval tests benchmarks jobs
	$(BIN)/ruff format --check repeval tests benchmarks jobs
	$(BIN)/mypy

bench: export RAY_AUTH_MODE ?= disabled
bench: setup
	for b in benchmarks/bench_*.py; do $(BIN)/python $$b || exit 1; done

clean:
	rm -rf store runs data/quickstart
