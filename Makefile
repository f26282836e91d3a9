# Herald's command list. A fresh machine needs only `make run` and `make test`;
# every other target is a step they call, or a tool for working on Herald.

SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

VENV       := .venv
PYTHON     := $(VENV)/bin/python
UV         := $(VENV)/bin/uv
HERALD     := $(VENV)/bin/herald
BIN        := $(CURDIR)/.bin
KAFKA_LIBS := $(CURDIR)/.cache/kafka-libs

# Pinned tool versions. uv's pin is repeated in pyproject.toml's dev group.
UV_VERSION      := 0.13.8
GRPCURL_VERSION := v1.9.3
GHZ_VERSION     := v0.121.0

PROTO_FILES    := $(shell find protos -name '*.proto' | sort)
SERVICE_PROTOS := protos/herald/users/v1/users.proto protos/herald/auth/v1/auth.proto

export UV_PYTHON_DOWNLOADS := never
export UV_PROJECT_ENVIRONMENT := $(VENV)

.PHONY: help install kafka-jars tools protos check-protos lint format test test-unit \
        test-integration test-e2e test-reliability bench bench-smoke run run-cluster kafka-start kafka-stop clean docs

help: ## List the targets.
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F ':.*## ' '{printf "  %-18s %s\n", $$1, $$2}'

## --- set-up: each step runs once, then again only when its inputs change ---

$(VENV)/.installed: pyproject.toml uv.lock
	[ -x $(PYTHON) ] || python3 -m venv $(VENV)
	[ -x $(UV) ] || $(VENV)/bin/pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)
	$(UV) sync --frozen --quiet
	touch $@

$(KAFKA_LIBS)/.installed: kafka/pom.xml
	# A fresh folder, so jars of an older pinned version never mix in.
	rm -rf $(KAFKA_LIBS)
	mvn -B -q -f kafka/pom.xml dependency:copy-dependencies \
	    -DincludeScope=runtime -DoutputDirectory=$(KAFKA_LIBS)
	touch $@

$(BIN)/grpcurl:
	GOBIN=$(BIN) go install github.com/fullstorydev/grpcurl/cmd/grpcurl@$(GRPCURL_VERSION)

$(BIN)/ghz:
	GOBIN=$(BIN) go install github.com/bojand/ghz/cmd/ghz@$(GHZ_VERSION)

install: $(VENV)/.installed ## Create .venv with the pinned Python dependencies.
kafka-jars: $(KAFKA_LIBS)/.installed ## Fetch the pinned Apache Kafka jars from Maven Central.
tools: $(BIN)/grpcurl $(BIN)/ghz ## Install grpcurl and ghz (the gRPC load generator) into .bin.

## --- the contract ---

# One generator for both targets: $(call generate,OUT) writes herald/'s generated files under OUT.
define generate
	mkdir -p $(1)
	PATH="$(VENV)/bin:$$PATH" $(PYTHON) -m grpc_tools.protoc -I protos --python_out=$(1) --mypy_out=$(1) \
	    --include_source_info --include_imports --descriptor_set_out=$(1)/herald/descriptors.binpb \
	    $(PROTO_FILES) 2> >(grep -v '^Writing mypy to' >&2)
	PATH="$(VENV)/bin:$$PATH" $(PYTHON) -m grpc_tools.protoc -I protos \
	    --grpc_python_out=$(1) --mypy_grpc_out=$(1) $(SERVICE_PROTOS) 2> >(grep -v '^Writing mypy to' >&2)
endef

protos: install ## Regenerate herald/'s Python code and descriptor set, and docs/asyncapi.json.
	find herald -name '*_pb2*.py*' -delete
	rm -f herald/descriptors.binpb
	$(call generate,.)
	$(PYTHON) -m herald.tools.asyncapi protos/herald/users/v1/events.proto > docs/asyncapi.json

check-protos: install ## Fail when herald/'s generated code does not match protos/.
	rm -rf .cache/protos-check
	$(call generate,.cache/protos-check)
	$(PYTHON) -m herald.tools.asyncapi protos/herald/users/v1/events.proto > .cache/protos-check/asyncapi.json
	stale=$$(diff -rq -x __pycache__ .cache/protos-check/herald herald | grep -E '_pb2|\.binpb' || true); \
	cmp -s .cache/protos-check/asyncapi.json docs/asyncapi.json || stale="$$stale docs/asyncapi.json"; \
	if [ -n "$$stale" ]; then echo "$$stale"; echo "stale generated files: run 'make protos'"; exit 1; fi

docs: install ## Write README's configuration table from the services' Settings classes.
	$(PYTHON) -m herald.tools.settings_table README.md

## --- quality ---

lint: install ## ruff, mypy (strict), buf lint, and the contract gate (buf breaking).
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	cd protos && ../$(VENV)/bin/buf lint
	BUF=$(CURDIR)/$(VENV)/bin/buf scripts/proto-breaking

format: install ## Apply ruff's fixes and formatting.
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

test: install kafka-jars tools lint check-protos ## Lint, every test tier against a real Kafka the run starts, and the bench in smoke mode.
	KAFKA_LIBS=$(KAFKA_LIBS) PATH="$(BIN):$$PATH" $(VENV)/bin/pytest
	$(MAKE) --no-print-directory bench-smoke

test-unit: install ## Unit tests only (no broker).
	$(VENV)/bin/pytest tests/unit

test-integration: install kafka-jars ## Integration tests against a real broker.
	KAFKA_LIBS=$(KAFKA_LIBS) $(VENV)/bin/pytest tests/integration

test-e2e: install kafka-jars tools ## End-to-end tests: both services as processes.
	KAFKA_LIBS=$(KAFKA_LIBS) PATH="$(BIN):$$PATH" $(VENV)/bin/pytest tests/e2e

test-reliability: install kafka-jars ## Fault scenarios with a whole-history check; writes reliability/results/.
	KAFKA_LIBS=$(KAFKA_LIBS) $(VENV)/bin/pytest tests/reliability -o timeout=600

## --- running it ---

run: install kafka-jars tools ## Start a local broker and both services; Ctrl-C stops all.
	KAFKA_LIBS=$(KAFKA_LIBS) GRPCURL=$(BIN)/grpcurl $(HERALD) up

run-secure: install kafka-jars tools ## Like `make run`, everything on: gRPC mTLS + tokens, Kafka SASL_SSL + ACLs (files in .run/secure/).
	KAFKA_LIBS=$(KAFKA_LIBS) GRPCURL=$(BIN)/grpcurl HERALD=$(HERALD) HERALD_RUN_DIR=.run/secure-stack $(HERALD) up --secure

run-cluster: install kafka-jars tools ## Like `make run`, on a local 3-broker cluster (RF 3, min.insync.replicas 2).
	KAFKA_LIBS=$(KAFKA_LIBS) GRPCURL=$(BIN)/grpcurl HERALD_RUN_DIR=.run/cluster $(HERALD) up --nodes 3

kafka-start: install kafka-jars ## Start the local broker in the background (see `herald kafka --help`).
	KAFKA_LIBS=$(KAFKA_LIBS) $(HERALD) kafka start

kafka-stop: install ## Stop the local broker.
	$(HERALD) kafka stop

clean: ## Remove the run folder and caches (keeps .venv, jars and tools).
	rm -rf .run .pytest_cache .mypy_cache .ruff_cache

bench: install kafka-jars tools ## Herald vs the bare libraries, side by side (~10 min); writes bench/results/.
	KAFKA_LIBS=$(KAFKA_LIBS) $(PYTHON) -m bench.run

bench-smoke: install kafka-jars tools ## Every bench phase with tiny sizes (~1 min): checks the bench still runs.
	KAFKA_LIBS=$(KAFKA_LIBS) $(PYTHON) -m bench.run --smoke --results .cache/bench-smoke
