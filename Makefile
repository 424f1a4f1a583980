# exportsync — every target the README names.
# `make test` and `make demo` build .venv/ themselves on a fresh machine.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: help venv quick test lint typecheck cfn-lint pytest soak soak-pytest demo bench bench-pacing reliability fuzz fleet clean

help:
	@echo "make demo   run devstack + daemon on demo/export (Ctrl-C stops both)"
	@echo "make quick  the tests that start no process: the loop to run after each edit"
	@echo "make test   lint, type-check, cfn-lint and every test but the long runs (CI; a few minutes)"
	@echo "            (on pytest-xdist workers: QUICK_WORKERS=2 for make quick, WORKERS=4 for make"
	@echo "            test; 0 runs one test at a time)"
	@echo "make soak   the long runs: more chaos seeds, a 1,001-file backlog, make reliability, make fleet"
	@echo "make bench  throughput and memory benchmarks (bench/)"
	@echo "make bench-pacing  the pacing policy against the offline optimum (SPOOL=state dir to replay)"
	@echo "make reliability  never-stuck state machine; kill -9, faults, full disk, signals against real daemons"
	@echo "make fuzz   the Lambda fuzzed on every route, 5,000+ cases"
	@echo "make fleet  20 daemons with their own keys on one devstack (DAEMONS=20 FAULT_RATE=0.05)"
	@echo "make clean  remove .venv, demo state and caches"

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# The packages, then the tests and benchmarks (two runs: tests/lambda has its own conftest).
typecheck: $(STAMP)
	$(BIN)/mypy
	MYPYPATH=bench $(BIN)/mypy --explicit-package-bases \
		tests/conftest.py tests/test_tiers.py tests/test_packaging.py tests/support tests/daemon tests/devstack tests/e2e tests/soak tests/wire bench
	MYPYPATH=tests/lambda $(BIN)/mypy --explicit-package-bases tests/lambda

cfn-lint: $(STAMP)
	$(BIN)/cfn-lint lambda/template.yaml

# Tiers are markers tests/conftest.py sets by folder and by what a test starts (README "Development").
# Each selection is non-empty, so pytest never exits 5 (no tests ran) and fails CI by surprise.
#
# pytest-xdist workers. make test: most integration tests wait on subprocesses and sockets, so more
# workers than cores pays (two busy cores: 3 workers 306 s, 4 218 s, 5 228 s). A module stays on
# one worker (its fixtures, e.g. the systemd container, are built once) and the integration
# modules are handed out first, in file order. make quick: CPU-bound, one worker per core.
WORKERS ?= 4
QUICK_WORKERS ?= 2
quick: $(STAMP)
	$(BIN)/python -m pytest -m quick -q -n $(QUICK_WORKERS)

pytest: $(STAMP)
	$(BIN)/python -m pytest -m "not soak" -n $(WORKERS) --dist loadfile --no-loadscope-reorder

test: lint typecheck cfn-lint pytest

# The long proofs, each printing its figure last: tests/soak, then make reliability and make fleet.
soak-pytest: $(STAMP)
	$(BIN)/python -m pytest -m soak

soak: soak-pytest reliability fleet

demo: $(STAMP)
	$(BIN)/python -m exportsync_devstack.demo

# The Lambda fuzzed with hypothesis on every route (at least 5,000 cases); prints its tally last.
# `make test` runs the same tests with 60 cases each.
# Then whole requests: identities, headers, paths, methods, sequences, and a few hundred on moto;
# last the worst request of every route through the devstack, its peak memory and CPU time.
fuzz: $(STAMP)
	EXPORTSYNC_FUZZ_EXAMPLES=1100 EXPORTSYNC_FUZZ_REPORT=.fuzz-report \
		$(BIN)/python -m pytest tests/lambda/test_lambda_fuzz.py -q
	EXPORTSYNC_FUZZ=full EXPORTSYNC_FUZZ_REQUESTS_REPORT=.fuzz-cases \
		$(BIN)/python -m pytest tests/lambda/test_lambda_fuzz_requests.py -q
	EXPORTSYNC_BOUNDED_REPORT=.fuzz-bounded \
		$(BIN)/python -m pytest tests/e2e/test_bounded_work.py -q
	@echo "lambda fuzz, whole requests: $$(cat .fuzz-cases) cases, none 5xx or outside the prefix"
	@cat .fuzz-report
	@head -1 .fuzz-bounded

bench: $(STAMP)
	$(BIN)/python bench/run.py

# Only the pacing bench; its last line is the figure. SPOOL=~/.local/state/exportsync replays a
# real spool's history too.
SPOOL ?=
bench-pacing: $(STAMP)
	$(BIN)/python bench/run.py --only pacing $(if $(SPOOL),--spool $(SPOOL))

# N real daemons on one devstack, isolation and plan checks, the handler's throughput per core.
DAEMONS ?= 20
FAULT_RATE ?= 0.05
fleet: $(STAMP)
	timeout 900 $(BIN)/python -m exportsync_devstack.fleet --daemons $(DAEMONS) \
		--fault-rate $(FAULT_RATE)

# The never-stuck state machine (2,000 examples; `make test` runs 25), then a seeded torture run
# of real daemons (tests/support/reliability.py) whose last line is the figure.
# make reliability SEED=7 KILLS=40, or RELIABILITY_FLAGS="--seed 7 --operations 500".
SEED ?= 1
KILLS ?= 30
STUCK_EXAMPLES ?= 2000
RELIABILITY_FLAGS ?= --seed $(SEED) --kills $(KILLS)
reliability: $(STAMP)
	EXPORTSYNC_STUCK_EXAMPLES=$(STUCK_EXAMPLES) $(BIN)/python -m pytest -q -p no:cacheprovider --timeout 1800 \
		tests/daemon/test_never_stuck_property.py
	PYTHONPATH=tests timeout 900 $(BIN)/python -m support.reliability $(RELIABILITY_FLAGS)

clean:
	rm -rf $(VENV) demo .mypy_cache .ruff_cache .pytest_cache .hypothesis .fuzz-report .fuzz-cases .fuzz-bounded
