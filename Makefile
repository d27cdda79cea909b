# repro: set-up, tests and the reproductions. Every target installs what it needs.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
PROFILE ?= synthetic
DATA    ?=

.PHONY: setup test reproduce-table5 bench clean

setup: $(STAMP)

# torch==2.13.0 is first so pip takes the CPU build from local disk instead of a multi-GB CUDA build.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q "torch==2.13.0" || $(BIN)/pip install -q "torch>=2.2"
	$(BIN)/pip install -q -e ".[test]"
	touch $(STAMP)

test: setup
	$(BIN)/python -m pytest -n 2 -q

# Table 5 of the reproduction study. Default: the synthetic stand-ins on this machine's CPU.
# Real data on a GPU: make reproduce-table5 DATA=/path/to/datasets PROFILE=paper
reproduce-table5: setup
	$(BIN)/repro sweep ablations/table5.toml --profile $(PROFILE) $(if $(DATA),--data $(DATA)) --out reports/table5

bench: setup
	$(BIN)/repro bench --task pred --size 256 --width 64 --batch 4 --precision fp32
	$(BIN)/repro bench --task pred --size 64 --width 64 --batch 4 --precision fp32

clean:
	rm -rf $(VENV) .pytest_cache
