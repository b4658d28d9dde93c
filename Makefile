# dicomhub: two commands set everything up.
#   make demo   a running archive with synthetic data
#   make test   the test services, the whole test suite, then lint
# Other targets: venv, deps-test, lint, bench, services-up, services-down, clean, distclean.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
SERVICES_DIR := .services
SERVICES := $(BIN)/python -m tests.fixtures.servicelib
PYTEST_ARGS ?=
PYTEST_WORKERS ?= 2
APT_PACKAGES := postgresql slapd ldap-utils dcmtk chromium fonts-dejavu-core
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: help venv deps-test test lint demo bench services-up services-down clean distclean

help:
	@echo "make demo    run the archive locally with synthetic sample data"
	@echo "make test    install test dependencies, start the test services, run tests and lint"

venv: $(STAMP)

# Rebuilt whenever pyproject.toml changes; a no-op otherwise.
$(STAMP): pyproject.toml
	@[ -x $(BIN)/python ] || $(PYTHON) -m venv $(VENV) || { \
	  echo "python3 -m venv failed; installing python3-venv"; \
	  $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get update -q </dev/null; \
	  $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -q python3-venv </dev/null; \
	  rm -rf $(VENV); $(PYTHON) -m venv $(VENV); }
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	@touch $@

# Debian packages the test services need; apt is only touched when one is missing.
deps-test:
	@missing=""; \
	for pkg in $(APT_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' "$$pkg" 2>/dev/null | grep -q 'install ok installed' \
	    || missing="$$missing $$pkg"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  echo "slapd slapd/no_configuration boolean true" | $(SUDO) debconf-set-selections; \
	  $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get update -q </dev/null; \
	  $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
	    --no-install-recommends -o Dpkg::Options::=--force-confdef \
	    -o Dpkg::Options::=--force-confold $$missing </dev/null; \
	fi

# Services start once for the run and stop whatever happens; exit status is pytest's,
# or lint's when the tests passed.
test: venv deps-test
	@trap '$(SERVICES) down --dir $(SERVICES_DIR)' EXIT; trap 'exit 130' INT TERM; \
	$(SERVICES) up --dir $(SERVICES_DIR) --owner $$$$; \
	set -a; . $(SERVICES_DIR)/env; set +a; \
	status=0; \
	DICOMHUB_REQUIRE_SERVICES=1 $(BIN)/pytest -n $(PYTEST_WORKERS) --dist worksteal $(PYTEST_ARGS) || status=$$?; \
	$(SERVICES) down --dir $(SERVICES_DIR); \
	lint=0; ( $(LINT) ) || lint=$$?; \
	if [ $$status -eq 0 ]; then status=$$lint; fi; \
	exit $$status

# Both linters always run, so one report shows everything.
LINT = status=0; \
	echo "ruff check src tests"; $(BIN)/ruff check src tests || status=1; \
	echo "mypy (strict)"; $(BIN)/mypy || status=1; \
	exit $$status

lint: venv
	@$(LINT)

services-up: venv
	$(SERVICES) up --dir $(SERVICES_DIR)
	@echo "now: . $(SERVICES_DIR)/env"

services-down: venv
	$(SERVICES) down --dir $(SERVICES_DIR)

demo: venv
	DICOMHUB_DEMO=1 $(BIN)/dicomhub demo

bench: venv
	@if [ -f bench/run.py ]; then $(BIN)/python bench/run.py; else echo "no bench/run.py yet"; fi

clean:
	@if [ -x $(BIN)/python ]; then $(SERVICES) down --dir $(SERVICES_DIR); fi
	rm -rf $(SERVICES_DIR) build dist src/*.egg-info .pytest_cache .mypy_cache .ruff_cache .hypothesis
	find . -path ./$(VENV) -prune -o -name __pycache__ -type d -exec rm -rf {} +

distclean: clean
	rm -rf $(VENV)
