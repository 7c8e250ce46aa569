# The two set-up commands: `make run` (install, migrate, demo users, serve on
# 127.0.0.1:8000) and `make test` (install, run the whole suite).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: run test install

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

run: $(STAMP)
	DEBUG=$${DEBUG:-1} $(PY) manage.py migrate --no-input
	DEBUG=$${DEBUG:-1} $(PY) manage.py aegis_demo
	DEBUG=$${DEBUG:-1} $(PY) manage.py aegis_attestation_keys generate --if-none
	DEBUG=$${DEBUG:-1} $(PY) manage.py runserver 127.0.0.1:8000

test: $(STAMP)
	$(PY) -m pytest $(PYTEST_ARGS)
