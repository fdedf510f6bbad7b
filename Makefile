# Every target installs what it needs first (hack/bootstrap.sh is idempotent and fast when warm).
SHELL := /bin/bash
PY := .venv/bin/python
export PYTHONDONTWRITEBYTECODE := 1

.PHONY: venv tools demo demo-down render test lint unit bench test-model cluster cluster-down images

venv:
	@bash hack/bootstrap.sh

## demo: the main job on the embedded default (see README)
demo: venv
	@bash hack/demo.sh

demo-down:
	@if [ -f .cluster/operator.pid ]; then kill "$$(cat .cluster/operator.pid)" 2>/dev/null || true; rm -f .cluster/operator.pid; fi
	@bash hack/cluster.sh down

## render: every object the operator would create for the examples, no cluster needed
render: venv
	@$(PY) -m emotivoice_operator.main render examples/

## test: the whole suite, as CI runs it (.ci/run calls this); the fault suite is apart (test-faults)
test: venv lint tools node-tools
	@$(PY) -m pytest tests -m "not faults"

## test-faults: the fault suite (tests/faults/ on the simulated nodes, tests/e2e/test_faults_node.py
## on the real node): the control plane and the node's processes restarted, the operator cut off;
## figures per fault (about 15 minutes); FAULTS_REPORT=path.jsonl keeps them as JSON lines
.PHONY: test-faults
test-faults: venv lint tools node-tools
	@EVS_FAULTS_REPORT=$(or $(FAULTS_REPORT),/dev/null) $(PY) -m pytest tests -m faults -s

## tools: the Go-built binaries the tests use (cached in ~/.cache/emotivoice-operator; progress on first build)
tools:
	@bash hack/system-deps.sh
	@bash hack/build-binaries.sh cluster helm versitygw prometheus promtool >/dev/null

## node-tools: where the real node can run (root on Linux): its Debian packages, its binaries
## and our images (first time: minutes, with progress; cached by content hash, then seconds)
.PHONY: node-tools
node-tools:
	@bash hack/node-deps.sh
	@if why=$$(bash hack/node.sh check 2>&1); then \
	  bash hack/build-binaries.sh node >/dev/null && bash hack/images.sh >/dev/null; \
	else echo ">> no real node here ($${why#node.sh: }): the end-to-end tests will be skipped"; fi

lint: venv
	@.venv/bin/ruff check operator server tests bench hack
	@.venv/bin/ruff format --check operator server tests bench hack

unit: venv
	@$(PY) -m pytest tests -m "not cluster"

## preview: docs/tuning.md's preview of examples/gpu-peak-windows.yaml, text and docs/preview-week.png
## (no cluster; matplotlib from the preview extra)
.PHONY: preview
preview: venv
	@$(PY) -m emotivoice_operator.main preview -f examples/gpu-peak-windows.yaml --start 2025-03-03T00:00 --days 7 --plot docs/preview-week.png

## cluster: the local Kubernetes control plane on 127.0.0.1 (etcd, kube-apiserver, controller
## manager, scheduler, KWOK fake nodes); builds its binaries the first time. See docs/development.md.
cluster:
	@bash hack/cluster.sh up

cluster-down:
	@bash hack/cluster.sh down

## test-model: a small random-weight EmotiVoice model in the released layout (.models/small, seconds)
.PHONY: test-model-full bench-model
test-model: venv
	@$(PY) -m emotivoice_tts.testmodel small .models/small

## test-model-full: the same at the released dimensions (.models/full, ~1 GB; kept once written)
test-model-full: venv
	@$(PY) -m emotivoice_tts.testmodel full .models/full --if-missing

## bench-model: load/latency/memory of our inference vs. upstream's loading path, full-size model, CPU
## (UPSTREAM=path/to/EmotiVoice checkout adds EmotiVoice's own modules to the comparison)
bench-model: test-model-full
	@$(PY) bench/model_bench.py --model-dir .models/full $(if $(UPSTREAM),--upstream $(UPSTREAM))

bench: bench-model

## sync-crd: copy the CRDs into the Helm chart (a test fails if they differ)
sync-crd:
	@cp crds/emotivoiceservice.yaml crds/emotivoicecalendar.yaml charts/emotivoice-operator/crds/

## bench-server: cold start of the server, lazy load vs. our eager load + warm-up (full-size model)
.PHONY: bench-server
bench-server: test-model-full
	@$(PY) bench/server_bench.py --model-dir .models/full --runs 2 $(if $(UPSTREAM),--upstream $(UPSTREAM))

bench: bench-server

## bench-fetch: fetch step vs. a single-stream baseline on loopback versitygw (~600 MB model),
## straight and through a 50 MB/s-per-connection proxy, cold and warm; ratios, MB/s, peak RSS
.PHONY: bench-fetch
bench-fetch: venv
	@bash hack/build-binaries.sh versitygw >/dev/null
	@$(PY) bench/fetch_bench.py

bench: bench-fetch

## bench-load: capacity, then 2x and 4x overload (openai client, hint-honouring and hint-ignoring
## raw clients): goodput, p50/p95, 503 share, server CPU, RSS; small model, about two minutes
.PHONY: bench-load
bench-load: test-model
	@$(PY) bench/load_bench.py

bench: bench-load

## bench-operator: COUNT (100) EmotiVoiceServices at once on the local control plane (convergence, idle writes, idle API requests per service, RSS)
.PHONY: bench-operator
bench-operator: venv tools
	@$(PY) bench/operator_bench.py --count $(or $(COUNT),100)
bench: bench-operator

## bench-recommend: `recommend` on five weeks of 1-minute history from a real Prometheus (backfilled,
## cached), against the raw query_range fetch alone; target under 10 s
.PHONY: bench-recommend
bench-recommend: venv tools
	@$(PY) bench/recommend_bench.py
bench: bench-recommend

## images: every image (operator, both server variants, test S3), built here without any registry to pull
## from (mmdebstrap base + buildah; root), pushed to the real node's local registry; prints
## NAME=REFERENCE. With a Docker engine instead: docker build -f operator/Dockerfile . (see there)
images:
	@bash hack/node-deps.sh
	@bash hack/build-binaries.sh coredns registry >/dev/null
	@bash hack/images.sh all

## bench-images: both server variants' sizes from the registry's manifests (builds the CUDA
## variant, which `make test` does not: ~10 min and ~10 GB cold); CPU/CUDA ratio, code layers
.PHONY: bench-images
bench-images: venv
	@bash hack/node-deps.sh
	@bash hack/build-binaries.sh registry >/dev/null
	@$(PY) bench/images_bench.py
bench: bench-images

## bench-coldstart: a real pod's cold start on the real node, empty and warm cache, against the
## common recipe (lazy server, /health probe after 30 s, plain copy); ratios and peak memory; the
## small and the full-size generated model in one run (MODELS=small or full for one of them)
.PHONY: bench-coldstart
bench-coldstart: venv tools node-tools test-model-full
	@$(PY) bench/coldstart_bench.py $(if $(MODELS),--models $(MODELS))
bench: bench-coldstart

## bench-window: one window's warm path on the real node: the image pre-pull's timeline to the
## replicas Ready, the image phase with and without the pre-pull, replica-time spent before the start
## (the full-size model, the start users' replicas have; MODEL=small for the tests' model)
.PHONY: bench-window
bench-window: venv tools node-tools test-model-full
	@$(PY) bench/window_bench.py $(if $(MODEL),--model $(MODEL))
bench: bench-window

## bench-fallback: a primary at zero behind a CPU fallback on the real node, against no fallback:
## requests failed by phase (at zero, wake, switch, a pod leaving with and without the drain,
## rollout), first answer vs the fallback's steady latency, switch lag, idle writes (small model)
.PHONY: bench-fallback
bench-fallback: venv tools node-tools
	@$(PY) bench/fallback_bench.py
bench: bench-fallback

## soak: MINUTES (30, at most 30) on the real node: windows every 4 minutes, pods killed at random,
## the S3 store blips, the operator restarts; then requests, window starts met/missed, cold starts
## by phase, operator memory, leaked objects, every cache claim re-verified (SOAK_REPORT=path.json)
.PHONY: soak
soak: venv tools node-tools
	@$(PY) bench/soak.py --minutes $(or $(MINUTES),30) $(if $(SOAK_REPORT),--report $(SOAK_REPORT))

## e2e-kind: kind cluster + images + chart + an example on an in-cluster MinIO, then the integration suite (needs Docker and kind)
e2e-kind:
	@bash hack/e2e-kind.sh

## gpu-check: fp32/fp16/bf16 on CUDA and fp32 on CPU, one table: load, start -> ready, first and
## steady requests, RTF, peak GPU memory, fp16/bf16 vs fp32 (full-size model; under 8 minutes).
## DEVICE=cpu measures the CPU precisions instead; UPSTREAM=path/to/EmotiVoice adds its modules.
.PHONY: gpu-check
gpu-check:
	@bash hack/gpu-check.sh $(if $(DEVICE),--device $(DEVICE)) $(if $(UPSTREAM),--upstream $(UPSTREAM))
