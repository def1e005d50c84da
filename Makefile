# Entry points. Every target bootstraps .venv on first use (tools/bootstrap.sh).
# Command-line variables (TEST=..., S=..., SEED=...) are handed to the Python tools, which
# declare and validate them with ita/cli.py: a one-line usage error on anything unknown,
# and HELP=1 lists a target's keys with their defaults.

VENV    := .venv
PY      := $(VENV)/bin/python
STAMP   := $(VENV)/.bootstrap-stamp
JOBS    ?= 2
# Command-line KEY=VALUE pairs, e.g. "TEST=ita_attention S=128".
ARGS    := $(MAKEOVERRIDES)
# make regress on a Dask cluster: DASK may also come from the environment.
DASK_ARG := $(if $(filter environment,$(origin DASK)),DASK=$(DASK))

.DEFAULT_GOAL := help
.PHONY: help setup test test-models sim vectors verilog regs lint clean regress coverage fpga run bench formal evaluate

help:
	@echo "make setup                         create .venv (done implicitly by every target)"
	@echo "make test                          run the CI test suite"
	@echo "make test-models                   real models on the cluster (SmolLM2 generates; minutes)"
	@echo "make sim TEST=<name> [KEY=VALUE]   run one simulation; 'make sim TEST=list' lists them"
	@echo "                                   (engine size: ARRAY_N= ARRAY_M=; N= is a matrix size)"
	@echo "make run APP=<name> [MAX_CYCLES=n] run sw/apps/<name> on the cluster in the fast C++ harness"
	@echo "make vectors [S= E= P= F= H= ACT= SEED= OUT=]   write golden vectors"
	@echo "make verilog TOP=ita|ita_hwpe|cluster [CONFIG=small|default|large] [ARRAY_N= ARRAY_M=]"
	@echo "                                   write build/verilog/<top>/ (<top>.v, <top>.f) and lint it"
	@echo "make fpga TOP=ita|ita_hwpe|board [CONFIG=small] [FAMILY=ecp5|xilinx|ice40] [FREQ=MHz]"
	@echo "                                   yowasp synthesis (+ ECP5 place and route, Fmax);"
	@echo "                                   TOP=board: ULX3S self-test bitstream"
	@echo "make regs                          regenerate the ITA HWPE register header, model, docs,"
	@echo "                                   the cluster memory map header and linker script"
	@echo "make regress [SEEDS=n] [JOBS=n]    the regression list, n seeds each (JUnit, summary, waves of failures)"
	@echo "                                   DASK=tcp://host:8786 or DASK=local:<n>: on a Dask cluster"
	@echo "make coverage [SEEDS=n] [JOBS=n]   functional + line/toggle coverage reports in build/coverage/"
	@echo "make bench [QUICK=1] [ONLY=engine,hwpe,cluster,kernels,encoder,speed] [REPEATS=n]"
	@echo "                                   benchmarks: build/bench/report.md, PNG plots, results.json"
	@echo "make formal [ONLY=a,b] [DEPTH=n]   formal properties (BMC, k-induction, covers, broken variants)"
	@echo "make evaluate MODEL=minilm|smollm2 IN=<file> [PAIRS=] [OUT=] [POSITIONS=]"
	@echo "                                   the integer model against the float model on your text (no RTL)"
	@echo "make lint                          lint the Python sources"
	@echo "make clean                         remove build outputs"
	@echo "HELP=1 on sim, run, vectors, verilog, fpga, regress, coverage, bench, evaluate: its keys and defaults"

$(STAMP): requirements.txt requirements-models.txt tools/bootstrap.sh
	@tools/bootstrap.sh

setup: $(STAMP)

test: $(STAMP)
	@mkdir -p build
	$(PY) -m pytest -n $(JOBS) --junitxml=build/test-results.xml $(PYTEST_ARGS)

test-models: $(STAMP)
	$(PY) -m pytest -m model_run $(PYTEST_ARGS)

sim: $(STAMP)
	@$(PY) -m verif.sim $(ARGS)

run: $(STAMP)
	@$(PY) -m verif.harness.run $(ARGS)

vectors: $(STAMP)
	@$(PY) -m ita.golden $(ARGS)

verilog: $(STAMP)
	@$(PY) -m hw.verilog $(ARGS)

fpga: $(STAMP)
	@$(PY) -m hw.fpga_cli $(ARGS)

regs: $(STAMP)
	@$(PY) -m cluster_integration.hwpe.regmap_gen
	@$(PY) -m cluster_integration.memory_map_gen

regress: $(STAMP)
	@$(PY) -m verif.regress $(ARGS) $(DASK_ARG)

coverage: $(STAMP)
	@$(PY) -m verif.coverage_cli $(ARGS)

bench: $(STAMP)
	@$(PY) -m bench $(ARGS)

formal: $(STAMP)
	@$(PY) -m formal $(ARGS)

evaluate: $(STAMP)
	@$(PY) -m ita.quant.evaluate $(ARGS)

lint: $(STAMP)
	$(PY) -m ruff check .

clean:
	rm -rf build .pytest_cache .ruff_cache
