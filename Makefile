# token-projector: kubebuilder's target vocabulary. `make help` lists them.

# Tools are built from the Go module proxy at pinned versions into bin/.
LOCALBIN ?= $(shell pwd)/bin
GOLANGCI_LINT_VERSION ?= v2.15.0
GOLANGCI_LINT ?= $(LOCALBIN)/golangci-lint-$(GOLANGCI_LINT_VERSION)

# Image for docker-build (no Docker engine runs on the development machines).
IMG ?= ghcr.io/token-projector/token-projector:dev

# How long each fuzz target runs in `make test` and in `make fuzz`.
FUZZTIME_SHORT ?= 20s
FUZZTIME ?= 5m

GO_TEST_FLAGS ?= -timeout 45m

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
test: vet lint controlplane ## Run every test: unit, golden, integration against a real kube-apiserver.
	KUBEBUILDER_ASSETS="$$(hack/controlplane.sh)" go test $(GO_TEST_FLAGS) ./...

.PHONY: controlplane
controlplane: ## Build kube-apiserver and etcd for the tests from pinned modules (cached in bin/k8s).
	@hack/controlplane.sh

##@ Build

.PHONY: build
build: ## Build the webhook binary into bin/webhook.
	CGO_ENABLED=0 go build -trimpath -o $(LOCALBIN)/webhook ./cmd/webhook

.PHONY: run
run: controlplane ## Run the webhook against a local kube-apiserver with an opted-in demo namespace.
	KUBEBUILDER_ASSETS="$$(hack/controlplane.sh)" go run ./hack/devenv

##@ Tools

$(LOCALBIN):
	mkdir -p $(LOCALBIN)

.PHONY: golangci-lint
golangci-lint: $(GOLANGCI_LINT) ## Install golangci-lint.
$(GOLANGCI_LINT): | $(LOCALBIN)
	GOBIN=$(LOCALBIN)/tmp-golangci go install github.com/golangci/golangci-lint/v2/cmd/golangci-lint@$(GOLANGCI_LINT_VERSION)
	mv $(LOCALBIN)/tmp-golangci/golangci-lint $(GOLANGCI_LINT) && rmdir $(LOCALBIN)/tmp-golangci
