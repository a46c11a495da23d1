# The two commands of the README. Each sets up what is missing first (scripts/bootstrap.sh).
.PHONY: demo test lint bootstrap bootstrap-demo

# Everything, Chromium included (only the report's browser test needs it).
bootstrap:
	@bash scripts/bootstrap.sh

# What the demo needs: no Chromium.
bootstrap-demo:
	@ASYNCBENCH_SKIP_CHROMIUM=1 bash scripts/bootstrap.sh

# The main job: local stage up, baseline/outage/capacity on both variants, report, stage down.
demo: bootstrap-demo
	.venv/bin/asyncbench demo

# The test suite (what CI runs): lint, types, then pytest with warnings as errors.
test: bootstrap lint
	.venv/bin/python -m pytest

lint:
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .
	.venv/bin/mypy
