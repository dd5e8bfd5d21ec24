# tiertrace task entry point: make demo | test | lint | bench | assets | docs
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
STAMP := $(VENV)/.installed

.PHONY: demo test lint bench bench-quick assets docs soak venv clean

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q -e '.[all,dev]'
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/tiertrace demo $(DEMO_ARGS)

# pytest exits 5 when no test ran (a typo in PYTEST_ARGS, an empty selection): a failure too
test: $(STAMP)
	@$(PY) -m pytest -q -p no:cacheprovider $(PYTEST_ARGS); status=$$?; \
	if [ $$status -eq 5 ]; then echo "make test: no tests ran (pytest exit status 5)" >&2; fi; \
	exit $$status

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests benchmarks tools
	$(VENV)/bin/ruff format --check src tests benchmarks tools
	$(VENV)/bin/mypy --strict src/tiertrace
	$(PY) -m tools.generate --check

bench: $(STAMP)
	$(PY) benchmarks/overhead.py $(BENCH_ARGS)

bench-quick: $(STAMP)
	$(PY) benchmarks/overhead.py --quick

assets: $(STAMP)
	$(PY) -m tools.generate --write

docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict -d site

soak: $(STAMP)
	$(PY) benchmarks/soak.py $(SOAK_ARGS)

clean:
	rm -rf $(VENV) build dist site .mypy_cache .ruff_cache
