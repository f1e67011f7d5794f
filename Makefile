# The two commands a newcomer needs: `make run` and `make test`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

# The scale-out leg of the suite: PostgreSQL and Redis on this machine (see .ci/run).
PG_TEST_URL ?= postgres://postgres@127.0.0.1:5432/test
REDIS_TEST_URL ?= redis://127.0.0.1:6379/0

.PHONY: run test test-sqlite test-postgres test-fast lint format setup bench clean

$(STAMP): requirements.txt requirements-dev.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $(STAMP)

setup: $(STAMP)
	$(PY) manage.py migrate --noinput -v 0
	$(PY) manage.py createcachetable
	$(PY) manage.py collectstatic --noinput -v 0
	$(PY) manage.py sync_accounts
	$(PY) manage.py ensure_admin

run: setup
	exec $(PY) manage.py serve

# Both back ends: SQLite + ORM broker (the embedded default), then PostgreSQL + Redis.
test: test-sqlite test-postgres

test-sqlite: $(STAMP)
	$(PY) -m pytest

# The browser tests exercise the page, not the back end, and the query-plan tests read
# SQLite's planner: both run in the SQLite leg.
test-postgres: $(STAMP)
	TEST_DATABASE_URL=$(PG_TEST_URL) TEST_REDIS_URL=$(REDIS_TEST_URL) $(PY) -m pytest -m "not browser and not sqlite_only"

test-fast: $(STAMP)
	$(PY) -m pytest -m "not e2e"

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports --no-logo

format: $(STAMP)
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

clean:
	rm -rf $(VENV) data/pytest* data/test_pytest* test-output
