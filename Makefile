# realtime-gateway: `make help` lists the targets.
.DEFAULT_GOAL := help
SHELL := /bin/bash
export PATH := $(CURDIR)/.tools/bin:$(CURDIR)/node_modules/.bin:$(PATH)

.PHONY: help deps test-deps build lint test test-unit test-integration e2e bench up scale down status token clean
help: ## List the targets
	@grep -hE '^[a-zA-Z0-9_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  \033[36m%-18s\033[0m %s\n", $$1, $$2}'

node_modules/.package-lock.json: package-lock.json
	npm ci --no-audit --no-fund
deps: node_modules/.package-lock.json ## Install npm dependencies (npm ci)

build: deps ## Compile TypeScript to dist/
	npm run build

test-deps: ## Install the system packages the tests need (redis, haproxy, prometheus, chromium, shellcheck, python-socketio)
	bash scripts/install-test-deps.sh

lint: deps ## Type check (tests included), ESLint, Prettier (check only) and the import-cycle check
	npm run lint

test: test-deps build lint ## Run every test: lint, unit, integration, e2e and the chart tests
	npx jest --selectProjects unit integration
	$(MAKE) --no-print-directory e2e
	$(MAKE) --no-print-directory helm-test

test-unit: deps ## Unit tests only (no servers)
	npx jest --selectProjects unit

test-integration: test-deps build ## Integration tests (starts its own redis-server)
	npx jest --selectProjects integration

e2e: test-deps build ## End-to-end suite against a local cluster behind HAProxy
	npx jest --selectProjects e2e --passWithNoTests

bench: build ## Fan-out, presence and publish benchmarks (side by side with bare Socket.IO)
	node dist/bench/run.js

up: build ## Start the local cluster: Redis, 3 gateways, 2 workers, HAProxy on :8080
	bash scripts/local-cluster.sh up

scale: ## Add or remove gateways of the running local cluster: make scale GATEWAYS=<n> (HAProxy reloads in place)
	bash scripts/local-cluster.sh scale "$(GATEWAYS)"

down: ## Stop exactly what `make up` started
	bash scripts/local-cluster.sh down

status: ## Show the local cluster's processes
	bash scripts/local-cluster.sh status

token: ## Print a development JWT for the local cluster: make token USER=<id> [ROLES=admin]
	@bash scripts/local-cluster.sh token "$(USER)" "$(ROLES)"

clean: ## Remove build output and the local run folder
	rm -rf dist .run

-include mk/*.mk
