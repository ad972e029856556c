# Chatsite: the two commands a newcomer needs are `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PORT ?= 8000
HOST ?= 127.0.0.1
# daphne closes a socket with 1009 above this; Chatsite's own limit (CHAT_MAX_FRAME_BYTES,
# 64 KiB) answers smaller oversize frames with an error frame and keeps the socket open.
DAPHNE_FLAGS ?= --websocket-max-message-size 1048576 --websocket-max-frame-size 1048576 --ping-interval 25 --ping-timeout 30 --application-close-timeout 5

.PHONY: run test lint format check clean

$(VENV)/.run-installed: requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.txt
	touch $@

$(VENV)/.dev-installed: requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt
	touch $@ $(VENV)/.run-installed

run: $(VENV)/.run-installed
	$(BIN)/python manage.py migrate --noinput
	$(BIN)/python manage.py ensure_demo_users
	@echo "Chatsite is at http://$(HOST):$(PORT)/  (Ctrl-C stops it)"
	@exec $(BIN)/daphne -b $(HOST) -p $(PORT) $(DAPHNE_FLAGS) chatsite.asgi:application || true

lint: $(VENV)/.dev-installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: $(VENV)/.dev-installed
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

test: $(VENV)/.dev-installed lint
	@scripts/system-deps.sh
	$(BIN)/pytest

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache staticfiles
