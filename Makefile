# hpsearch: `make serve` runs the service on SQLite with 2 local workers; `make test` runs the checks.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
DEV_STAMP := $(VENV)/.installed-dev
HOST ?= 127.0.0.1
PORT ?= 8000
WORKERS ?= 2
# Browser tests drive Debian's chromium through Playwright (never a downloaded browser).
CHROMIUM ?= /usr/bin/chromium
# Test processes (pytest-xdist, a test file per process): many tests wait on subprocesses,
# servers and browsers, so two processes fill CI's 2 cores (615 tests took 16 min in one
# process on CI; they need about 12 min of CPU in all).
TEST_PROCS ?= 2
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: serve test lint typecheck docs pytest install install-dev browser slurm pgbouncer bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

# torch is installed first, pinned, with pip: an unpinned resolve would pull CUDA wheels.
$(STAMP): $(BIN)/python pyproject.toml client/pyproject.toml
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e ./client
	$(BIN)/pip install --quiet -e .
	touch $@

$(DEV_STAMP): $(STAMP)
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

install: $(STAMP)
install-dev: $(DEV_STAMP)

$(CHROMIUM):
	DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y --no-install-recommends chromium \
	  || ($(SUDO) apt-get update && DEBIAN_FRONTEND=noninteractive \
	      $(SUDO) apt-get install -y --no-install-recommends chromium)

browser: $(CHROMIUM)

# The documented curl-only loop (docs/own-code.md) runs under bash, curl, jq and awk.
JQ ?= /usr/bin/jq
$(JQ):
	DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y --no-install-recommends jq \
	  || ($(SUDO) apt-get update && DEBIAN_FRONTEND=noninteractive \
	      $(SUDO) apt-get install -y --no-install-recommends jq)

# The Slurm tests (tests/service/test_slurm.py) start a real single-node Slurm from Debian's
# packages: munged, slurmctld and slurmd as root, never through systemd.
SLURMD ?= /usr/sbin/slurmd
$(SLURMD):
	DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y --no-install-recommends \
	  slurmctld slurmd slurm-client munge \
	  || ($(SUDO) apt-get update && DEBIAN_FRONTEND=noninteractive \
	      $(SUDO) apt-get install -y --no-install-recommends slurmctld slurmd slurm-client munge)

slurm: $(SLURMD)

# The PgBouncer tests (tests/pgbouncer.py) start Debian's pgbouncer in transaction pooling
# mode in front of the test server, as root with -u postgres, never through systemd.
PGBOUNCER ?= /usr/sbin/pgbouncer
$(PGBOUNCER):
	DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y --no-install-recommends pgbouncer \
	  || ($(SUDO) apt-get update && DEBIAN_FRONTEND=noninteractive \
	      $(SUDO) apt-get install -y --no-install-recommends pgbouncer)

pgbouncer: $(PGBOUNCER)

serve: $(STAMP)
	$(BIN)/hpsearch serve --host $(HOST) --port $(PORT) --workers $(WORKERS)

lint: $(DEV_STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(DEV_STAMP)
	$(BIN)/mypy

pytest: $(DEV_STAMP) browser $(JQ) slurm pgbouncer
	HPS_TEST_CHROMIUM=$(CHROMIUM) $(BIN)/pytest -q -n $(TEST_PROCS) --dist loadfile --no-loadscope-reorder

# The manual (docs/, mkdocs.yml) into site/; --strict: a broken link or a missing page fails.
docs: $(DEV_STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --site-dir site

test: lint typecheck docs pytest

BENCH_STAMP := $(VENV)/.installed-bench
$(BENCH_STAMP): $(DEV_STAMP)
	$(BIN)/pip install --quiet -e '.[dev,bench]'
	touch $@

# The benchmark suite; bench/report.py runs it and rewrites the Performance page
# (docs/performance.md). `make bench BENCH=trainer,reads` runs (and rewrites) only those
# subsections.
BENCH ?= trainer,overhead,scaling,batched,reads,load,remote,pruning,random_vs_grid,quality
bench: $(BENCH_STAMP)
	$(BIN)/python bench/report.py --only $(BENCH)

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache
