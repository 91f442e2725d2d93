# Shoal. `make demo` starts a local cluster and pulls an image peer-to-peer;
# `make test` runs everything CI runs.
GO       ?= go
BINARIES := proxy buildindex origin tracker agent
TOOLS    := $(CURDIR)/.tools/bin
export CGO_ENABLED := 0
export PATH := $(TOOLS):$(PATH)

.PHONY: all build test unit e2e e2e-backends integration tools devcluster demo lint clean images bench bench-smoke

all: build

## build: static binaries bin/shoal-<component>
build:
	@mkdir -p bin
	@for b in $(BINARIES); do \
		$(GO) build -trimpath -ldflags='-s -w' -o bin/shoal-$$b ./$$b || exit 1; \
	done

## test: lint, unit tests, integration tests against real servers, the end-to-end suite, the
## demo, and a small swarm benchmark on network namespaces (correctness only, results not kept)
test: lint unit integration e2e e2e-backends demo bench-smoke

## unit: go test ./... (fast, in-process)
unit:
	$(GO) test -count=1 ./...

## e2e: real clients (crane, skopeo, docker) against a cluster of the built binaries
e2e: build tools
	$(GO) test -tags e2e -count=1 -timeout 20m -v ./test/e2e/

## e2e-backends: the cluster on real backends (S3 via versitygw, GCS via fake-gcs-server,
## pull-through from a distribution registry), started by the tests from .tools/bin; the
## same fixed ports as e2e, so never at the same time
e2e-backends: build tools
	$(GO) test -tags e2e -count=1 -p 1 -timeout 20m -v ./test/e2e/backends/

## integration: tests against real servers (S3, GCS, ...) that the tests start from .tools/bin
integration: tools
	$(GO) test -tags integration -count=1 -timeout 20m ./...

## tools: install the real clients the tests use (idempotent)
tools:
	@bash test/install-tools.sh "$(TOOLS)"

## devcluster: run a local cluster in the foreground until Ctrl-C
devcluster: build
	$(GO) run ./test/cmd/devcluster

## demo: start the cluster, push a 200+ MiB image, pull it through 3 agents at once
demo: build
	$(GO) run ./test/cmd/demo

## lint: gofmt and go vet (with the e2e tag too)
lint:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
		if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) vet -tags e2e ./test/...
	$(GO) vet -tags integration ./...

# BENCH_OUT: where bench writes its results section (empty: stdout only)
BENCH_OUT ?= docs/BENCHMARKS.md
# bench-smoke runs in make test: stdout only unless asked
BENCH_SMOKE_OUT ?=

## bench: the default swarm benchmark (needs root): 10 agents, 1 origin, 100 Mbit/s per host,
## 256 MiB blob, each on its own network namespace; results into docs/BENCHMARKS.md
bench: build
	$(GO) run ./test/bench -agents 10 -origins 1 -rate 100 -blob-size 256MiB -out $(BENCH_OUT)

## bench-smoke: a small run of the same harness (3 agents, 16 MiB); checks digests and
## completion only, never timings
bench-smoke: build
	$(GO) run ./test/bench -agents 3 -origins 1 -rate 100 -blob-size 16MiB -out "$(BENCH_SMOKE_OUT)"

## bench-tracker: load-test bin/shoal-tracker pinned to one core (taskset -c 0; the load
## generator on core 1): 15,000 agents announcing over keep-alive connections, closed loop
## and open loop at 20,000/s; results into docs/BENCHMARKS.md (~1 min)
bench-tracker: build
	$(GO) run ./test/perf/tracker -out $(BENCH_OUT)

## bench-loopback: one agent pulls a 1 GiB blob from one origin over loopback, no rate limit,
## vs a plain TCP copy of the same file; then a 4 GiB blob for the agent's peak RSS; results
## into docs/BENCHMARKS.md (~3 min, ~16 GiB of free disk under /tmp)
bench-loopback: build
	$(GO) run ./test/perf/loopback -size 1GiB -runs 5 -out $(BENCH_OUT)
	$(GO) run ./test/perf/loopback -size 4GiB -runs 1 -out $(BENCH_OUT)

clean:
	rm -rf bin state

## images: one FROM-scratch image per binary (shoal-<binary>:dev)
images: build
	@for b in $(BINARIES); do \
		docker build -q -f docker/Dockerfile --build-arg BINARY=$$b -t shoal-$$b:dev . || exit 1; \
	done
