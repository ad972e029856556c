# Chatsite: the two commands a newcomer needs are `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PORT ?= 8000
HOST ?= 127.0.0.1
# daphne closes a socket with 1009 above this; Chatsite's own limit (CHAT_MAX_FRAME_BYTES,
# 64 KiB) answers smaller oversize frames with an error frame and keeps the socket open.
DAPHNE_FLAGS ?= --websocket-max-message-size 1048576 --websocket-max-frame-size 1048576 --ping-interval 25 --ping-timeout 30 --application-close-timeout 5

.PHONY: run test test-fast lint format check clean frontend frontend-test bench soak lock

# Both installs hold every package the lock names at its locked version (the lock without its
# hashes, as constraints: pip's hash mode would demand hashes of the dev tools too). Without it a
# fresh clone took whatever PyPI released that morning (idna 3.21 over the lock's 3.20).
CONSTRAINTS := $(VENV)/constraints.txt

$(CONSTRAINTS): requirements.lock
	mkdir -p $(VENV)
	sed -e '/^ *--hash=/d' -e 's/ *\\$$//' requirements.lock > $@

$(VENV)/.run-installed: requirements.txt $(CONSTRAINTS)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.txt -c $(CONSTRAINTS)
	touch $@

$(VENV)/.dev-installed: requirements.txt requirements-dev.txt $(CONSTRAINTS)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt -c $(CONSTRAINTS)
	touch $@ $(VENV)/.run-installed

run: $(VENV)/.run-installed
	$(BIN)/python manage.py migrate --noinput
	$(BIN)/python manage.py ensure_demo_users
	@echo "Chatsite is at http://$(HOST):$(PORT)/  (Ctrl-C stops it)"
	@if [ -f frontend/dist/index.html ]; then echo "The React app is at http://$(HOST):$(PORT)/app/"; \
	else echo "The React app (http://$(HOST):$(PORT)/app/) is not built: \`make frontend\` builds it (needs Node.js 20.19+)"; fi
	@exec $(BIN)/daphne -b $(HOST) -p $(PORT) $(DAPHNE_FLAGS) chatsite.asgi:application || true

# The whole runtime tree pinned with hashes, for every platform (the image installs it with
# --require-hashes; amd64 and arm64 wheels alike). Run after changing requirements.txt.
# Only uv is installed first: a changed requirements.txt may no longer fit the old lock's pins.
lock:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet "$$(grep -m1 '^uv==' requirements-dev.txt)"
	$(BIN)/uv pip compile requirements.txt --generate-hashes --universal --python-version 3.11 --no-header -o requirements.lock

lint: $(VENV)/.dev-installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: $(VENV)/.dev-installed
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

# The React client (frontend/): `make run` never needs Node; this builds the app that
# /app/ serves (Node.js 20.19+ and npm). See frontend/README.md.
frontend:
	cd frontend && npm ci --no-audit --no-fund && npm run build

# Vitest for the React client, then the build its browser tests drive. Without npm this
# fails in CI and only prints a notice on a developer's machine.
frontend-test:
	@if command -v npm >/dev/null 2>&1; then \
	  cd frontend && npm ci --no-audit --no-fund --loglevel=error && npx vitest run && npm run build; \
	elif [ "$${CI:-}" = "true" ]; then \
	  echo "ERROR: npm not found. CI needs Node.js 20.19+ and npm for the React client's tests (frontend/README.md)." >&2; \
	  exit 1; \
	else \
	  echo "NOTICE: npm not found: skipping the React client's unit tests and build; its browser tests will skip."; \
	  echo "        Install Node.js 20.19+ and npm to run them (frontend/README.md)."; \
	fi

# pytest-xdist: PYTEST_WORKERS processes, each taking whole test files (a file's servers and
# fixtures start once, in one worker); PYTEST_WORKERS=0 runs everything in one process.
# Three on this 2-core machine: the tests wait on daphne processes, browsers and sockets for
# about a fifth of a two-worker run, and a third worker fills it (docs/performance.md, the suite).
# The 25 slowest tests are listed at the end: where `make test`'s time goes (issue 22).
PYTEST_WORKERS ?= 3
test: $(VENV)/.dev-installed lint frontend-test
	@scripts/system-deps.sh
	$(BIN)/pytest -n $(PYTEST_WORKERS) --dist loadfile --durations=25

# The inner loop (about 2 minutes on a quiet machine: 1.8-2.0 with the workers `make test` uses,
# 3.4 in one process): ruff and the unit and integration tests of chat/, accounts/ and
# deploy/ (real moto and Redis servers, no browsers, no clusters).
# `scripts/under-load.sh make test` runs the whole suite with every core kept busy.
test-fast: $(VENV)/.dev-installed
	$(BIN)/ruff check .
	$(BIN)/pytest -n $(PYTEST_WORKERS) --dist loadfile chat accounts deploy

# The quick benchmark (under 3 minutes): Chatsite, the Channels tutorial peer and a bare
# websockets server side by side; writes bench/results/latest.json. See docs/performance.md.
bench: $(VENV)/.dev-installed
	$(BIN)/python -m bench.run

# The soak (about 30 minutes; not part of make test): 300 clients with churn and rolling
# deploys on HAProxy + two daphne + Redis; memory, Redis keys and connection rows must stay
# level and every room pass the fault suite's invariant check. SOAK_ARGS="--minutes 5" etc.
# See docs/reliability.md.
soak: $(VENV)/.dev-installed
	@scripts/system-deps.sh
	$(BIN)/python -m bench.soak $(SOAK_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache staticfiles frontend/dist frontend/node_modules
