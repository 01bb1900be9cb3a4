# The two commands of the README. Both create .venv (scripts/setup.sh) when needed.
# The stages of dvc.yaml call `python` and `priorgrad`: the venv goes first on PATH.
SHELL := /bin/bash
export PATH := $(CURDIR)/.venv/bin:$(PATH)

.PHONY: setup repro test test-dryrun lint bench

setup:
	bash scripts/setup.sh

repro: setup          ## install, then run the main job (dvc repro) on the embedded default corpus
	dvc repro

test: setup           ## install, then run the whole test suite
	python -m pytest

test-dryrun: setup   ## the GPU profile's paper sizes through every stage on CPU, two steps per trial (3-5 min)
	python -m pytest -m dryrun tests/test_gpu_profile_dryrun.py

lint: setup           ## ruff (pyflakes + pycodestyle) over the whole tree
	ruff check .

bench: setup          ## performance benchmarks -> benchmarks/results/*.json
	python benchmarks/bench_core.py --out benchmarks/results/core_cpu.json
