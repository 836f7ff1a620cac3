# WardWatch: `make demo` and `make test` work from a fresh clone on Debian/Ubuntu.
# Each installs what it needs (Debian packages, a venv with the project, npm packages),
# runs its own Mosquitto and InfluxDB on free loopback ports, and stops them on exit.

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: deps venv npm test demo bench bench-ppg clean

deps:
	@sh tests/stack/install-deps.sh

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	@touch $(STAMP)

venv: deps $(STAMP)

# Real MicroPython (WebAssembly port) for the firmware tests, pinned in package.json.
MPY_NPM := tests/firmware/mpy/node_modules/@micropython/micropython-webassembly-pyscript
$(MPY_NPM): tests/firmware/mpy/package.json
	cd tests/firmware/mpy && npm install --no-audit --no-fund --no-package-lock --silent
	@touch $(MPY_NPM)

npm: deps $(MPY_NPM)

test: venv npm
	$(PY) -m pytest -q

demo: venv
	$(PY) -m wardstack.demo

bench: venv
	$(PY) bench/throughput.py

bench-ppg: venv
	$(PY) bench/ppg_accuracy.py

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis build *.egg-info tests/firmware/mpy/node_modules .run
