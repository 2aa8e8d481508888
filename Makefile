# notification-emergency: the commands (see README.md and CONTRIBUTING.md) and their parts.
#   make demo   set everything up, bring up a sandbox host with the reference service, show its health
#   make check  the inner loop: the linters and the tests that need no sandbox, stack, PostgreSQL or browser
#   make test   set everything up and run every test and linter (what CI runs)
#   make collection  build the Ansible collection notification.emergency (build/*.tar.gz)
SHELL := /bin/bash
VENV ?= $(CURDIR)/.venv
export PATH := $(VENV)/bin:$(PATH)
export ANSIBLE_CONFIG := $(CURDIR)/ansible.cfg
export PYTHONDONTWRITEBYTECODE := 1
SANDBOX_SIZE ?= 1
# The costly tests, marked by tests/conftest.py from the fixtures they use: `make check` leaves them out.
COSTLY_TESTS := sandbox or postgres or browser or stack
# Parallel pytest processes of `make check` and `make test` (pytest-xdist; each has its own sandbox host and ports).
# A whole test file stays on one worker (--dist loadfile): module fixtures and ordered tests stay together.
PYTEST_WORKERS ?= auto
PYTHON_DIRS := src tests bench library action_plugins module_utils filter_plugins strategy_plugins callback_plugins reference_app scripts rulebooks
MOLECULE_LOG := $(CURDIR)/.cache/molecule.log

.PHONY: demo check test bootstrap lint sanity collection pytest molecule molecule-logged sandbox-up sandbox-down bench clean help

help: ## Show the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-14s %s\n", $$1, $$2}'

demo: bootstrap ## Set up, bring up one sandbox host, show its health and what to try next
	ansible-playbook playbooks/sandbox_up.yml -e sandbox_size=$(SANDBOX_SIZE)
	notification-emergency status
	@scripts/next_steps.sh

check: bootstrap ## The inner loop (under 5 min): ruff, format, mypy, yamllint, the tests without a sandbox/stack/db/browser
	ruff check .
	ruff format --check $(PYTHON_DIRS)
	mypy
	yamllint -s .
	pytest -q -n $(PYTEST_WORKERS) --dist loadfile -m "not ($(COSTLY_TESTS))"

test: bootstrap lint sanity ## Set up and run every test and linter (CI runs this); pytest in parallel, Molecule beside it
	$(MAKE) --no-print-directory -j2 pytest molecule-logged

bootstrap: ## Install system packages, the virtual environment and the pinned Python packages
	@scripts/bootstrap.sh

lint: bootstrap ## ruff, mypy, yamllint, ansible-lint (production profile)
	ruff check .
	ruff format --check $(PYTHON_DIRS)
	mypy
	yamllint -s .
	ansible-lint --profile production --nocolor -q

collection: bootstrap ## Build the Ansible collection notification.emergency: build/notification-emergency-<version>.tar.gz
	python scripts/build_collection.py

sanity: bootstrap ## ansible-test sanity on the built collection, Python 3.8-3.13, offline (scripts/collection_sanity.py)
	python scripts/collection_sanity.py

pytest: bootstrap ## The pytest suites (reference service, modules, playbooks on sandbox hosts), in parallel
	pytest -q -n $(PYTEST_WORKERS) --dist loadfile

molecule: bootstrap ## Molecule scenarios on sandbox hosts
	molecule test --all

# Molecule beside pytest (make test): its output goes to a log, shown when a scenario fails.
molecule-logged: bootstrap
	@mkdir -p $(dir $(MOLECULE_LOG))
	@echo "molecule test --all: running beside pytest, log in $(MOLECULE_LOG)"
	@if molecule test --all > $(MOLECULE_LOG) 2>&1; then \
	  echo "molecule test --all: every scenario passed"; \
	else \
	  tail -n 300 $(MOLECULE_LOG); echo "molecule test --all FAILED (whole log: $(MOLECULE_LOG))"; exit 1; \
	fi

sandbox-up: bootstrap ## Create or resize the sandbox (SANDBOX_SIZE=N)
	ansible-playbook playbooks/sandbox_up.yml -e sandbox_size=$(SANDBOX_SIZE)

sandbox-down: bootstrap ## Remove every sandbox host
	ansible-playbook playbooks/sandbox_down.yml

bench: bootstrap ## Benchmarks (print figures; see bench/)
	python bench/bench_sandbox.py
	python bench/bench_health.py
	python bench/bench_recovery.py
	python bench/bench_runner.py
	python bench/bench_drills.py
	python bench/bench_limits.py

clean: ## Remove the sandbox and the virtual environment
	-[ -x $(VENV)/bin/ansible-playbook ] && ansible-playbook playbooks/sandbox_down.yml
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
