# Two commands on a fresh machine: `make run` (install + default sweep) and `make test` (install + tests).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
CONFIG ?= benchmarks/quick.toml

.PHONY: install run test bench bench-peak bench-scan clean

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

# % of the measured matmul peak per kernel (B=8, d=256, 4 heads, T=1024), and minGRU scan vs loop per T.
bench-peak: $(STAMP)
	$(BIN)/python benchmarks/beyond.py peak

bench-scan: $(STAMP)
	$(BIN)/python benchmarks/beyond.py scan

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
