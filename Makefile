# Two commands set everything up on a fresh machine: `make demo` and `make test`.
# Both create .venv (python3 -m venv) when it is missing and install the package into it, editable,
# with its pinned dependencies; later calls reuse it (reinstalling only when pyproject.toml changes).

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
DEMO_DIR ?= multirun/demo/$(shell date +%Y-%m-%d_%H-%M-%S)

METHODS_DIR ?= multirun/methods_demo/$(shell date +%Y-%m-%d_%H-%M-%S)
FIGURES_DIR ?= multirun/figures_demo/$(shell date +%Y-%m-%d_%H-%M-%S)
FIGURES_OUT ?= reports/figures/demo

.PHONY: install test demo methods-demo figures-demo bench gpu-check clean help

help:
	@echo "make demo   - train ERM, mixup and CutMix on the bundled digits (3 seeds) and print the table"
	@echo "make test   - run the test suite"
	@echo "make methods-demo - every method of the papers on the digits (SEM, ES, LaMix, PuzzleMix, LS, rescaling)"
	@echo "make figures-demo - train on the digits, then draw every figure kind into $(FIGURES_OUT) (PNG, PDF, CSV)"
	@echo "make bench [QUICK=1] - speed of the data pipeline, the step, each method, host-bound costs (bench.json)"
	@echo "make gpu-check [DRY=1] - every method, throughput, DDP, PuzzleMix on the GPUs in < 8 min (gpu_check.json, .md)"
	@echo "make reproduce-<paper>-<table> [SMOKE=1] [LOGGER=wandb] - a paper table's sweep, then reports/<paper>-<table>.md"
	@echo "     targets: $$($(BIN)/python -c 'from mixexp.reproduce import TARGETS; print(" ".join(TARGETS))' 2>/dev/null) all"
	@echo "make install - create $(VENV) and install mixexp into it"

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP)

test: $(STAMP)
	$(BIN)/python -m pytest -q

demo: $(STAMP)
	$(BIN)/mixexp-train -m experiment=demo hydra.sweep.dir=$(DEMO_DIR)
	$(BIN)/mixexp-report $(DEMO_DIR)

methods-demo: $(STAMP)
	$(BIN)/mixexp-train -m experiment=methods_demo hydra.sweep.dir=$(METHODS_DIR)
	$(BIN)/mixexp-report $(METHODS_DIR) --metrics test_acc,test_nll,test_ece,rescaled_test_acc,rescaled_test_nll,rescaled_test_ece

figures-demo: $(STAMP)
	scripts/figures_demo.sh $(BIN) $(FIGURES_DIR) $(FIGURES_OUT)

# QUICK=1: every part at a tiny size (seconds on a CPU; CI runs it)
bench: $(STAMP)
	$(BIN)/python scripts/bench.py $(if $(filter 1,$(QUICK)),--quick) $(BENCH_ARGS)

# DRY=1: the same code on the CPU at tiny sizes (under a minute; CI runs it)
gpu-check: $(STAMP)
	$(BIN)/python scripts/gpu_check.py $(if $(filter 1,$(DRY)),--dry) $(GPU_CHECK_ARGS)

# Paper tables: make reproduce-sem-table1, ..., make reproduce-all. SMOKE=1: the same grids with a tiny
# budget on fixture data (minutes on a CPU). LOGGER=wandb: runs and reports go to W&B too.
reproduce-%: $(STAMP)
	$(BIN)/mixexp-reproduce $* $(if $(filter 1,$(SMOKE)),--smoke) $(if $(LOGGER),--logger $(LOGGER)) $(ARGS)

clean:
	rm -rf outputs multirun .pytest_cache
