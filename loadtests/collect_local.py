"""The local stage's side of a run: DynamoDB Local, the failure file and the metrics log.

Both files are JSON lines that only grow while the stage runs. Each is read from the byte
offset it had when the trial began, so a trial sees only its own lines, and only whole lines
(a writer may be half-way through the last one).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from asyncbench.errors import EndpointsError, LocalStageError
from loadtests.collect_dynamodb import iter_run_items, resolve_parked_record
from stack.endpoints import Endpoints

__all__ = ["JsonLinesTail", "LocalStageSide", "local_clients"]

# DynamoDB Local accepts any credentials; boto3 refuses to sign without some.
_LOCAL_CREDENTIALS = {
    "aws_access_key_id": "asyncbench",
    "aws_secret_access_key": "asyncbench",
    "region_name": "us-east-1",
}


class JsonLinesTail:
    """Reads the complete lines a JSON-lines file gained since :meth:`mark`."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.offset = 0

    def mark(self) -> None:
        """From now on, only lines appended after this point are read."""
        try:
            self.offset = self.path.stat().st_size if self.path else 0
        except FileNotFoundError:
            self.offset = 0

    def read_new(self) -> list[dict[str, Any]]:
        if self.path is None:
            return []
        try:
            with self.path.open("rb") as handle:
                handle.seek(self.offset)
                data = handle.read()
        except FileNotFoundError:
            return []
        complete = data.rfind(b"\n") + 1  # a partly written last line waits for the next read
        self.offset += complete
        records = []
        for line in data[:complete].splitlines():
            if not line.strip():
                continue
            try:
                value = json.loads(line)
            except json.JSONDecodeError:
                continue  # one garbled line must not lose the others
            if isinstance(value, dict):
                records.append(value)
        return records


def local_clients(endpoint_url: str) -> tuple[Any, Any]:
    """DynamoDB and DynamoDB Streams clients for DynamoDB Local."""
    # A stage that is down should fail fast, not after boto3's retries with back-off.
    config = Config(connect_timeout=5, read_timeout=30, retries={"max_attempts": 2})
    dynamodb = boto3.client(
        "dynamodb", endpoint_url=endpoint_url, config=config, **_LOCAL_CREDENTIALS
    )
    streams = boto3.client(
        "dynamodbstreams", endpoint_url=endpoint_url, config=config, **_LOCAL_CREDENTIALS
    )
    return dynamodb, streams


class LocalStageSide:
    """:class:`~loadtests.collect.StageSide` of the local stage."""

    source = "local"

    def __init__(self, endpoints: Endpoints, run_id: str) -> None:
        if endpoints.dynamodb_endpoint is None:
            raise EndpointsError(
                "the local endpoints file has no dynamodb_endpoint; run `asyncbench local up` again"
            )
        self.endpoints = endpoints
        self.run_id = run_id
        self.dynamodb, self.streams = local_clients(endpoints.dynamodb_endpoint)
        destination = endpoints.variants.get("storage_first")
        failure_file = destination.failure_destination if destination else None
        self.failures = JsonLinesTail(Path(failure_file) if failure_file else None)
        metrics_log = endpoints.extra.get("metrics_log")
        self.metrics_log = JsonLinesTail(Path(metrics_log) if metrics_log else None)
        self._metrics_marked = False

    def check(self) -> None:
        """Before the run: both tables answer, else the stage is down (stale endpoints file)."""
        for name, endpoint in self.endpoints.variants.items():
            try:
                self.dynamodb.describe_table(TableName=endpoint.table)
            except (BotoCoreError, ClientError) as error:
                raise LocalStageError(
                    f"the local stage's {name} table {endpoint.table} cannot be read at "
                    f"{self.endpoints.dynamodb_endpoint} ({type(error).__name__}); "
                    "is the stage up? run `asyncbench local up`"
                ) from None

    def begin_trial(self) -> None:
        self.failures.mark()
        if not self._metrics_marked:
            # Once per run: each trial reads on from where the previous one stopped, and the
            # window filter in metrics() keeps only the lines of its own trial.
            self.metrics_log.mark()
            self._metrics_marked = True

    def items(self, variant: str) -> Iterator[dict[str, Any]]:
        """The run's items page by page as the Scan returns them (never one list)."""
        return iter_run_items(self.dynamodb, self.endpoints.variant(variant).table, self.run_id)

    def new_parked_records(self) -> list[dict[str, Any]]:
        return self.failures.read_new()

    def resolve(self, record: Any) -> list[str]:
        return resolve_parked_record(self.streams, record)

    def metrics(self, variant: str, start_ms: float, end_ms: float) -> list[dict[str, Any]]:
        """The metrics log lines about ``variant`` appended since begin_trial, in the window."""
        rows = []
        for line in self.metrics_log.read_new():
            timestamp = line.get("ts_ms")
            value = line.get("value")
            if line.get("variant") != variant or not isinstance(timestamp, int | float):
                continue
            if not start_ms <= timestamp <= end_ms or not isinstance(value, int | float):
                continue
            extras = {
                key: item
                for key, item in line.items()
                if key not in {"ts_ms", "variant", "metric", "value", "unit"}
            }
            rows.append(
                {
                    "variant": variant,
                    "source": self.source,
                    "metric": str(line.get("metric")),
                    "timestamp_ms": float(timestamp),
                    "value": float(value),
                    "unit": line.get("unit"),
                    "dimensions": json.dumps(extras, sort_keys=True, default=str),
                }
            )
        return rows
