# The two commands of the README: `make demo` and `make test`. Both install what they need and build
# (or reuse) the real Kubernetes control plane from its Go modules (hack/kube/build.sh).
VENV ?= .venv
PY := $(VENV)/bin/python
PIP_FLAGS ?= -q
# The release every test and the demo run on, and the oldest we support (the compatibility job).
KUBE_VERSION ?= v1.37.2
KUBE_OLDEST ?= v1.34.4
PYTEST := $(PY) -m pytest -q -p no:cacheprovider

.PHONY: install install-demo demo test test-compat test-reliability lint kube kube-oldest bench crd sandbox

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install $(PIP_FLAGS) --upgrade pip
	$(PY) -m pip install $(PIP_FLAGS) -e '.[dev]'
	touch $@

# What `make demo` needs and nothing more: the `demo` extra (operator, modelserver, the sandbox's chart
# rendering and ONNX models; no torch, no test tools), ~700 MB. pip shows its progress (no -q). Measured
# on a first run with an empty pip cache: 35 s; `make install` (the dev extra) reuses this venv.
DEMO_PIP_FLAGS ?= --progress-bar on
install-demo: $(VENV)/.installed-demo

$(VENV)/.installed-demo: pyproject.toml
	@echo "make demo [1/3]: Python packages of the 'demo' extra into $(VENV) (first run: about 35 s with a fast network)"
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install $(DEMO_PIP_FLAGS) -e '.[demo]'
	touch $@

# Cached in ~/.cache/modeldeploy/kube/<version>/ (MODELDEPLOY_KUBE_CACHE); a cold build takes minutes.
kube:
	bash hack/kube/build.sh $(KUBE_VERSION)

kube-oldest:
	bash hack/kube/build.sh $(KUBE_OLDEST)

# First run, measured on 2 cores: 35 s of installs (empty pip cache), the control plane's cold build
# (about 5 min, see the README), then the demo itself (50 s idle, up to 90 s busy). Later runs skip the first two.
demo: install-demo
	@echo "make demo [2/3]: the Kubernetes $(KUBE_VERSION) control plane (cached after the first build: about 5 min on 2 cores)"
	@$(MAKE) --no-print-directory kube
	@echo "make demo [3/3]: the demo on the local control plane (about 1 min; 'modeldeploy demo --quick': 30 s)"
	$(VENV)/bin/modeldeploy demo

sandbox: install-demo kube
	$(VENV)/bin/modeldeploy sandbox up

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

# Every test on the newest release, then the compatibility job (CRD install and the invalid-object
# matrix) on the oldest.
test: lint kube kube-oldest
	MODELDEPLOY_KUBE_VERSION=$(KUBE_VERSION) $(PYTEST) -m "not reliability"
	$(MAKE) --no-print-directory test-compat

# The long reliability campaigns (tests/reliability, marked `reliability`): the 20-point kill -9
# table, the two-replica failover and a canary beside 1,000 Progressing objects, ~12 min. The soak is
# `$(PY) bench/soak.py`.
test-reliability: install kube
	MODELDEPLOY_KUBE_VERSION=$(KUBE_VERSION) $(PYTEST) -s -m reliability tests/reliability

test-compat: install kube-oldest
	MODELDEPLOY_KUBE_VERSION=$(KUBE_OLDEST) $(PYTEST) -m compat

crd: install
	$(VENV)/bin/modeldeploy crd --write crds/
	cp crds/serving.modeldeploy.dev_modeldeployments.yaml charts/modeldeploy/crds/
	$(PY) -m modeldeploy.api.reference > docs/reference.md

bench: install kube
	$(PY) bench/controlplane.py
	$(PY) bench/reconcile.py
	$(PY) bench/rollout.py
	$(PY) bench/runtime.py
