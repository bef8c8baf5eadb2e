# The two commands of the README: `make demo` and `make test`. Both install what they need.
VENV ?= .venv
PY := $(VENV)/bin/python
PIP_FLAGS ?= -q

.PHONY: install demo test lint unit bench crd

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install $(PIP_FLAGS) --upgrade pip
	$(PY) -m pip install $(PIP_FLAGS) -e '.[dev]'
	touch $@

demo: install
	$(VENV)/bin/modeldeploy demo

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

test: lint
	$(PY) -m pytest -q -p no:cacheprovider

crd: install
	$(VENV)/bin/modeldeploy crd --write crds/
	cp crds/serving.modeldeploy.dev_modeldeployments.yaml charts/modeldeploy/crds/
	$(PY) -m modeldeploy.api.reference > docs/reference.md

bench: install
	$(PY) bench/reconcile.py
	$(PY) bench/rollout.py
	$(PY) bench/runtime.py
