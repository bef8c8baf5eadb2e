# The two commands of the README: `make demo` and `make test`. Both install what they need and build
# (or reuse) the real Kubernetes control plane from its Go modules (hack/kube/build.sh).
VENV ?= .venv
PY := $(VENV)/bin/python
PIP_FLAGS ?= -q
# The release every test and the demo run on, and the oldest we support (the compatibility job).
KUBE_VERSION ?= v1.37.2
KUBE_OLDEST ?= v1.34.4
PYTEST := $(PY) -m pytest -q -p no:cacheprovider

.PHONY: install demo test test-compat lint kube kube-oldest bench crd sandbox

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install $(PIP_FLAGS) --upgrade pip
	$(PY) -m pip install $(PIP_FLAGS) -e '.[dev]'
	touch $@

# Cached in ~/.cache/modeldeploy/kube/<version>/ (MODELDEPLOY_KUBE_CACHE); a cold build takes minutes.
kube:
	bash hack/kube/build.sh $(KUBE_VERSION)

kube-oldest:
	bash hack/kube/build.sh $(KUBE_OLDEST)

demo: install kube
	$(VENV)/bin/modeldeploy demo

sandbox: install kube
	$(VENV)/bin/modeldeploy sandbox up

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

# Every test on the newest release, then the compatibility job (CRD install and the invalid-object
# matrix) on the oldest.
test: lint kube kube-oldest
	MODELDEPLOY_KUBE_VERSION=$(KUBE_VERSION) $(PYTEST)
	$(MAKE) --no-print-directory test-compat

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
