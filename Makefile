# playbook-operator: everyday commands. `make help` lists them.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
CLUSTER_NAME ?= playbook-operator
CLUSTER := $(PYTHON) hack/cluster.py --name $(CLUSTER_NAME)
# The kubeconfig of the local cluster, unless the caller points KUBECONFIG elsewhere.
LOCAL_KUBECONFIG = $(shell $(CLUSTER) kubeconfig)
KUBE_VERSION := $(shell sed -n 's/^KUBE_VERSION=//p' hack/versions.env)
CACHE ?= $(or $(PLAYBOOK_OPERATOR_CACHE),$(HOME)/.cache/playbook-operator)
KUBECTL := $(CACHE)/bin/$(KUBE_VERSION)/kubectl
DEMO_DIR := .demo

.PHONY: help
help: ## List the targets
	@grep -E '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk -F':.*?## ' '{printf "  %-14s %s\n", $$1, $$2}'

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

.PHONY: venv
venv: $(VENV)/.installed ## Create the virtualenv and install the package with its dev tools

.PHONY: build
build: ## Build the pinned control-plane binaries (once per machine; cached outside the repo)
	bash hack/build-control-plane.sh

.PHONY: cluster-up
cluster-up: build ## Start the local control plane (etcd, apiserver, controller-manager, scheduler, kwok)
	$(CLUSTER) up

.PHONY: cluster-down
cluster-down: ## Stop the local control plane and remove its data
	$(CLUSTER) down

.PHONY: cluster-env
cluster-env: ## Print the shell exports that point kubectl at the local cluster
	@$(CLUSTER) env

.PHONY: install
install: ## Install the CRDs into the cluster KUBECONFIG names (the local one by default)
	KUBECONFIG=$${KUBECONFIG:-$(LOCAL_KUBECONFIG)} $(KUBECTL) apply -k deploy/crd

.PHONY: run
run: venv ## Run the operator against the current KUBECONFIG
	$(VENV)/bin/playbook-operator run

.PHONY: demo
demo: venv cluster-up ## Local cluster + CRDs + operator + samples, and show the result
	bash hack/demo.sh up

.PHONY: demo-down
demo-down: ## Stop the demo operator and the local cluster
	bash hack/demo.sh down
	$(CLUSTER) down

.PHONY: test
test: venv build lint ## Lint, then unit and e2e tests (starts and stops a local cluster unless KUBECONFIG is set)
	bash hack/test.sh

.PHONY: unit
unit: venv ## Unit tests only (no cluster)
	$(PY) -m pytest -m unit -q

.PHONY: molecule
molecule: venv cluster-up ## Molecule scenarios (converge, idempotence, verify) on the local cluster
	KUBECONFIG=$${KUBECONFIG:-$(LOCAL_KUBECONFIG)} PATH=$(abspath $(VENV))/bin:$$PATH $(VENV)/bin/molecule test --all

$(VENV)/.bench-installed: $(VENV)/.installed
	$(PY) -m pip install --quiet -e '.[dev,bench]'
	touch $@

.PHONY: bench
bench: venv $(VENV)/.bench-installed cluster-up ## Benchmarks (not part of make test): PodSet vs the SDK's ansible-operator vs ReplicaSet; QUICK=1 for a short run
	bash hack/build-sdk-operator.sh
	KUBECONFIG=$${KUBECONFIG:-$(LOCAL_KUBECONFIG)} $(KUBECTL) apply -k deploy/crd
	KUBECONFIG=$${KUBECONFIG:-$(LOCAL_KUBECONFIG)} $(KUBECTL) wait --for condition=Established --timeout=60s crd --all
	KUBECONFIG=$${KUBECONFIG:-$(LOCAL_KUBECONFIG)} PATH=$(dir $(KUBECTL)):$$PATH \
		$(PY) -m bench $(if $(QUICK),--quick) $(BENCH_ARGS)

.PHONY: bench-sharding
bench-sharding: venv $(VENV)/.bench-installed cluster-up ## Sharding bench: Examples with 1, 2, 4 replicas and the fallback at 4 (OBJECTS=2000)
	KUBECONFIG=$${KUBECONFIG:-$(LOCAL_KUBECONFIG)} $(KUBECTL) apply -k deploy/crd
	KUBECONFIG=$${KUBECONFIG:-$(LOCAL_KUBECONFIG)} $(KUBECTL) wait --for condition=Established --timeout=60s crd --all
	KUBECONFIG=$${KUBECONFIG:-$(LOCAL_KUBECONFIG)} PATH=$(dir $(KUBECTL)):$$PATH \
		$(PY) -m bench.sharding --objects $(or $(OBJECTS),2000) $(BENCH_ARGS)

.PHONY: sdk-compat
sdk-compat: venv cluster-up ## The Operator SDK's own test operators (its e2e checks, their molecule scenarios) on ansible-core 2.19 and 2.18 (not part of make test)
	bash hack/ansible-venv.sh 2.18 >/dev/null
	@# The runner's own unit tests on 2.18 too (make test runs them on 2.19).
	"$$(bash hack/ansible-venv.sh 2.18 | tail -n 1)/bin/python" -m pytest -m unit -n 2 -q -p no:cacheprovider
	KUBECONFIG=$${KUBECONFIG:-$(LOCAL_KUBECONFIG)} PATH=$(dir $(KUBECTL)):$$PATH \
		$(PY) -m pytest tests/sdk_compat -n 2 --dist loadfile -q -p no:cacheprovider -ra --durations=10

.PHONY: lint
lint: venv ## ruff, mypy, yamllint, ansible-lint
	$(VENV)/bin/ruff check runner tests hack collections bench
	$(VENV)/bin/mypy
	$(VENV)/bin/yamllint -s .
	ANSIBLE_COLLECTIONS_PATH=$(CURDIR)/collections PATH=$(abspath $(VENV))/bin:$$PATH $(VENV)/bin/ansible-lint --offline roles playbooks

$(VENV)/.audit-installed: $(VENV)/.installed
	$(PY) -m pip install --quiet -e '.[dev,audit]'
	touch $@

.PHONY: audit
audit: venv $(VENV)/.audit-installed ## bandit over the code, pip-audit over the venv's packages (needs the network; not in make test)
	VENV=$(VENV) bash hack/audit.sh

.PHONY: clean
clean: ## Remove the virtualenv and local caches of this checkout (not the control-plane binaries)
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache $(DEMO_DIR) *.egg-info
