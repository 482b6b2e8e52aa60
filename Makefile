# The README's commands. Everything runs inside .venv in the checkout.
#   make demo   set up, build, and run the pipeline against the embedded simulator
#   make test   set up, build, and run the test suite
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: demo test build bench clean annotate venv

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade pip

# Reinstall (and so rebuild the extensions) whenever a build input changes.
$(STAMP): $(PY) pyproject.toml setup.py $(wildcard ext/*.pyx ext/*.pxd)
	$(PY) -m pip install -e '.[test]'
	touch $(STAMP)

venv: $(STAMP)

build: $(STAMP)

demo: $(STAMP)
	$(PY) scripts/bus_demo.py --seconds 10

test: $(STAMP)
	$(PY) -m pytest $(PYTEST_ARGS)

bench: $(STAMP)
	@for b in scripts/bench_*.py; do echo "== $$b"; $(PY) $$b --quick || exit 1; done

annotate: $(PY)
	PIPELINE_ANNOTATE=1 $(PY) -m pip install -e '.[test]'
	@echo "annotated HTML written next to each ext/*.pyx"

clean:
	rm -rf build $(VENV) *.egg-info ext/*.c ext/*.cpp ext/*.html pipeline/_ext/*.so demo-out
