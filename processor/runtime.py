"""What one execution environment holds: settings, the DynamoDB client, clock, sleep, log.

A :class:`Runtime` is built once per execution environment (at import on AWS, where the init
phase pays for it) and passed to the handlers' pure-ish ``handle`` functions, so tests inject a
fake clock and sleep and a moto client instead of patching module globals. It also knows
whether an invocation is the environment's first (a cold start).
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import boto3
from botocore.config import Config

from processor.settings import Settings

__all__ = [
    "INVOCATION_RECORD",
    "Runtime",
    "dynamodb_client",
    "invocation_fields",
    "log_json",
    "wall_clock_ms",
]

# The ``record`` of the one structured line each invocation prints (CloudWatch Logs on AWS):
# the run collector pairs it with Lambda's REPORT line by the invocation's request id.
INVOCATION_RECORD = "asyncbench.invocation"


def wall_clock_ms() -> int:
    """The processor's clock: epoch milliseconds (the server clock lag is measured on)."""
    return time.time_ns() // 1_000_000


def log_json(fields: Mapping[str, Any]) -> None:
    """One structured log line (CloudWatch Logs Insights parses JSON lines)."""
    # One write per line: records of a batch processed at once must not interleave their lines.
    sys.stdout.write(json.dumps(fields, separators=(",", ":"), default=str) + "\n")
    sys.stdout.flush()


def invocation_fields(
    handler: str,
    context: Any,
    *,
    cold_start: bool,
    batch_size: int,
    run_ids: list[str],
    started_at_ms: int,
    ended_at_ms: int,
    error: str | None,
) -> dict[str, Any]:
    """The per-invocation line: what REPORT does not say (batch size, run, handler error)."""
    return {
        "record": INVOCATION_RECORD,
        "handler": handler,
        "awsRequestId": getattr(context, "aws_request_id", None),
        "functionName": getattr(context, "function_name", None),
        "coldStart": cold_start,
        "batchSize": batch_size,
        "runIds": sorted(set(run_ids)),
        "startedAtMs": started_at_ms,
        "endedAtMs": ended_at_ms,
        "error": error,
    }


def dynamodb_client(settings: Settings) -> Any:
    """A low-level DynamoDB client; the endpoint override lets the local stage redirect it."""
    return boto3.client(
        "dynamodb",
        endpoint_url=settings.dynamodb_endpoint_url,
        region_name=settings.region,
        # Standard mode retries throttling with back-off; adaptive would hide throttling.
        config=Config(retries={"mode": "standard", "max_attempts": 3}),
    )


@dataclass
class Runtime:
    """One execution environment's state; ``begin_invocation`` tracks the cold start."""

    settings: Settings
    dynamodb: Any
    now_ms: Callable[[], int] = wall_clock_ms
    sleep: Callable[[float], None] = time.sleep
    log: Callable[[Mapping[str, Any]], None] = log_json
    _invocations: int = field(default=0, init=False)
    cold_start: bool = field(default=False, init=False)
    """Whether the current (latest) invocation is this environment's first."""

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> Runtime:
        """The runtime of a real environment: settings from env vars, a real client."""
        settings = Settings.from_environ(os.environ if environ is None else environ)
        return cls(settings=settings, dynamodb=dynamodb_client(settings))

    def begin_invocation(self) -> bool:
        """Count an invocation; True only for the first one of this environment."""
        self._invocations += 1
        self.cold_start = self._invocations == 1
        return self.cold_start

    @contextmanager
    def invocation_line(
        self, handler: str, context: Any, *, batch_size: int, run_ids: list[str]
    ) -> Iterator[None]:
        """Log one structured line for the invocation it wraps, whatever happens inside (the
        error's type name when it raises; the error still propagates)."""
        started_at_ms = self.now_ms()
        error: str | None = None
        try:
            yield
        except BaseException as failure:
            error = type(failure).__name__
            raise
        finally:
            self.log(
                invocation_fields(
                    handler,
                    context,
                    cold_start=self.cold_start,
                    batch_size=batch_size,
                    run_ids=run_ids,
                    started_at_ms=started_at_ms,
                    ended_at_ms=self.now_ms(),
                    error=error,
                )
            )
