# The two commands a user needs: `make run` (the whole stack, console chat) and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: run test test-heavy lint bench catalogs clean

$(STAMP): requirements.txt requirements-dev.txt
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11+ is needed (set PYTHON=...)")'
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $(STAMP)

run: $(STAMP)
	@$(PY) -m dev

test: $(STAMP)
	$(PY) -m pytest

# The chaos and fuzz tests at ten times the size (minutes, not seconds); not part of `make test`.
test-heavy: $(STAMP)
	HEAVY=1 $(PY) -m pytest --timeout=900 tests/test_chaos.py tests/test_fuzz.py

lint: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m mypy
	$(VENV)/bin/lint-imports

# After changing a text users read: the template from the code, then each language's catalog
# updated from it (new texts untranslated: tests/test_i18n.py fails until they are translated).
catalogs: $(STAMP)
	$(VENV)/bin/pybabel extract -F babel.cfg -k t -k tn:1,2 -k N_ --no-location --sort-output \
		--omit-header -o bot/locale/messages.pot .
	$(VENV)/bin/pybabel update -i bot/locale/messages.pot -d bot/locale --no-fuzzy-matching \
		--ignore-obsolete --ignore-pot-creation-date -w 100

bench: $(STAMP)
	$(PY) bench/gate.py

clean:
	rm -rf $(VENV) .run .pytest_cache .mypy_cache .ruff_cache
