# Two commands on a fresh machine: `make run` (install + default sweep) and `make test` (install + tests).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
CONFIG ?= benchmarks/quick.toml

.PHONY: install run test bench clean

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c constraints.txt -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(BIN)/seqbench run $(CONFIG)

test: $(STAMP)
	$(BIN)/python -m pytest -q

# Speed and accuracy goals live here, not in unit tests: seqbench's timer vs torch.utils.benchmark.
bench: $(STAMP)
	$(BIN)/python benchmarks/timer_vs_torch.py

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
