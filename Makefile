# Autograder for the CNN course. `make help` lists the targets.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
SHARED_DATA := $(abspath ../shared/datasets)
export GRADER_DATA_DIR ?= $(if $(wildcard $(SHARED_DATA)/mnist.npz),$(SHARED_DATA),)

ASSIGNMENT ?= cnn_layers
SUBMISSIONS ?=
REPORTS ?= reports/$(ASSIGNMENT)
JOBS ?=
SHARD ?=
ARGS ?=
COUNT ?= 26
RUNS ?= 5
GRADER_REPO ?=
GRADER_REF ?= main

# A misspelled variable must not silently do something else (`make grade SUBMISSION=x` would grade the samples):
# any variable given on the command line that no target reads is an error.
KNOWN_VARIABLES := PYTHON VENV ASSIGNMENT SUBMISSIONS REPORTS JOBS SHARD ARGS COUNT RUNS GRADER_REPO GRADER_REF \
	GRADER_DATA_DIR
UNKNOWN_VARIABLES := $(filter-out $(KNOWN_VARIABLES),$(foreach v,$(.VARIABLES),$(if $(filter command line,$(origin $(v))),$(v))))
ifneq ($(UNKNOWN_VARIABLES),)
$(error unknown variable $(UNKNOWN_VARIABLES); the Makefile reads: $(KNOWN_VARIABLES) (see make help))
endif

.PHONY: help install lint test grade samples assignments lock bench solution-weights calibrate

help:
	@echo "make install                 create $(VENV) with the pinned packages"
	@echo "make lint                    ruff (lint, import order) and mypy (types) on the grader"
	@echo "make test                    run the grader's own test suite"
	@echo "make grade ASSIGNMENT=cnn_layers SUBMISSIONS=dir REPORTS=dir [JOBS=n]"
	@echo "                             grade a folder of submissions (no SUBMISSIONS: the bundled samples)"
	@echo "make assignments             regenerate assignments/ (starter notebooks) from solutions/"
	@echo "make gradescope ASSIGNMENT=x build build/gradescope/x/autograder.zip for Gradescope"
	@echo "make classroom-template ASSIGNMENT=x [GRADER_REPO=owner/name GRADER_REF=main]"
	@echo "                             write the GitHub Classroom template repository to build/classroom/x"
	@echo "make grade ... SHARD=i/N     grade a deterministic 1/N of the submissions"
	@echo "make calibrate ASSIGNMENT=x  grade the solution and propose thresholds with a margin"
	@echo "make solution-weights [ASSIGNMENT=keras_models]  retrain the committed solution weights"
	@echo "                             (keras_models ~13 min, cnn_architectures ~5 min)"
	@echo "make bench [COUNT=26 RUNS=5] one-notebook latency (whole process) and a batch at JOBS=1 and 2; bench.json"

install: $(VENV)/.installed

$(VENV)/.installed: requirements.lock pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -r requirements.lock
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $@

lint: install
	$(VENV)/bin/ruff check grader tests solutions
	$(VENV)/bin/mypy

test: install
	$(PY) -m pytest -q $(ARGS)

samples: install
	$(PY) -m grader samples $(ASSIGNMENT) build/samples/$(ASSIGNMENT)

GRADE_FLAGS = --reports $(REPORTS) $(if $(JOBS),--jobs $(JOBS)) $(if $(SHARD),--shard $(SHARD)) $(ARGS)

grade: install
ifeq ($(SUBMISSIONS),)
	@echo "no SUBMISSIONS=dir given: grading the bundled sample submissions of $(ASSIGNMENT)"
	$(PY) -m grader samples $(ASSIGNMENT) build/samples/$(ASSIGNMENT)
	$(PY) -m grader grade $(ASSIGNMENT) build/samples/$(ASSIGNMENT) $(GRADE_FLAGS)
else
	$(PY) -m grader grade $(ASSIGNMENT) $(SUBMISSIONS) $(GRADE_FLAGS)
endif

calibrate: install
	$(PY) -m grader calibrate $(ASSIGNMENT) $(ARGS)

solution-weights: install
	$(PY) -m grader solution-weights $(if $(filter cnn_layers,$(ASSIGNMENT)),keras_models,$(ASSIGNMENT)) $(if $(GRADER_DATA_DIR),--data-dir $(GRADER_DATA_DIR))

bench: install
	$(PY) -m grader bench --count $(COUNT) --runs $(RUNS) $(ARGS)

assignments: install
	$(PY) -m grader generate

lock:
	rm -rf /tmp/grader-lock-venv && $(PYTHON) -m venv /tmp/grader-lock-venv
	/tmp/grader-lock-venv/bin/pip install --quiet -e .
	/tmp/grader-lock-venv/bin/pip freeze --exclude-editable > requirements.lock.new
	@echo "review requirements.lock.new, restore the platform markers, and move it over requirements.lock"

.PHONY: gradescope classroom-template

gradescope: install
	$(PY) -m grader gradescope build $(ASSIGNMENT) --out build/gradescope/$(notdir $(abspath $(ASSIGNMENT)))/autograder.zip

classroom-template: install
	$(PY) -m grader classroom template $(ASSIGNMENT) --out build/classroom/$(notdir $(abspath $(ASSIGNMENT))) $(if $(GRADER_REPO),--grader-repo $(GRADER_REPO)) --grader-ref $(GRADER_REF)
