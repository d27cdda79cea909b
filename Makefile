# repro: set-up, tests and the reproductions. Every target installs what it needs.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
PROFILE ?= synthetic
DATA    ?=
RUNS    ?= runs

# TORCH_INDEX: where pip takes torch from. TORCH_INDEX=https://download.pytorch.org/whl/cpu takes the CPU build (a
# 190 MB wheel, 750 MB installed). Empty (the default): the CPU build 2.13.0+cpu if pip finds one (this project's
# machines hold it on local disk), else pip's choice, which on Linux x86_64 is the CUDA build (the wheel and its
# NVIDIA libraries: several GB).
TORCH_INDEX ?=

.PHONY: setup lint test test-min-torch reproduce-table5 bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml setup.py
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(if $(TORCH_INDEX),$(BIN)/pip install -q "torch>=2.3" --index-url $(TORCH_INDEX),\
		$(BIN)/pip install -q "torch==2.13.0+cpu" || $(BIN)/pip install -q "torch>=2.3")
	$(BIN)/pip install -q -e ".[test]"
	touch $(STAMP)

# ruff: lint and format check (configured in pyproject.toml); `ruff format .` fixes the formatting.
lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

test: setup lint
	$(BIN)/python -m pytest -n 2 -q

# The tests on the lowest torch the code supports (pyproject.toml: torch>=2.3, for torch.amp.GradScaler), in a venv
# of its own (.venv-min), with NumPy 1.26 (torch 2.3 was built against NumPy 1). Downloads torch 2.3 (the CPU build
# unless TORCH_INDEX says otherwise, about 200 MB) and the other dependencies; needs a Python that torch 2.3 has
# wheels for (3.11 or 3.12: PYTHON=python3.12).
MIN_VENV := .venv-min
test-min-torch:
	$(PYTHON) -m venv $(MIN_VENV)
	$(MIN_VENV)/bin/pip install -q --upgrade pip
	$(MIN_VENV)/bin/pip install -q "torch==2.3.*" --index-url $(or $(TORCH_INDEX),https://download.pytorch.org/whl/cpu)
	$(MIN_VENV)/bin/pip install -q -e ".[test]" "torch==2.3.*" "numpy==1.26.*"
	$(MIN_VENV)/bin/python -c "import torch; assert torch.__version__.startswith('2.3.'), torch.__version__"
	$(MIN_VENV)/bin/python -m pytest -n 2 -q

# Table 5 of the reproduction study. Default: the synthetic stand-ins on this machine's CPU.
# Real data on a GPU: make reproduce-table5 DATA=/path/to/datasets PROFILE=paper
reproduce-table5: setup
	$(BIN)/repro sweep ablations/table5.toml --seeds 1 --profile $(PROFILE) $(if $(DATA),--data $(DATA)) --runs $(RUNS) --out reports/table5

bench: setup
	$(BIN)/repro bench --task pred --size 256 --width 64 --batch 4 --precision fp32 --device cpu
	$(BIN)/repro bench --task pred --size 64 --width 64 --batch 4 --precision fp32 --device cpu

clean:
	rm -rf $(VENV) $(MIN_VENV) .pytest_cache

# MNAD (pred, recon), MemAE, its memory-less AE and the ConvLSTM autoencoder on the same data (docs/baselines.md).
.PHONY: reproduce-baselines
reproduce-baselines: setup
	$(BIN)/repro sweep ablations/baselines.toml --seeds 3 --profile $(PROFILE) $(if $(DATA),--data $(DATA)) --runs $(RUNS) --out reports/baselines

# RUNS: the run store (finished runs are reused; RUNS=/tmp/fresh times a target from scratch).
# Reports (docs/reports.md): each target trains what is missing via the run store, then `repro report` adds the
# figures and index, reading the runs from the sweep's manifest.json. QUICK shortens training to 4 epochs (QUICK= for
# the profile's); the time of each target, measured on 2 CPU cores, is in docs/reports.md.
QUICK ?= --set train.epochs=4 --set train.checkpoint_every=2
SWEEP  = $(BIN)/repro sweep --seeds 1 --profile $(PROFILE) $(if $(DATA),--data $(DATA)) --runs $(RUNS) $(QUICK)
REPORT = $(BIN)/repro report

.PHONY: reproduce-ablations reproduce-memory reproduce-collapse reproduce-denoising reproduce-figures reproduce-all

reproduce-ablations: setup
	$(SWEEP) ablations/table6.toml --out reports/table6
	$(REPORT) reports/table6
	$(SWEEP) ablations/table7.toml --out reports/table7
	$(REPORT) reports/table7

# The memory studies (docs/memory.md) run at 128x128 on `cameras`: 3 seeds, 4 epochs, one checkpoint at the end.
MEMORY_SETS  = --set train.epochs=4 --set train.checkpoint_every=4
MEMORY_STUDY = --profile $(PROFILE) $(if $(DATA),--data $(DATA)) --runs $(RUNS) --seeds 3 $(MEMORY_SETS)

reproduce-memory: setup
	$(BIN)/repro sweep ablations/table8.toml $(MEMORY_STUDY) --out reports/table8
	$(REPORT) reports/table8
	$(SWEEP) ablations/table9.toml --out reports/table9
	$(REPORT) reports/table9

# The collapse remedies on `cameras` (ablations/collapse.toml); shares its "no remedy" and "study recipe" runs
# with reproduce-memory. The sweep writes reports/collapse/ (collapse.md checks the study's fixed criteria, and
# usage_over_epochs.png); `repro report reports/collapse` adds index.html with each
# run's histograms and t-SNE maps (about 6 more minutes on 2 cores).
reproduce-collapse: setup
	$(BIN)/repro sweep ablations/collapse.toml $(MEMORY_STUDY) --out reports/collapse

reproduce-denoising: setup
	$(SWEEP) ablations/denoising.toml --out reports/denoising
	$(REPORT) reports/denoising

reproduce-figures: setup
	$(SWEEP) ablations/figures.toml --out reports/figures
	$(REPORT) reports/figures

reproduce-all: reproduce-ablations reproduce-memory reproduce-skip-probe reproduce-denoising reproduce-figures

.PHONY: reproduce-skip-probe
reproduce-skip-probe: setup
	$(BIN)/repro sweep --seeds 1 --profile $(PROFILE) $(if $(DATA),--data $(DATA)) $(QUICK) ablations/skipprobe.toml --runs $(RUNS)/skip-probe --out reports/skip-probe
	$(BIN)/repro probe $(RUNS)/skip-probe --out reports/skip-probe

# The papers' and the study's claims (ablations/claims.toml), each over the seeds of the file's plan (3, then 5
# for the claims not yet decided): trains what the run store lacks (sharing the runs of the targets above), then
# writes reports/claims/ (claims.md, claims.csv, index.html). replicate-claims runs the same plan on seeds + 1000
# and writes reports/claims-replication/ (replication.md: the agreement between the two seed sets first).
.PHONY: reproduce-claims replicate-claims
reproduce-claims: setup
	$(BIN)/repro claims ablations/claims.toml --profile $(PROFILE) $(if $(DATA),--data $(DATA)) --runs $(RUNS) $(QUICK) --out reports/claims

replicate-claims: setup
	$(BIN)/repro claims ablations/claims.toml --replicate --profile $(PROFILE) $(if $(DATA),--data $(DATA)) --runs $(RUNS) $(QUICK) --out reports/claims-replication

# The figures README.md and docs/ show (docs/figures/), copied from the reports of the targets that make them
# (scripts/docs_figures.py finds each run by its table row and seed).
.PHONY: docs-figures
docs-figures: reproduce-figures reproduce-memory reproduce-collapse
	$(BIN)/python scripts/docs_figures.py --profile $(PROFILE) $(if $(DATA),--data $(DATA)) --quick "$(QUICK)" \
		--memory "$(MEMORY_SETS)"
