# Switchboard: `make run` starts the dashboard, `make test` runs every check.
# Both create .venv with Python 3.12 and install the pinned dependencies first.

PYTHON ?= $(shell command -v python3.12 || (command -v pyenv >/dev/null && pyenv which python3.12 2>/dev/null) || echo python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test sandbox bench install clean-data

$(STAMP): requirements.txt requirements-dev.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/python -c 'import sys; assert sys.version_info[:2] == (3, 12), "Switchboard needs Python 3.12, this venv has %s" % sys.version.split()[0]'
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt
	@touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(BIN)/python -m devtools.run

test: $(STAMP)
	$(BIN)/python -m devtools.testrun $(ARGS)

sandbox: $(STAMP)
	$(BIN)/python -m sandbox

bench: $(STAMP)
	$(BIN)/python -m devtools.testrun --bench $(ARGS)

clean-data:
	rm -rf .data
