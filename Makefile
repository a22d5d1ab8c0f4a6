# token-projector: kubebuilder's target vocabulary. `make help` lists them.

# Tools are built from the Go module proxy at pinned versions into bin/.
LOCALBIN ?= $(shell pwd)/bin
GOLANGCI_LINT_VERSION ?= v2.15.0
GOLANGCI_LINT ?= $(LOCALBIN)/golangci-lint-$(GOLANGCI_LINT_VERSION)
HELM_VERSION ?= v3.22.0
HELM ?= $(LOCALBIN)/helm-$(HELM_VERSION)
# Stamped like helm's own release build (its Makefile derives them from the
# client-go it requires, v0.37 for v3.22.0): unstamped, `helm template` and
# `helm lint` assume Kubernetes v1.20, below the chart's kubeVersion.
HELM_KUBE_MINOR ?= 37
HELM_LDFLAGS ?= $(foreach p,pkg/lint/rules pkg/chartutil,-X helm.sh/helm/v3/$(p).k8sVersionMajor=1 -X helm.sh/helm/v3/$(p).k8sVersionMinor=$(HELM_KUBE_MINOR))

# The Helm chart; its files/ are copies of config/ made by chart-sync.
CHART ?= charts/token-projector

# Image of make image, image-push and docker-build.
IMG ?= ghcr.io/token-projector/token-projector:dev
# Base of make image: the Dockerfile's (distroless static nonroot, pinned by
# digest), so that both build the same image. BASE_IMAGE=local assembles an
# equivalent static non-root base without a registry.
BASE_IMAGE ?= $(shell awk '$$1 == "FROM" {base = $$2} END {print base}' Dockerfile)
# Where make image writes the image (a docker-archive tarball).
IMAGE_ARCHIVE ?= $(LOCALBIN)/image/token-projector.tar

# The fuzz targets, as package:FuzzName:inputs (seed corpora in each
# package's testdata/fuzz/FuzzName, which plain go test also runs). `make
# test` runs each for its number of inputs (about 20 s each on a 2-core
# machine), `make fuzz` for FUZZ_SCALE times as many (about 5 minutes).
# Counts, not durations: go1.26's fuzz coordinator can fail a run whose
# -fuzztime duration ends while a worker is busy ("context deadline
# exceeded", no failing input; golang/go#75804, fixed in Go 1.27).
FUZZ_TARGETS ?= ./pkg/mutate:FuzzParse:80000 ./pkg/admission:FuzzAdmissionReview:16000 ./pkg/admission:FuzzReviewDecode:32000
FUZZ_SCALE ?= 15

# go test -fuzz takes one target in one package at a time; $(2) scales the
# target's number of inputs.
define run-fuzz
go test $(word 1,$(subst :, ,$(1))) -run '^$$' -fuzz '^$(word 2,$(subst :, ,$(1)))$$' -fuzztime $$(( $(word 3,$(subst :, ,$(1))) * $(2) ))x

endef

GO_TEST_FLAGS ?= -timeout 45m
# The packages whose code runs concurrently (admissions sharing one ensure,
# live read and API limiter; the drain; the reconciler's workers): make test
# runs them under the race detector too, before the main run. Only these: it
# slows code several times over, and the integration tiers would then
# measure the detector rather than the webhook.
RACE_PACKAGES ?= ./pkg/rbac/ ./pkg/admission/ ./pkg/server/ ./pkg/reconcile/

.DEFAULT_GOAL := help

##@ General

.PHONY: help
help: ## Show this help.
	@awk 'BEGIN {FS = ":.*##"; printf "\nUsage:\n  make \033[36m<target>\033[0m\n"} /^[a-zA-Z_0-9-]+:.*?##/ { printf "  \033[36m%-16s\033[0m %s\n", $$1, $$2 } /^##@/ { printf "\n\033[1m%s\033[0m\n", substr($$0, 5) } ' $(MAKEFILE_LIST)

##@ Development

.PHONY: fmt
fmt: ## Run go fmt against the code.
	go fmt ./...

.PHONY: vet
vet: ## Run go vet against the code.
	go vet ./...

.PHONY: lint
lint: golangci-lint ## Run golangci-lint (installed at a pinned version).
	$(GOLANGCI_LINT) run ./...

.PHONY: test
test: ## Run every test: lint (go vet's analyzers included), unit (the concurrent packages also with -race), golden, fuzz (short), chart, integration, faults, load (short), end to end against a real kube-apiserver (integration and end to end also against the oldest supported one), and the real cluster; prints each phase's duration at its end.
	@hack/phases.sh --reset
	hack/phases.sh webhook env CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o $(TEST_WEBHOOK) ./cmd/webhook
	hack/phases.sh golangci-lint $(SUBMAKE) golangci-lint
	hack/phases.sh lint env GOFLAGS="$(TEST_GOFLAGS)" $(SUBMAKE) lint
	hack/phases.sh helm $(SUBMAKE) helm
	hack/phases.sh helm-lint $(SUBMAKE) helm-lint
	hack/phases.sh cluster-binaries $(SUBMAKE) cluster
	hack/phases.sh controlplane-oldest $(SUBMAKE) controlplane-oldest
	hack/phases.sh fuzz env GOFLAGS="$(TEST_GOFLAGS)" $(SUBMAKE) test-fuzz
	hack/phases.sh race env GOFLAGS="$(TEST_GOFLAGS)" go test -race $(GO_TEST_FLAGS) $(RACE_PACKAGES)
	hack/phases.sh go-test env GOFLAGS="$(TEST_GOFLAGS)" KUBEBUILDER_ASSETS="$$(hack/controlplane.sh)" HELM="$(HELM)" WEBHOOK_BINARY=$(TEST_WEBHOOK) go test $(GO_TEST_FLAGS) $$(go list ./... | grep -v '/test/cluster$$')
	hack/phases.sh oldest-tiers env GOFLAGS="$(TEST_GOFLAGS)" KUBEBUILDER_ASSETS="$$(hack/controlplane.sh --oldest)" HELM="$(HELM)" WEBHOOK_BINARY=$(TEST_WEBHOOK) go test -count=1 $(GO_TEST_FLAGS) $(OLDEST_TIERS)
	hack/phases.sh cluster-tier $(call run-cluster-tier,GOFLAGS="$(TEST_GOFLAGS)")
	@hack/phases.sh --table

# make test runs each phase as its own make (or go) command under
# hack/phases.sh, which times it; the table is printed at the end, or when a
# phase fails (docs/testing.md has a cold run's). The phases run one after
# another: on 2 cores one go build already keeps both busy. The webhook's
# build comes first, so that a compile error stops the run in minutes,
# not after golangci-lint's build. go vet is not a phase of its own:
# golangci-lint's govet runs the same analyzers (go vet's default set) over
# the same packages and their tests (make vet still runs it alone).
SUBMAKE = $(MAKE) --no-print-directory
# -trimpath for make test's go commands that compile the project (lint,
# fuzz, race, the tiers): the binaries the tests build as the Dockerfile
# does (the webhook, the cluster tier's images, make image's tool) need it,
# and it is a compile flag, so without it each of the webhook's ~640
# packages, the standard library's included, would compile twice: once for
# lint and the tests, once for those binaries. Not for the tools and the
# Kubernetes binaries (golangci-lint, helm, hack/controlplane.sh,
# hack/cluster.sh): they share nothing with the project's compiles, and
# their build cache stays the one `make controlplane`, `make run` and
# `make bench` use. The go env's own GOFLAGS are kept.
TEST_GOFLAGS = $(strip $(shell go env GOFLAGS) -trimpath)
# The webhook binary the tiers run (test/faults, test/e2e twice,
# test/install; test/cluster installs releases instead), built once as the Dockerfile builds it
# (testenv.BuildWebhook's flags, which testenv checks in its build info);
# a test run without WEBHOOK_BINARY builds its own.
TEST_WEBHOOK ?= $(LOCALBIN)/test/webhook

# The tiers make test runs a second time against the oldest kube-apiserver
# the docs claim (hack/controlplane/kube-apiserver-oldest): the webhook
# through a real API server, and the chart installed with its matchConditions
# evaluated by that API server, and the namespaced RBAC scope. About 90 s
# warm; the build of that kube-apiserver about 6 minutes cold on 2 cores.
# -count=1, because go test's result cache cannot tell the two runs apart:
# the suites read KUBEBUILDER_ASSETS in TestMain, before the reads it
# records begin, so it would serve this run the newest version's results.
OLDEST_TIERS ?= ./test/integration ./test/e2e ./test/scopes

# The cluster tier runs in go test's local directory mode (go test -C, no
# package), so that its summary line (cluster: pods_running=...) is printed
# on success too. $(1): more of its environment (make test's GOFLAGS, so
# that its two releases of the webhook reuse the packages test/release
# compiled for both platforms and only link).
define run-cluster-tier
env KUBEBUILDER_ASSETS="$$(hack/controlplane.sh)" CLUSTER_ASSETS="$$(hack/cluster.sh)" HELM="$(HELM)" $(1) go test -C test/cluster -count=1 -timeout $(CLUSTER_TEST_TIMEOUT) $(CLUSTER_TEST_FLAGS)
endef
CLUSTER_TEST_TIMEOUT ?= 30m
# Extra flags of the cluster tier's go test, e.g. -v.
CLUSTER_TEST_FLAGS ?=

.PHONY: test-cluster
test-cluster: cluster helm ## Run the real-cluster tier alone (root; the chart installed with helm on a kubelet built from source; see docs/install.md).
	$(call run-cluster-tier)

.PHONY: test-fuzz
test-fuzz: ## Run each fuzz target for its number of inputs in FUZZ_TARGETS (about 20s each; part of make test).
	$(foreach t,$(FUZZ_TARGETS),$(call run-fuzz,$(t),1))

.PHONY: fuzz
fuzz: ## Run each fuzz target for FUZZ_SCALE times its inputs (about 5m each); new failures land in testdata/fuzz.
	$(foreach t,$(FUZZ_TARGETS),$(call run-fuzz,$(t),$(FUZZ_SCALE)))

.PHONY: load
load: controlplane ## Run the long load test: 10 000 pods, 40 namespaces x 25 accounts, 64 clients, through a real kube-apiserver.
	KUBEBUILDER_ASSETS="$$(hack/controlplane.sh)" go test ./test/load -run '^TestLoad$$' -count=1 -timeout 60m -v -args -load-size=long

.PHONY: controlplane
controlplane: ## Build kube-apiserver and etcd for the tests from pinned modules (cached in bin/k8s).
	@hack/controlplane.sh

.PHONY: controlplane-oldest
controlplane-oldest: ## Build the oldest supported kube-apiserver (and etcd) that make test also runs the integration and end-to-end tiers against.
	@hack/controlplane.sh --oldest

.PHONY: cluster
cluster: ## Build the cluster tier's binaries from pinned modules (cached in bin/): kube-apiserver, kubelet, kube-proxy, controller-manager, scheduler and kubectl in one go build, etcd, containerd, runc and CNI plugins.
	@hack/cluster.sh --times > /dev/null

##@ Build

.PHONY: build
build: ## Build the webhook binary into bin/webhook, as the Dockerfile does.
	CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o $(LOCALBIN)/webhook ./cmd/webhook

.PHONY: image
image: build ## Build the webhook image without Docker into IMAGE_ARCHIVE, reproducibly (BASE_IMAGE=local: no registry needed).
	go run ./hack/image build -binary $(LOCALBIN)/webhook -base $(BASE_IMAGE) -tag $(IMG) -o $(IMAGE_ARCHIVE)

.PHONY: image-push
image-push: image ## Push the image of make image to IMG (credentials of ~/.docker/config.json).
	go run ./hack/image push -archive $(IMAGE_ARCHIVE) -to $(IMG)

# Built, then exec'd as the recipe's only process: `go run` exits 1 after
# any Ctrl-C whatever its program returns (cmd/go counts an interrupted build
# as failed), and sh (dash) dies of the SIGINT instead of waiting for its
# child; devenv stops what it started and exits 0. In a terminal, devenv
# takes the terminal's foreground for its own process group (GNU make would
# otherwise re-raise the Ctrl-C on itself and exit 130), so make exits 0 too.
# Flags of devenv (go run ./hack/devenv --help), e.g.
# RUN_FLAGS="--metrics-bind-address 127.0.0.1:9090".
RUN_FLAGS ?=
.PHONY: run
run: controlplane ## Run the webhook against a local kube-apiserver with an opted-in demo namespace (Ctrl-C stops and removes everything).
	go build -o $(LOCALBIN)/devenv ./hack/devenv
	KUBEBUILDER_ASSETS="$$(hack/controlplane.sh)" exec $(LOCALBIN)/devenv $(RUN_FLAGS)

##@ Benchmarks

# Extra flags of the benchmark runner (go run ./test/bench --help), e.g.
# BENCH_FLAGS="--rounds 7 --slice 8s". It first runs the runner's smoke test
# (TestBenchSmoke, build tag benchsmoke: a control plane and the webhook
# binary, too long for make test), so that a broken harness fails in seconds.
BENCH_FLAGS ?=

.PHONY: bench
bench: controlplane ## Benchmark the webhook binary (built as the Dockerfile does) against a bare TLS server: throughput, latency, CPU, RSS, API calls, cache memory; ~6 min, see docs/performance.md.
	KUBEBUILDER_ASSETS="$$(hack/controlplane.sh)" go test -tags benchsmoke -count=1 -run '^TestBenchSmoke$$' ./test/bench/
	go build -o $(LOCALBIN)/bench ./test/bench
	KUBEBUILDER_ASSETS="$$(hack/controlplane.sh)" $(LOCALBIN)/bench --out $(LOCALBIN)/bench-out $(BENCH_FLAGS)

.PHONY: bench-micro
bench-micro: ## Run the Go micro-benchmarks (annotation parsing, mutation, patch, handler in-process) with allocations per admission.
	go test -run '^$$' -bench . -benchmem ./pkg/mutate/ ./pkg/admission/

##@ Install

.PHONY: chart-sync
chart-sync: ## Copy config/rbac/role.yaml, config/gc/role.yaml, config/webhook/manifests.yaml and config/tokenpolicy/policy.yaml into the chart (test/install fails until they match).
	cp config/rbac/role.yaml $(CHART)/files/rbac.yaml
	cp config/gc/role.yaml $(CHART)/files/rbac-gc.yaml
	cp config/webhook/manifests.yaml $(CHART)/files/webhook.yaml
	cp config/tokenpolicy/policy.yaml $(CHART)/files/tokenpolicy.yaml

.PHONY: helm-lint
helm-lint: helm ## Lint the chart (--strict) and render it with its defaults.
	$(HELM) lint --strict $(CHART)
	$(HELM) lint --strict $(CHART) --set rbac.scope=namespaces --set 'rbac.namespaces={team-a,team-b}'
	$(HELM) template token-projector $(CHART) --namespace token-projector-system > /dev/null

.PHONY: helm-package
helm-package: helm ## Package the chart into bin/.
	$(HELM) package $(CHART) --destination $(LOCALBIN)

.PHONY: docker-build
docker-build: ## Build the webhook image (needs a Docker engine; none runs on the development machines).
	docker build -t $(IMG) .

##@ Release

# make release VERSION=v0.1.0 REGISTRY=ghcr.io/me COSIGN_KEY=cosign.key
# publishes REGISTRY/token-projector (a linux/amd64+arm64 image index, an
# SBOM per image, signed) and REGISTRY/charts/token-projector (the chart,
# signed, naming the index by digest). Credentials for REGISTRY come from
# ~/.docker/config.json; COSIGN_PASSWORD unlocks a cosign key. A hosted CI
# signs keyless instead: RELEASE_FLAGS=-keyless (docs/releasing.md).
VERSION ?=
REGISTRY ?=
COSIGN_KEY ?=
RELEASE_FLAGS ?= $(if $(COSIGN_KEY),-key $(COSIGN_KEY))

.PHONY: release
release: helm ## Publish a signed release: make release VERSION=vX.Y.Z REGISTRY=host/path COSIGN_KEY=cosign.key (docs/releasing.md).
	go run ./hack/release publish -version "$(VERSION)" -registry "$(REGISTRY)" -base "$(BASE_IMAGE)" -helm "$(HELM)" -o $(LOCALBIN)/release $(RELEASE_FLAGS)

##@ Tools

$(LOCALBIN):
	mkdir -p $(LOCALBIN)

.PHONY: golangci-lint
golangci-lint: $(GOLANGCI_LINT) ## Install golangci-lint.
$(GOLANGCI_LINT): | $(LOCALBIN)
	GOBIN=$(LOCALBIN)/tmp-golangci go install github.com/golangci/golangci-lint/v2/cmd/golangci-lint@$(GOLANGCI_LINT_VERSION)
	mv $(LOCALBIN)/tmp-golangci/golangci-lint $(GOLANGCI_LINT) && rmdir $(LOCALBIN)/tmp-golangci

.PHONY: helm
helm: $(HELM) ## Install helm.
# A private GOBIN per run: test packages may install it concurrently.
$(HELM): | $(LOCALBIN)
	tmp=$$(mktemp -d $(LOCALBIN)/tmp-helm.XXXXXX) && GOBIN=$$tmp go install -ldflags '$(HELM_LDFLAGS)' helm.sh/helm/v3/cmd/helm@$(HELM_VERSION) && mv $$tmp/helm $(HELM) && rmdir $$tmp

.PHONY: helm-path
helm-path: $(HELM) ## Install helm and print its path (the tests call this when HELM is not set).
	@echo $(HELM)
