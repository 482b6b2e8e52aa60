# The README's commands. Everything runs inside .venv in the checkout.
#   make demo   set up, build, and run the pipeline against the embedded simulator
#   make test   set up, build, and run the test suite
#   make fuzz   coverage-guided fuzzing (atheris) of the parsers and the risk kernel, FUZZ_SECONDS each
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: demo bus-demo test build bench soak clean annotate venv fuzz fuzz-seed chaos-long

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade pip

# Reinstall (and so rebuild the extensions) whenever a build input changes.
$(STAMP): $(PY) pyproject.toml setup.py $(wildcard ext/*.pyx ext/*.pxd ext/*.pxi)
	$(PY) -m pip install -e '.[test]'
	touch $(STAMP)

venv: $(STAMP)

build: $(STAMP)

# The simulator's documented HMAC test keys (a public Binance test vector), in a 0600 file: the
# gateway reads credentials only from the environment or such a file.
SIM_KEY    := vmPUZE6mv9SD5VNHk4HlWFsOr6aKE2zvsw0MuIgwCIPy6utIco14y7Ju91duEh8A
SIM_SECRET := NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j
DEMO_SECONDS ?= 20

demo-out/sim-keys:
	@mkdir -p demo-out
	@umask 077 && printf 'api_key=%s\napi_secret=%s\n' '$(SIM_KEY)' '$(SIM_SECRET)' > $@

# The whole pipeline on the embedded simulator for DEMO_SECONDS, then a summary and PNG plots:
# `pipeline demo` (pipeline/cli.py) writes the keys file, empties demo-out/gateway-state and
# demo-out/run (the simulator starts empty every run, so does the gateway's state) and runs it.
demo: $(STAMP)
	$(PY) -m pipeline.cli demo --seconds $(DEMO_SECONDS)

bus-demo: $(STAMP)
	$(PY) scripts/bus_demo.py --seconds 10

test: $(STAMP)
	$(PY) -m pytest $(PYTEST_ARGS)

# Each harness for FUZZ_SECONDS (default 300): new inputs go to fuzz/work/<harness> (not kept),
# the stored corpus fuzz/corpus/<harness> is read; a crash is written to fuzz/artifacts/ and stops
# the run (docs/testing.md: fix it, then keep the input in the corpus as crash-<what>).
FUZZ_SECONDS ?= 300
FUZZ_HARNESSES ?= ws_binance ws_okx rest_reply risk_kernel
fuzz: $(STAMP)
	@mkdir -p fuzz/artifacts
	@for h in $(FUZZ_HARNESSES); do echo "== fuzz $$h ($(FUZZ_SECONDS) s)"; mkdir -p fuzz/work/$$h; \
	  $(PY) -m fuzz.$$h fuzz/work/$$h fuzz/corpus/$$h -max_total_time=$(FUZZ_SECONDS) \
	    -max_len=8192 -rss_limit_mb=2048 -artifact_prefix=fuzz/artifacts/$$h- -print_final_stats=1 \
	    || exit 1; done

fuzz-seed: $(STAMP)
	$(PY) -m fuzz.seed

# The chaos tests at length (the suite runs each start order once): CHAOS_RUNS seeded start-order
# runs (each ~6 s), then the rest of tests/chaos (docs/testing.md).
CHAOS_RUNS ?= 60
chaos-long: $(STAMP)
	START_ORDER_RUNS=$(CHAOS_RUNS) $(PY) -m pytest tests/chaos -q -p no:cacheprovider

# The chaos soak (scripts/soak.py, docs/trading-box.md): roles killed and stopped at random,
# venue faults injected, then the venue and the journal compared.
SOAK_MINUTES ?= 10
SOAK_SEED ?= 1
soak: $(STAMP)
	$(PY) scripts/soak.py --minutes $(SOAK_MINUTES) --seed $(SOAK_SEED) --json bench-results/soak.json

bench: $(STAMP)
	@for b in scripts/bench_*.py; do echo "== $$b"; $(PY) $$b --quick || exit 1; done

annotate: $(PY)
	PIPELINE_ANNOTATE=1 $(PY) -m pip install -e '.[test]'
	@echo "annotated HTML written next to each ext/*.pyx"

clean:
	rm -rf build $(VENV) *.egg-info ext/*.c ext/*.cpp ext/*.html pipeline/_ext/*.so demo-out
