# Two front doors: `make demo` shows the extension on this host, `make test`
# runs every test tier. Both set up what they need on a fresh Debian machine.
VENV ?= .venv
PY := $(VENV)/bin/python
SALT_CALL := $(VENV)/bin/salt-call --local -c conf
PYTEST_ARGS ?=

.PHONY: setup demo test bench clean

$(PY):
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip

setup: $(PY)
	./scripts/system-deps
	$(PY) -m pip install -q '.[tests]'

demo: setup
	PATH="/usr/sbin:/sbin:$$PATH" $(SALT_CALL) conntrack.status
	PATH="/usr/sbin:/sbin:$$PATH" $(SALT_CALL) conntrack.check
	PATH="/usr/sbin:/sbin:$$PATH" $(SALT_CALL) conntrack.recommend

test: setup
	PATH="/usr/sbin:/sbin:$$PATH" $(PY) -m pytest -ra $(PYTEST_ARGS)

bench: setup
	PATH="/usr/sbin:/sbin:$$PATH" $(PY) bench/run.py

clean:
	rm -rf $(VENV) run build *.egg-info
