# dualens — every user-facing target bootstraps .venv first (torch CPU pin, then the project).
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
TORCH_SPEC ?= torch==2.13.0
DATA ?=
PORT ?= 8501
DIR ?=
DATA_OPT := $(if $(DATA),--data $(DATA),)
PYTEST_ARGS ?=

.PHONY: install model index check errors rebuild-index search ui test test-fast lint bench bench-index bench-search bench-quality bench-scale bench-search-scale bench-relevance bench-bands bench-cold bench-ui bench-memory bench-understanding bench-similar bench-ocr bench-gpu bench-ui-weight ui-assets bench-multilingual eval train train-default clean help

help:
	@echo "make index DIR=photos/   index a folder of photos into data/"
	@echo "make ui [PORT=8501]      open the web UI"
	@echo "make search Q='a dog'    search from the terminal"
	@echo "make test | lint | bench (bench-index, bench-search, bench-quality, bench-similar) | model | eval | train"
	@echo "make train-default [VISION=efficientnet-lite0]   retrain the default model's shipped head"

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check --upgrade pip
	$(BIN)/python -m pip install -q --disable-pip-version-check $(TORCH_SPEC)
	$(BIN)/python -m pip install -q --disable-pip-version-check -e '.[dev,postgres,ray]'
	@touch $(STAMP)

install: $(STAMP)

model: $(STAMP)
	$(BIN)/dualens build-default-model

index: $(STAMP)
	@if [ -z "$(DIR)" ]; then echo "usage: make index DIR=path/to/photos" >&2; exit 2; fi
	$(BIN)/dualens index $(DATA_OPT) $(DIR)

check: $(STAMP)
	$(BIN)/dualens check $(DATA_OPT)

errors: $(STAMP)
	$(BIN)/dualens errors $(DATA_OPT)

rebuild-index: $(STAMP)
	$(BIN)/dualens rebuild-index $(DATA_OPT)

search: $(STAMP)
	$(BIN)/dualens search $(DATA_OPT) "$(Q)"

ui: $(STAMP)
	$(BIN)/dualens ui $(DATA_OPT) --port $(PORT)

# the browser tests keep their screenshots (desktop and phone: query, viewer, empty state, filters) here
SCREENSHOTS ?= $(CURDIR)/build/ui-screenshots

test: $(STAMP)
	DUALENS_UI_SCREENSHOTS=$(SCREENSHOTS) $(BIN)/python -m pytest --durations=40 $(PYTEST_ARGS)

test-fast: $(STAMP)
	$(BIN)/python -m pytest -m "not slow" $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check indexer search ui tests
	$(BIN)/ruff format --check indexer search ui tests
	$(BIN)/mypy

bench: bench-index bench-search bench-quality

bench-index: $(STAMP)
	$(BIN)/python -m tests.bench.bench_index
	$(BIN)/python -m tests.bench.bench_backends index

bench-search: $(STAMP)
	$(BIN)/python -m tests.bench.bench_search
	$(BIN)/python -m tests.bench.bench_backends search
	$(BIN)/python -m tests.bench.bench_cold

# new-process `dualens search|similar|check|--help` against the bare import of their libraries
bench-cold: $(STAMP)
	$(BIN)/python -m tests.bench.bench_cold $(ARGS)

# `dualens ui` on 200 shared photos: seconds to a usable search box and to the first results, in chromium
bench-ui: $(STAMP)
	$(BIN)/python -m tests.bench.bench_ui_start $(ARGS)

# peak RSS of `dualens index` at two collection sizes (flat?) and of each `dualens serve` worker
bench-memory: $(STAMP)
	$(BIN)/python -m tests.bench.bench_memory $(ARGS)

N ?= 1000000
bench-relevance: $(STAMP)
	$(BIN)/python -m tests.bench.bench_relevance

bench-bands: $(STAMP)
	$(BIN)/python -m tests.bench.bench_bands $(if $(SELECT),--select)

bench-similar: $(STAMP)
	$(BIN)/python -m tests.bench.bench_similar $(ARGS)

bench-search-scale: $(STAMP)
	$(BIN)/python -m tests.bench.bench_search_scale $(N)

bench-scale: $(STAMP)
	$(BIN)/python -m tests.bench.bench_scale

bench-gpu: $(STAMP)
	$(BIN)/python -m tests.bench.bench_gpu

# dualens-default-v5 (multilingual) vs v4.2: German/English recall, zero-shot, query speed
bench-multilingual: $(STAMP)
	$(BIN)/python -m tests.bench.bench_multilingual

bench-quality: $(STAMP)
	$(BIN)/python -m tests.bench.bench_quality $(ARGS)

bench-ocr: $(STAMP)  # text in photos: engine word recall, word-query precision, fusion R@10, OCR throughput
	$(BIN)/python -m tests.bench.bench_ocr

ui-assets:  # rebuild ui/frontend/dist (the grid component) with npm; the built files are committed
	cd ui/frontend && npm ci --no-audit --no-fund && npm run build

bench-ui-weight: $(STAMP)  # bytes of the first page, grid thumbnails sized to the slot vs one size
	$(BIN)/python -m tests.bench.bench_ui_weight
	$(BIN)/python -m tests.bench.bench_ui_grid

bench-understanding: $(STAMP)  # the query-understanding table: share parsed as intended, traps filtered
	$(BIN)/python -m tests.bench.bench_understanding $(ARGS)

eval: $(STAMP)
	$(BIN)/dualens eval $(DATA_OPT) --images ../shared/datasets/flickr8k-1k/images --captions ../shared/datasets/flickr8k-1k/captions.csv
	$(BIN)/dualens eval $(DATA_OPT) --images ../shared/datasets/imagenet-sample --labels-from-filenames

# LiT-train the current default on the training set (never on flickr8k-1k: that one is for reporting)
train: $(STAMP)
	$(BIN)/dualens train --images $(TRAIN_SET)/images --captions $(TRAIN_SET)/captions.csv --out data/models/lit-flickr

# Default model v4: LiT-train the head of a feature-carrying default base on flickr8k-train (the
# recipe chosen on its own validation split: docs/quality.md) and ship the head in the package.
# VISION=efficientnet-lite0 trains the fast variant's own head.
TRAIN_SET ?= ../shared/datasets/flickr8k-train
VISION ?= efficientnet-lite2
TRAIN_RECIPE ?= --keep-zero-shot --feature-scale 0.1 --batch-size 256 --unlock-text-layers 4 --wise-ft 0.5
train-default: $(STAMP)
	$(BIN)/dualens build-default-model --vision $(VISION) --features --head '' --out data/models/default-v4-base-$(VISION)
	$(BIN)/dualens train --base data/models/default-v4-base-$(VISION) --images $(TRAIN_SET)/images \
		--captions $(TRAIN_SET)/captions.csv --out data/models/default-v4-trained-$(VISION) $(TRAIN_RECIPE)
	$(BIN)/dualens export-default-head data/models/default-v4-trained-$(VISION)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache *.egg-info
