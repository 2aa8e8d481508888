# notification-emergency: the two commands (see README.md) and their parts.
#   make demo   set everything up, bring up a sandbox host with the reference service, show its health
#   make test   set everything up and run every test and linter (what CI runs)
SHELL := /bin/bash
VENV ?= $(CURDIR)/.venv
export PATH := $(VENV)/bin:$(PATH)
export ANSIBLE_CONFIG := $(CURDIR)/ansible.cfg
export PYTHONDONTWRITEBYTECODE := 1
SANDBOX_SIZE ?= 1

.PHONY: demo test bootstrap lint pytest molecule sandbox-up sandbox-down bench clean help

help: ## Show the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-14s %s\n", $$1, $$2}'

demo: bootstrap ## Set up, bring up one sandbox host, show its health and what to try next
	ansible-playbook playbooks/sandbox_up.yml -e sandbox_size=$(SANDBOX_SIZE)
	notification-emergency status
	@scripts/next_steps.sh

test: bootstrap lint pytest molecule ## Set up and run every test and linter (CI runs this)

bootstrap: ## Install system packages, the virtual environment and the pinned Python packages
	@scripts/bootstrap.sh

lint: bootstrap ## ruff, mypy, yamllint, ansible-lint (production profile)
	ruff check .
	ruff format --check src tests bench library module_utils filter_plugins strategy_plugins callback_plugins reference_app scripts rulebooks
	mypy
	yamllint -s .
	ansible-lint --profile production --nocolor -q

pytest: bootstrap ## The pytest suites (reference service, modules, playbooks on sandbox hosts)
	pytest -q

molecule: bootstrap ## Molecule scenarios on sandbox hosts
	molecule test --all

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
