"""Shared session fixtures: one DynamoDB Local and one local stage for the whole test session.

- ``dynamodb_local``: a running DynamoDB Local (``.endpoint_url``, ``.pid``), independent of the
  rest of the stage.
- ``local_stage``: a running :class:`~stack.local.stage.LocalStage` on that same DynamoDB Local,
  with ``.endpoints``, ``.endpoints_path``, ``.config``, ``.gateway_url``, ``.functions`` (by
  variant), ``.metrics_log``, ``.failure_destination`` and ``.settings``. Its state dir is a
  temporary folder, never the user's ``.asyncbench/``.

Without Java (or the npm jar) these fixtures skip with the reason, except in CI (``CI`` set),
where they fail: a suite that silently skips its real-component tests proves nothing.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from asyncbench.errors import DependencyMissingError
from stack.config import StackConfig
from stack.local.dynamodb.dynamodb_local import DynamoDBLocal, find_jar, find_java
from stack.local.settings import LocalStageSettings
from stack.local.stage import LocalStage


def _in_ci() -> bool:
    return os.environ.get("CI", "").lower() not in ("", "0", "false", "no")


def _require_dynamodb_local() -> None:
    try:
        find_java()
        find_jar()
    except DependencyMissingError as error:
        if _in_ci():
            pytest.fail(f"CI needs DynamoDB Local: {error}")
        pytest.skip(f"DynamoDB Local unavailable: {error}")


@pytest.fixture(scope="session")
def dynamodb_local(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DynamoDBLocal]:
    """One DynamoDB Local (in memory) for the session; stopped at the end, no JVM left."""
    _require_dynamodb_local()
    log_path = tmp_path_factory.mktemp("dynamodb-local") / "dynamodb-local.log"
    server = DynamoDBLocal(log_path=log_path)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def local_stage(
    dynamodb_local: DynamoDBLocal, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LocalStage]:
    """The whole local stage (gateway, functions, event source mapping) with default config."""
    settings = LocalStageSettings(
        state_dir=tmp_path_factory.mktemp("local-stage-state"),
        dynamodb_endpoint=dynamodb_local.endpoint_url,
    )
    stage = LocalStage(StackConfig(), settings)
    stage.start()
    try:
        yield stage
    finally:
        stage.stop()
