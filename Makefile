# Two commands for a fresh machine:  `make run`  and  `make test`.
# Each sets itself up: a virtual environment in .venv, the Python requirements
# (torch pinned to 2.13.0) and the offline 3Dmol.js asset from npm.

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
PORT   ?= 8501

.PHONY: run test setup setup-dev assets clean help
.DEFAULT_GOAL := help

help:
	@echo "make run    set up and open the dashboard (http://localhost:$(PORT))"
	@echo "make test   set up and run the test suite"

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --upgrade pip >/dev/null

# Re-install only when a requirements file changes.
$(VENV)/.runtime-stamp: requirements.txt pyproject.toml | $(PY)
	$(PIP) install -r requirements.txt
	$(PIP) install --no-deps -e .
	touch $@

$(VENV)/.dev-stamp: requirements-dev.txt requirements-cluster.txt $(VENV)/.runtime-stamp
	$(PIP) install -r requirements-dev.txt
	touch $@

# 3Dmol.js is served from the package, never from a CDN (see ccvae/viz/assets.py).
ASSET := ccvae/viz/static/3Dmol-min.js
$(ASSET): package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	mkdir -p $(dir $@)
	cp node_modules/3dmol/build/3Dmol-min.js $@

assets: $(ASSET)
setup: $(VENV)/.runtime-stamp assets
setup-dev: $(VENV)/.dev-stamp assets
	@bash scripts/install-browser.sh

run: setup
	$(VENV)/bin/streamlit run app.py --server.port $(PORT)

test: setup-dev
	$(PY) -m pytest

clean:
	rm -rf $(VENV) node_modules .pytest_cache .hypothesis
