"""The processor's settings, read from the environment the stack (or the local stage) sets.

Variables (the stack's ``StackConfig.processor_environment`` writes all but the last two):

- ``TABLE_NAME`` (required): the variant's requests table.
- ``TTL_SECONDS``: TTL given to a SUCCEEDED item (``ttl = now + TTL_SECONDS``, epoch seconds).
- ``FAILURE_TTL_SECONDS``: TTL given to a FAILED item; 0 = a failed item never expires.
- ``MAX_ATTEMPTS``: processing attempts after which a transiently failing item is FAILED.
- ``MAX_RECORD_AGE_S``: the event source mapping's MaximumRecordAgeInSeconds.
- ``RETRY_BACKOFF_BASE_MS`` / ``RETRY_BACKOFF_MAX_MS``: in-handler back-off after a transient
  failure, doubling per attempt up to the cap.
- ``BATCH_CONCURRENCY``: how many records of a stream batch the handler processes at once.
- ``DYNAMODB_ENDPOINT_URL`` (optional): DynamoDB endpoint override (the local stage).
- ``AWS_REGION`` / ``AWS_DEFAULT_REGION``: the region of the DynamoDB client.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

__all__ = ["ProcessorSettingsError", "Settings"]


class ProcessorSettingsError(RuntimeError):
    """Raised when the function's environment is incomplete or malformed (a deployment bug)."""


def _integer(environ: Mapping[str, str], name: str, default: int, minimum: int) -> int:
    raw = environ.get(name, "")
    if raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ProcessorSettingsError(
            f"environment variable {name} must be an integer, got {raw!r}"
        ) from None
    if value < minimum:
        raise ProcessorSettingsError(
            f"environment variable {name} must be >= {minimum}, got {value}"
        )
    return value


@dataclass(frozen=True, kw_only=True)
class Settings:
    """Everything a handler reads from its environment, validated once per environment."""

    table_name: str
    ttl_seconds: int = 86_400
    failure_ttl_seconds: int = 0
    max_attempts: int = 21
    max_record_age_s: int = 3600
    retry_backoff_base_ms: int = 500
    retry_backoff_max_ms: int = 8000
    batch_concurrency: int = 1
    dynamodb_endpoint_url: str | None = None
    region: str | None = None

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> Settings:
        """Read and validate the variables listed in this module's docstring."""
        table_name = environ.get("TABLE_NAME", "")
        if not table_name:
            raise ProcessorSettingsError(
                "environment variable TABLE_NAME is not set: the function has no table"
            )
        return cls(
            table_name=table_name,
            ttl_seconds=_integer(environ, "TTL_SECONDS", 86_400, 1),
            failure_ttl_seconds=_integer(environ, "FAILURE_TTL_SECONDS", 0, 0),
            max_attempts=_integer(environ, "MAX_ATTEMPTS", 21, 1),
            max_record_age_s=_integer(environ, "MAX_RECORD_AGE_S", 3600, 1),
            retry_backoff_base_ms=_integer(environ, "RETRY_BACKOFF_BASE_MS", 500, 0),
            retry_backoff_max_ms=_integer(environ, "RETRY_BACKOFF_MAX_MS", 8000, 0),
            batch_concurrency=_integer(environ, "BATCH_CONCURRENCY", 1, 1),
            dynamodb_endpoint_url=environ.get("DYNAMODB_ENDPOINT_URL") or None,
            region=environ.get("AWS_REGION") or environ.get("AWS_DEFAULT_REGION") or None,
        )
