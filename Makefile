# The two commands of the README. Each sets up what is missing first (scripts/bootstrap.sh).
.PHONY: demo test lint bootstrap

bootstrap:
	@bash scripts/bootstrap.sh

# The main job: local stage up, baseline/outage/capacity on both variants, report, stage down.
demo: bootstrap
	.venv/bin/asyncbench demo

# The test suite (what CI runs): lint, types, then pytest with warnings as errors.
test: bootstrap lint
	.venv/bin/python -m pytest

lint:
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .
	.venv/bin/mypy
