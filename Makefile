# Two front doors: `make demo` shows the extension on this host, `make test`
# runs every test tier. Both set up what they need on a fresh Debian machine.
#
# The Salt line and the Python are variables, one venv per Salt line:
#   make test                                   # Salt 3008, python3, every tier (.venv-3008)
#   make test SALT=3007 TIERS="unit functional" # .venv-3007
#   make test SALT=3006 PYTHON=python3.10 TIERS="unit functional"   # the 3006 LTS onedir's Python
#   make docs                                   # the docs site, run/docs/html
#   make test-vm                                # Debian's modular kernel under QEMU (docs/vm.md)
#
# Each line is pinned to its newest patch that installs from the package index
# these machines use. The newest patches (3006.30, 3007.17, 3008.5) require
# certifi>=2026.10.23, which that index does not serve; certifi is pinned to the
# newest it does serve, and Salt to the newest patch that installs with it.
# Raise both together when the index has a newer certifi.
SALT ?= 3008
SALT_3006 := 3006.29
SALT_3007 := 3007.16
SALT_3008 := 3008.4
CERTIFI := 2026.10.19.post1
SALT_PIN = $(or $(SALT_$(SALT)),$(error SALT=$(SALT): no pin, use 3006, 3007 or 3008))

PYTHON ?= python3
TIERS ?= unit functional ssh integration kernel docs vm
# The docs tier builds the site, so its venv needs the docs extras too.
comma := ,
EXTRAS := tests$(if $(filter docs,$(TIERS)),$(comma)docs)
VENV ?= .venv-$(SALT)
PY := $(VENV)/bin/python
SALT_CALL := $(VENV)/bin/salt-call --local -c conf
PYTEST_ARGS ?=
# What to install: this tree, or a wheel built from it (.ci/run builds one and
# hands it to every leg, so parallel installs never build in one tree at once).
PKG ?= .

.PHONY: setup demo test test-vm lint docs bench clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip

# The second install puts the tree as it is now, even where pip sees this
# version installed already (a reused venv, a wheel of the same version).
setup: $(PY)
	./scripts/system-deps
	$(PY) -m pip install -q '$(PKG)[$(EXTRAS)]' 'salt==$(SALT_PIN)' 'certifi==$(CERTIFI)'
	$(PY) -m pip install -q --no-deps --force-reinstall '$(PKG)'

demo: setup
	PATH="/usr/sbin:/sbin:$$PATH" $(SALT_CALL) conntrack.status
	PATH="/usr/sbin:/sbin:$$PATH" $(SALT_CALL) conntrack.check
	PATH="/usr/sbin:/sbin:$$PATH" $(SALT_CALL) conntrack.recommend

test: setup
	PATH="/usr/sbin:/sbin:$$PATH" $(PY) -m pytest -ra $(addprefix tests/,$(TIERS)) $(PYTEST_ARGS)

# The vm tier alone (root): scripts/vm-setup fetches QEMU, virtme-ng and
# Debian's kernel into run/vm/ on first use; two boots, about 6 min under TCG.
test-vm:
	$(MAKE) test TIERS=vm

# ruff: the one lint and format config (pyproject.toml).
lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

# The docs site from docs/ (topics in Markdown, reference pages from the
# docstrings) into run/docs/html; warnings are errors.
docs: setup
	$(PY) -m pip install -q '$(PKG)[docs]'
	$(PY) -m sphinx -W --keep-going -n -q -b html docs run/docs/html
	@echo "docs: run/docs/html/index.html"

# Root, real kernel (bench/run.py says more). BENCH_MODE=full (the default)
# judges every target; BENCH_MODE=short runs every benchmark small and once,
# figures printed, not judged: what CI runs, so a broken benchmark fails fast.
#   make bench BENCH_MODE=short
#   make bench BENCHES=bench_table
BENCH_MODE ?= full
BENCHES ?=
bench: setup
	PATH="/usr/sbin:/sbin:$$PATH" BENCH_MODE=$(BENCH_MODE) $(PY) bench/run.py $(BENCHES)

clean:
	rm -rf .venv .venv-* run build dist *.egg-info
