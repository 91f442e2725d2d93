# Shoal. `make demo` starts a local cluster and pulls an image peer-to-peer;
# `make test` runs everything CI runs.
GO       ?= go
BINARIES := proxy buildindex origin tracker agent
TOOLS    := $(CURDIR)/.tools/bin
export CGO_ENABLED := 0
export PATH := $(TOOLS):$(PATH)

.PHONY: all build test unit e2e e2e-backends e2e-preheat e2e-containerd e2e-kubernetes kube-tools integration tools devcluster demo lint clean images bench bench-smoke bench-partition fuzz

all: build

## build: static binaries bin/shoal-<component>
build:
	@mkdir -p bin
	@for b in $(BINARIES); do \
		$(GO) build -trimpath -ldflags='-s -w' -o bin/shoal-$$b ./$$b || exit 1; \
	done

## test: lint, unit tests, integration tests against real servers, the end-to-end suite, the
## demo, a small swarm benchmark on network namespaces and its partition fault scenario
## (correctness only, results not kept)
test: lint chart-lint unit integration e2e e2e-backends e2e-preheat e2e-containerd e2e-kubernetes demo bench-smoke bench-partition

## unit: go test ./... (fast, in-process)
unit:
	$(GO) test -count=1 ./...

# FUZZ_TARGETS: every native fuzz test, <package>:<FuzzName>; their seed corpora
# (testdata/fuzz/<FuzzName>/) run in make unit
FUZZTIME ?= 30s
FUZZ_TARGETS := \
	./lib/registry:FuzzParseRoute ./lib/registry:FuzzParseContentRange ./lib/registry:FuzzBlobRange \
	./lib/registry:FuzzRegistryAPI ./lib/registry:FuzzUploadSession \
	./lib/oci:FuzzParseManifest ./lib/oci:FuzzParseReference ./lib/oci:FuzzValidName \
	./lib/trackerclient:FuzzDecodeAnnounceReply ./lib/metainfo:FuzzParse ./lib/config:FuzzDecode \
	./lib/backend:FuzzParseBlobName ./lib/backend:FuzzParseTagName \
	./lib/notification:FuzzDecode ./lib/dragonfly:FuzzDecodeCreate \
	./tracker:FuzzParseAnnounce ./tracker:FuzzAnnounce ./buildindex:FuzzParseTagsPath

## fuzz: run each fuzz test for FUZZTIME (30s) in turn; a failure stops with its input
## saved under the package's testdata/fuzz/ (commit it as a regression seed)
fuzz:
	@for t in $(FUZZ_TARGETS); do \
		pkg=$${t%%:*}; name=$${t#*:}; echo "fuzz $$pkg $$name ($(FUZZTIME))"; \
		$(GO) test -run '^$$' -fuzz "^$$name\$$" -fuzztime $(FUZZTIME) $$pkg || exit 1; \
	done

## e2e: real clients (crane, skopeo, docker) against a cluster of the built binaries
e2e: build tools
	$(GO) test -tags e2e -count=1 -timeout 20m -v ./test/e2e/

## e2e-backends: the cluster on real backends (S3 via versitygw, GCS via fake-gcs-server,
## pull-through from a distribution registry), started by the tests from .tools/bin; the
## same fixed ports as e2e, so never at the same time
e2e-backends: build tools
	$(GO) test -tags e2e -count=1 -p 1 -timeout 20m -v ./test/e2e/backends/

## e2e-preheat: Harbor's P2P preheat (kraken and dragonfly contracts, bearer auth) against the
## cluster, a distribution registry with basic auth as the upstream (started by the tests from
## .tools/bin); the same fixed ports as e2e, so never at the same time
e2e-preheat: build tools
	$(GO) test -tags e2e -count=1 -p 1 -timeout 20m -v ./test/e2e/preheat/

## e2e-containerd: a real containerd (started by the test, own root and socket; ctr and the
## CRI API) pulling through the agents as its registry mirror, from a distribution registry
## upstream and from the proxy; needs root and containerd (skips without); the same fixed
## ports as e2e, so never at the same time
e2e-containerd: build tools
	$(GO) test -tags e2e -count=1 -p 1 -timeout 20m -v ./test/e2e/containerd/

## e2e-kubernetes: the Helm chart on a real single-node Kubernetes that the test brings up
## on this machine (test/kube: kubelet on a private containerd, kube-proxy, CoreDNS), from
## the images of `make images`: pods pull an upstream's and the proxy's images through the
## node's agent, origins scale 3 -> 4, helm uninstall restores the node (root; ~9 min
## more the first time, building Kubernetes into .tools/kube)
e2e-kubernetes: build images tools kube-tools
	$(GO) test -tags e2e -count=1 -timeout 30m -v ./test/e2e/kubernetes/

## kube-tools: the test cluster's binaries (Kubernetes v1.37.2, etcd, kube-proxy, CoreDNS,
## helm) built from the Go module proxy into .tools/kube (once; test/kube/build.sh)
kube-tools:
	@bash test/kube/build.sh

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
# bench-smoke and bench-partition run in make test: stdout only unless asked
BENCH_SMOKE_OUT ?=

## bench: the default swarm benchmark (needs root): 10 agents, 1 origin, 100 Mbit/s per host,
## 256 MiB blob, each on its own network namespace; results into docs/BENCHMARKS.md
bench: build
	$(GO) run ./test/bench -agents 10 -origins 1 -rate 100 -blob-size 256MiB -out $(BENCH_OUT)

## bench-smoke: a small run of the same harness (3 agents, 16 MiB); checks digests and
## completion only, never timings
bench-smoke: build
	$(GO) run ./test/bench -agents 3 -origins 1 -rate 100 -blob-size 16MiB -out "$(BENCH_SMOKE_OUT)"

## bench-partition: the same harness with a fault (4 agents, 16 MiB): agents 1-2 and 3-4 can't
## reach each other while all pull a blob (both sides from the origins and their own side),
## then the cut heals and all pull a second blob; fails if a pull or digest is wrong, if any
## byte crossed the cut, or if no BitTorrent traffic crosses after the heal; never timings
bench-partition: build
	$(GO) run ./test/bench -agents 4 -origins 1 -rate 100 -blob-size 16MiB -partition -http-baseline=false -out "$(BENCH_SMOKE_OUT)"

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
	rm -rf bin state build

# images: tag, OCI labels (override any: make images IMAGE_TAG=v1 VERSION=v1.0.0) and the
# CA bundle copied into the images (Go's TLS roots; scratch has none)
IMAGE_TAG ?= dev
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
REVISION  ?= $(shell git rev-parse HEAD 2>/dev/null || echo unknown)
CREATED   ?= $(shell date -u +%Y-%m-%dT%H:%M:%SZ)
CA_BUNDLE ?= /etc/ssl/certs/ca-certificates.crt

## images: one FROM-scratch image per binary, shoal-<binary>:$(IMAGE_TAG), non-root (65532),
## each also saved as build/images/shoal-<binary>.tar (for docker load or ctr images import)
images: build
	@test -r "$(CA_BUNDLE)" || { echo "images: no CA bundle at $(CA_BUNDLE) (apt-get install ca-certificates, or set CA_BUNDLE=)"; exit 1; }
	@set -e; for b in $(BINARIES); do \
		ctx=build/images/context/$$b; rm -rf $$ctx; \
		mkdir -p $$ctx/rootfs/etc/shoal $$ctx/rootfs/etc/ssl/certs $$ctx/rootfs/tmp $$ctx/data; chmod 1777 $$ctx/rootfs/tmp; \
		cp bin/shoal-$$b $$ctx/shoal; cp config/$$b.yaml $$ctx/rootfs/etc/shoal/$$b.yaml; \
		cp "$(CA_BUNDLE)" $$ctx/rootfs/etc/ssl/certs/ca-certificates.crt; \
		out=$$(docker build -q -f docker/Dockerfile --build-arg BINARY=$$b --build-arg VERSION="$(VERSION)" \
			--build-arg REVISION="$(REVISION)" --build-arg CREATED="$(CREATED)" \
			-t shoal-$$b:$(IMAGE_TAG) $$ctx 2>&1) || { echo "$$out"; exit 1; }; \
		docker save -o build/images/shoal-$$b.tar shoal-$$b:$(IMAGE_TAG); chmod 0644 build/images/shoal-$$b.tar; \
		echo "shoal-$$b:$(IMAGE_TAG) -> build/images/shoal-$$b.tar ($$(du -h build/images/shoal-$$b.tar | cut -f1))"; \
	done

# chart-lint: --set variants that must render, and values values.schema.json (or the
# chart's own checks) must refuse, one helm argument list per line
CHART := charts/shoal
CHART_GOOD := \
	"--set backend.kind=s3 --set backend.s3.bucket=b --set backend.s3.region=eu-west-1 --set backend.s3.existingSecret=s3 --set backend.s3.endpoint=http://minio:9000 --set backend.s3.pathStyle=true" \
	"--set backend.kind=gcs --set backend.gcs.bucket=b --set backend.gcs.existingSecret=gcs" \
	"--set backend.fs.existingClaim=shared --set origin.persistence.enabled=true --set origin.persistence.storageClass=- --set buildindex.persistence.enabled=true" \
	"--set monitoring.serviceMonitor.enabled=true --set monitoring.dashboard.enabled=true --set agent.listenHost=0.0.0.0" \
	"--set upstreams[0].host=docker.io --set upstreams[0].url=https://registry-1.docker.io --set upstreams[1].host=upstream.test:5000 --set upstreams[1].url=http://10.0.0.5:5000 --set upstreams[1].insecure=true --set upstreams[1].username=u --set upstreams[1].passwordSecret.name=up --set upstreams[1].passwordSecret.key=token" \
	"-f test/e2e/kubernetes/testdata/values.yaml" \
	"-f test/chart/testdata/preheat.yaml"
CHART_BAD := \
	"--set origin.replicas=0" \
	"--set backend.kind=nfs" \
	"--set backend.kind=s3" \
	"--set upstreams[0].url=https://registry-1.docker.io" \
	"--set upstreams[0].host=docker.io" \
	"--set upstreams[0].host=docker.io --set upstreams[0].url=registry-1.docker.io" \
	"--set upstreams[0].host=up:5000 --set upstreams[0].url=http://up:5000" \
	"--set upstreams[0].host=a.io --set upstreams[0].url=https://a.io --set upstreams[1].host=A.IO --set upstreams[1].url=https://b.io" \
	"--set proxy.port=70000" \
	"--set tracker.maxPeers=5000" \
	"--set preheat.enabled=true --set preheat.auth.mode=bearer" \
	"--set preheat.enabled=true --set preheat.auth.mode=oauth" \
	"--set origin.replcas=3"

## chart-lint: helm lint and helm template of charts/shoal (defaults and --set variants),
## values the chart must refuse (each refusal printed), and test/chart: what the rendered
## configs and pods hold (preheat's Secret files and trackers) and the refusals' messages
.PHONY: chart-lint
chart-lint: kube-tools
	@test -x $(TOOLS)/helm || { echo "chart-lint: no $(TOOLS)/helm (make kube-tools builds it)"; exit 1; }
	$(TOOLS)/helm lint --strict $(CHART)
	@$(TOOLS)/helm template shoal $(CHART) >/dev/null && echo "template: defaults ok"
	@for v in $(CHART_GOOD); do \
		$(TOOLS)/helm template shoal $(CHART) $$v >/dev/null || { echo "template $$v: failed"; exit 1; }; \
		$(TOOLS)/helm lint --strict $(CHART) $$v >/dev/null || { echo "lint $$v: failed"; exit 1; }; \
		echo "template: $$v ok"; \
	done
	@for v in $(CHART_BAD); do \
		if out=$$($(TOOLS)/helm template shoal $(CHART) $$v 2>&1); then echo "template $$v: rendered, want a refusal"; exit 1; fi; \
		echo "refused: $$v"; echo "$$out" | grep -v '^Error: values don.t meet\|^shoal:$$\|^$$\|--debug' | sed 's/^/    /'; \
	done
	SHOAL_HELM=$(TOOLS)/helm $(GO) test -tags e2e -count=1 ./test/chart/
