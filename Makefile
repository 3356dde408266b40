# Thin wrappers; the logic lives in scripts/ and in Python. `make help` lists the targets.
.DEFAULT_GOAL := help

help: ## list the targets
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-8s %s\n", $$1, $$2}'

dev: ## create .venv with the app and the dev tools
	scripts/bootstrap

PORT ?= 8000
demo: ## install, then run `inflow demo` (SQLite + sandbox + demo admin) on PORT (make demo PORT=8010)
	scripts/bootstrap --no-dev && .venv/bin/inflow demo --port $(PORT)

check: ## install what the tests need, then ruff, mypy and every test suite (what CI runs)
	scripts/check

fmt: ## format and autofix
	.venv/bin/ruff format src tests bench && .venv/bin/ruff check --fix src tests bench

lint: ## ruff and mypy
	.venv/bin/ruff check src tests bench && .venv/bin/ruff format --check src tests bench && .venv/bin/mypy

test: ## the test suites but the browser ones (no reinstall)
	.venv/bin/pytest -m "not e2e"

e2e: ## the browser tests: Playwright drives Debian's Chromium (/usr/bin/chromium)
	.venv/bin/pytest -m e2e tests/e2e

.PHONY: help dev demo check fmt lint test e2e
