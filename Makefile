# Needs only python3 and make: uv is bootstrapped into .cache/, the rest comes from uv.lock.
UV_VERSION := 0.13.8
BOOT := .cache/uv-bootstrap
UV := $(BOOT)/bin/uv
PY := .venv/bin/python
export EEGBENCH_CACHE ?= $(CURDIR)/.cache
export UV_PYTHON_DOWNLOADS := never

.PHONY: setup run test test-fast check bench leaderboards

$(UV):
	python3 -m venv $(BOOT)
	$(BOOT)/bin/pip install --quiet uv==$(UV_VERSION)

setup: $(UV)  ## create .venv exactly as locked
	$(UV) sync --frozen --python python3

run: setup  ## the main job on the embedded default (synthetic world)
	.venv/bin/eegbench run --suite dreamdiffusion

test: setup  ## the test suite: both tiers
	$(PY) -m pytest

test-fast: setup  ## the fast tier: unit and mechanics tests (everything not marked slow)
	$(PY) -m pytest -m "not slow"

check: setup  ## regression check: every suite at ci scale against leaderboards/*.ci.reference.json
	.venv/bin/eegbench check --suite all --scale ci $(CHECK_ARGS)

SUITES := smoke dreamdiffusion eegclip multitask thought2text
SEEDS ?= 0-2
BOARD_RUNS ?= runs/leaderboards
leaderboards: setup  ## every suite x variant x seed at ci, then leaderboards/<suite>.* and the README's tables
	for suite in $(SUITES); do \
	  .venv/bin/eegbench run --suite $$suite --scale ci --variant all --seeds $(SEEDS) --out $(BOARD_RUNS) --no-wandb \
	    || exit 1; done
	.venv/bin/eegbench leaderboard --out $(BOARD_RUNS) --dest leaderboards
	$(PY) scripts/readme_tables.py --out $(BOARD_RUNS)

bench: setup  ## print the speed and size figures the issues ask for
	$(PY) scripts/bench_foundation.py
	$(PY) scripts/bench_dreamdiffusion.py --scale ci
	$(PY) scripts/bench_eegclip.py --scale ci
	$(PY) scripts/bench_multitask.py --scale ci
	$(PY) scripts/bench_memory.py
	$(PY) scripts/bench_loop.py
