# WardWatch: `make demo` and `make test` work from a fresh clone on Debian/Ubuntu.
# Each installs what it needs (Debian packages, a venv with the project, npm packages),
# runs its own Mosquitto and InfluxDB on free loopback ports, and stops them on exit.

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: deps venv npm test demo bench bench-ppg bench-alarms bench-broker bench-faults bench-storage clean

deps:
	@sh provisioning/stack/install-deps.sh

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

# pyright, to type-check the firmware against the board stubs.
PYRIGHT := tests/firmware/typecheck/node_modules/.bin/pyright
$(PYRIGHT): tests/firmware/typecheck/package.json
	cd tests/firmware/typecheck && npm install --no-audit --no-fund --no-package-lock --silent
	@touch $(PYRIGHT)

npm: deps $(MPY_NPM) $(PYRIGHT)

# MicroPython's board stubs, one folder per board (they cannot share one environment).
STUBS_VERSION := 1.29.0.post1
.stubs/%/machine.pyi: | venv
	$(PY) -m pip install -q --target .stubs/$* micropython-$*-stubs==$(STUBS_VERSION)

stubs: .stubs/esp32/machine.pyi .stubs/rp2/machine.pyi

test: venv npm stubs
	$(PY) -m pytest -q

demo: venv
	$(PY) -m provisioning.stack.demo

# One JSON line per script (bench/README.md): throughput and CPU, alarm latency at 5,000/s, spool drain.
bench: venv
	$(PY) bench/throughput.py
	$(PY) bench/alarm_latency.py --loads 5000 --ramp '' --seconds 20
	$(PY) bench/spool_drain.py

bench-ppg: venv
	$(PY) bench/ppg_accuracy.py

bench-alarms: venv
	$(PY) bench/alarm_latency.py

bench-broker: venv
	$(PY) bench/broker_persistence.py

bench-faults: venv
	$(PY) bench/faults.py

bench-storage: venv
	$(PY) bench/storage.py

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis build *.egg-info tests/firmware/mpy/node_modules tests/firmware/typecheck/node_modules .stubs .run
