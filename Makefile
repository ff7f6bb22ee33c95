# Two commands on a fresh machine: `make run` (install + default sweep) and `make test` (install + tests).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
CONFIG ?= benchmarks/configs/quick.toml
# Where torch comes from. Here a CPU wheel lies on local disk; on a hosted CI runner PyPI's torch is the
# multi-GB CUDA build, so the workflows set TORCH_INDEX=https://download.pytorch.org/whl/cpu.
TORCH_INDEX ?=

.PHONY: install browser run test test-quick docs test-min bench bench-ci bench-ci-auto bench-peak bench-scan examples examples-decode clean

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(if $(TORCH_INDEX),$(BIN)/pip install --quiet -c constraints.txt torch --index-url $(TORCH_INDEX))
	$(BIN)/pip install --quiet -c constraints.txt -e '.[test,hf,docs]'
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(BIN)/seqbench run $(CONFIG)

# One pytest worker per core of this 2-core machine (pytest-xdist); `PYTEST_WORKERS=0 make test` runs them in one process.
PYTEST_WORKERS ?= 2
test: $(STAMP) browser
	$(BIN)/python -m pytest -q -n $(PYTEST_WORKERS)

# The quick part while you edit: no test marked `slow` (those spawn processes or run real sweeps,
# Valgrind and the browser included). `make test` is the whole suite, the one CI runs.
test-quick: $(STAMP)
	$(BIN)/python -m pytest -q -n $(PYTEST_WORKERS) -m "not slow"

# The documentation site (mkdocs.yml, docs/): strict, so a broken link or a page missing from the nav fails.
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict -d site

# Debian's chromium + chromedriver for the dashboard's browser tests (tests/test_history_site.py, which
# skip, saying why, where neither is installed). Installs only as root (CI); elsewhere it says so.
browser:
	@if [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null; } \
	    || echo "make browser: apt-get could not install chromium; the browser tests will be skipped" >&2; \
	else echo "make browser: no /usr/bin/chromium and not root with apt-get; the browser tests will be skipped" >&2; fi

# The declared lower bounds (pyproject.toml), installed from constraints-min.txt in their own venv.
MIN_VENV := .venv-min
test-min:
	$(PYTHON) -m venv $(MIN_VENV)
	$(MIN_VENV)/bin/pip install --quiet --upgrade pip
	$(if $(TORCH_INDEX),$(MIN_VENV)/bin/pip install --quiet -c constraints-min.txt torch --index-url $(TORCH_INDEX))
	$(MIN_VENV)/bin/pip install --quiet -c constraints-min.txt -e '.[test]'
	$(MIN_VENV)/bin/python -m pytest -q -p no:cacheprovider

# Speed and accuracy goals live here, not in unit tests: seqbench's timer vs torch.utils.benchmark.
bench: $(STAMP)
	$(BIN)/python benchmarks/timer_vs_torch.py

# How far `seqbench ab` can be trusted (README "Comparing runs in CI"): A/A repetitions, quiet and under a
# neighbour load, with a user's layer planted slower inside its plugin; then false alarms, detection rates
# and wall time (benchmarks/aa_collect.py, then aa_analyze.py). Resumable; hours of wall time: REPS=40 per condition is the
# full experiment, REPS=4 a quick look. Raw repetitions go to BENCH_CI_DIR, the figures to results/ci/.
REPS         ?= 40
BENCH_CI_DIR ?= bench-ci-data
bench-ci: $(STAMP)
	$(BIN)/python benchmarks/aa_collect.py collect --reps $(REPS) --runs 4 --rounds 3 --dir $(BENCH_CI_DIR)
	$(BIN)/python benchmarks/aa_analyze.py --dir $(BENCH_CI_DIR) --tune 4 --json results/ci/bench-ci.json \
		| tee results/ci/bench-ci.txt

# `seqbench ab --runs auto` end to end beside the neighbour (docs/ci.md "Real repetitions"): cycles of two A/A
# comparisons, a +10% and a +5% head with --runs auto, and one fixed --runs 4 for the wall time; ~1 h by default.
AUTO_MINUTES ?= 60
BENCH_AUTO_DIR ?= bench-ci-auto-data
bench-ci-auto: $(STAMP)
	$(BIN)/python benchmarks/ab_auto_reps.py --dir $(BENCH_AUTO_DIR) --minutes $(AUTO_MINUTES) --neighbour --with-fixed
	$(BIN)/python benchmarks/ab_auto_reps.py --dir $(BENCH_AUTO_DIR) --summary | tee results/ci/auto-reps.json

# The same questions for `--metric instructions` (docs/instructions.md): A/A false alarms one process at a time,
# beside a neighbour, and under other hash seeds; planted +1% and +0.5% of a layer's work; wall time of
# `seqbench ab --metric instructions` on benchmarks/configs/ci.toml. Needs Valgrind. One Valgrind process per
# run, ~145-285 s each on 2 cores: INSTR_PROCS=4 per condition is ~36 min in all. Raw runs go to BENCH_INSTR_DIR,
# the figures to results/ci/instructions.{txt,json} (raw runs of 2026-12-04: results/ci/instr-2026-12-04/).
INSTR_PROCS     ?= 4
BENCH_INSTR_DIR ?= bench-ci-instr-data
bench-ci-instructions: $(STAMP)
	for c in quiet load seeds; do \
	  $(BIN)/python benchmarks/instr_bench.py collect --dir $(BENCH_INSTR_DIR) --procs $(INSTR_PROCS) --condition $$c || exit 1; \
	done
	$(BIN)/python benchmarks/instr_bench.py ab --dir $(BENCH_INSTR_DIR)
	$(BIN)/python benchmarks/instr_bench.py analyze --dir $(BENCH_INSTR_DIR) --json results/ci/instructions.json \
		| tee results/ci/instructions.txt

# The README's example results: benchmarks/configs/examples.toml on this machine's CPU, then charts + report.
# Three rounds per point, spread over the run, so the report's intervals see slow phases (README).
# Refuses to overwrite an earlier results/cpu/ (delete it first to redo it).
examples: $(STAMP)
	$(BIN)/seqbench run benchmarks/configs/examples.toml --rounds 3 -o results/cpu/examples-cpu.csv
	$(BIN)/seqbench plot results/cpu/examples-cpu.csv --out-dir results/cpu/charts --image-format svg
	$(BIN)/seqbench report results/cpu/examples-cpu.csv -o results/cpu/report.md --image-format png

# The README's decode figures: benchmarks/configs/decode.toml one kernel per run (each under 10 minutes on one
# thread), appended to one CSV (the first run also measures the matmul peak), each point's samples in
# 3 rounds across its run (a slow phase of this shared machine then hits every point alike), then
# report and charts.
DECODE_CSV := results/cpu/decode/decode-cpu.csv
examples-decode: $(STAMP)
	$(BIN)/seqbench run benchmarks/configs/decode.toml --kernels rnn_fused --rounds 3 -o $(DECODE_CSV) -q
	for k in mingru_scan linear_attention sdpa; do \
	  $(BIN)/seqbench run benchmarks/configs/decode.toml --kernels $$k --rounds 3 --no-peak --append -o $(DECODE_CSV) -q \
	      || exit 1; \
	done
	$(BIN)/seqbench report $(DECODE_CSV) -o results/cpu/decode/report.md --image-format png

# % of the measured matmul peak per kernel (B=8, d=256, 4 heads, T=1024), and minGRU scan vs loop per T.
bench-peak: $(STAMP)
	$(BIN)/python benchmarks/beyond.py peak

bench-scan: $(STAMP)
	$(BIN)/python benchmarks/beyond.py scan

clean:
	rm -rf $(VENV) $(MIN_VENV) .pytest_cache build *.egg-info
