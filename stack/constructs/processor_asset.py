"""The Lambda code asset: a folder whose root holds the ``processor`` package, and nothing else.

The handler strings are then ``processor.direct.handler`` and ``processor.stream.handler`` on
AWS exactly as on the local stage. No Docker bundling: the handlers need only the standard
library and boto3, which the Python runtime provides.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from aws_cdk import Stage
from aws_cdk import aws_lambda as lambda_
from constructs import Construct

from asyncbench.paths import PROJECT_ROOT

__all__ = ["PROCESSOR_PACKAGE_DIR", "processor_code"]

PROCESSOR_PACKAGE_DIR = PROJECT_ROOT / "processor"

# Never shipped: caches, tests and editor leftovers (they would also change the asset hash).
_IGNORED = ("__pycache__", "*.pyc", "*.pyo", "tests", "test_*.py", ".*")


def processor_code(scope: Construct) -> lambda_.Code:
    """Copy ``processor/`` into ``<assembly>/processor-source/processor`` and use that as asset.

    Copying (rather than ``exclude`` globs on the project root) keeps the fingerprint walk off
    ``.venv`` and ``node_modules`` and cannot let a dotfile slip in. The copy lives in the cloud
    assembly folder, which CDK stages from; the asset hash depends on file contents only.
    """
    source_root = Path(Stage.of(scope).outdir) / "processor-source"  # type: ignore[union-attr]
    target = source_root / "processor"
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(PROCESSOR_PACKAGE_DIR, target, ignore=shutil.ignore_patterns(*_IGNORED))
    return lambda_.Code.from_asset(str(source_root))
