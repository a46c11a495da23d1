"""The one typed config of the system under test, read by the CDK app AND the local stage.

A :class:`StackConfig` is frozen and validated when built: unknown keys, wrong types and values
out of range raise :class:`~asyncbench.errors.ConfigError` naming the key. It loads from a JSON
or TOML file (a flat table of the field names below, or a ``[stack]`` table in TOML) and takes
``key=value`` overrides from the command line (``--set batch_size=50``).

The defaults are the safe, finite settings the design notes ask for: an event source mapping
with AWS's own defaults (infinite retries, infinite record age, no bisect) lets one poison record
block its shard for a day.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import json
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Literal, get_args, get_type_hints

from asyncbench.errors import ConfigError

__all__ = [
    "API_GATEWAY_TIMEOUT_S",
    "LOG_RETENTION_DAYS",
    "STREAM_FILTER_PATTERN",
    "StackConfig",
    "load_config",
    "parse_overrides",
]

Architecture = Literal["arm64", "x86_64"]

# API Gateway's REST integration timeout (the default quota), seconds.
API_GATEWAY_TIMEOUT_S = 29

# CloudWatch Logs accepts only these retention periods (days).
LOG_RETENTION_DAYS = (
    1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557,
    2922, 3288, 3653,
)  # fmt: skip


@dataclass(frozen=True, kw_only=True)
class StackConfig:
    """Settings of both variants. Units are in the names; every field has a safe default."""

    name_prefix: str = "asyncbench"
    """Prefix of stack, table, function and API names (letters, digits, hyphens)."""

    # --- processor function (both variants) ---
    memory_mb: int = 256
    architecture: Architecture = "arm64"
    timeout_s: int = 28
    """Below API Gateway's 29 s integration timeout: a slower direct request would get a 504
    while its function went on and stored SUCCEEDED (a success the client counts as an error)."""
    reserved_concurrency: int | None = 10
    """Per function; None = unreserved (account pool). The throttle scenario drives above it."""
    log_retention_days: int = 14

    # --- the deployed APIs ---
    allowed_cidrs: tuple[str, ...] = ()
    """Source addresses (CIDR) the APIs accept (``deploy --allow-cidr``); empty = anyone. The
    APIs have no authorizer on purpose (it would add latency to what is measured)."""

    # --- storage-first event source mapping ---
    batch_size: int = 100
    batching_window_s: int = 0
    retry_attempts: int = 20
    """MaximumRetryAttempts; AWS's default (-1, infinite) would let a record block its shard.
    With the back-off below, 20 deliveries ride out an outage of about two minutes."""
    max_record_age_s: int = 3600
    """MaximumRecordAgeInSeconds; AWS's default (-1) keeps retrying for the 24 h retention."""
    bisect_on_error: bool = True
    parallelization_factor: int = 10
    """Concurrent batches per shard. 10 gives storage-first the same concurrency budget as
    direct's reserved 10 (README, "Capacity planning with tune": at 1, one shard drained
    28/s of 20 ms work on the local stage, below every scenario's peak)."""
    batch_concurrency: int = 1
    """Records of one stream batch the handler processes at once (threads; each request is its
    own item, so no order between them needs keeping). 1 = one after another."""

    # --- processor behaviour (storage-first) ---
    retry_backoff_base_ms: int = 500
    """First in-handler back-off after a transient failure; doubles per attempt."""
    retry_backoff_max_ms: int = 8000
    """Cap of the in-handler back-off, so retries ride out a long outage without a tight loop."""
    ttl_seconds: int = 86_400
    """TTL set on an item when it SUCCEEDED (DynamoDB deletes it within days after that)."""
    failure_ttl_seconds: int = 0
    """TTL set on an item when it FAILED; 0 keeps failed items until someone looks at them."""

    def __post_init__(self) -> None:
        # JSON and TOML hand lists over; the frozen config keeps a tuple.
        if isinstance(self.allowed_cidrs, list):
            object.__setattr__(self, "allowed_cidrs", tuple(self.allowed_cidrs))
        _check_types(self)
        _check_ranges(self)

    # The settings the processor reads from its environment (same on AWS and locally).
    def processor_environment(self, table_name: str) -> dict[str, str]:
        """Environment variables both processor functions get, as the CDK app sets them."""
        return {
            "TABLE_NAME": table_name,
            "TTL_SECONDS": str(self.ttl_seconds),
            "FAILURE_TTL_SECONDS": str(self.failure_ttl_seconds),
            # The stream handler gives up (marks FAILED) on the last delivery the mapping makes.
            "MAX_ATTEMPTS": str(self.retry_attempts + 1),
            "MAX_RECORD_AGE_S": str(self.max_record_age_s),
            "RETRY_BACKOFF_BASE_MS": str(self.retry_backoff_base_ms),
            "RETRY_BACKOFF_MAX_MS": str(self.retry_backoff_max_ms),
            "BATCH_CONCURRENCY": str(self.batch_concurrency),
        }

    def table_name(self, variant: str) -> str:
        """Table name of a variant ("direct" or "storage_first") on the local stage."""
        return f"{self.name_prefix}-{variant.replace('_', '-')}-requests"

    def with_overrides(self, overrides: Mapping[str, Any]) -> StackConfig:
        """A copy with some fields replaced (validated again)."""
        return from_mapping({**dataclasses.asdict(self), **overrides}, source="overrides")

    def to_dict(self) -> dict[str, Any]:
        """JSON-shaped (lists, not tuples): equal to what a JSON round trip gives back."""
        values = dataclasses.asdict(self)
        values["allowed_cidrs"] = list(self.allowed_cidrs)
        return values


def _check_types(config: StackConfig) -> None:
    hints = get_type_hints(StackConfig)
    for field in fields(StackConfig):
        value = getattr(config, field.name)
        expected = hints[field.name]
        if not _is_instance(value, expected):
            raise ConfigError(
                f"config key {field.name!r} must be {_describe(expected)}, got {value!r}"
            )


def _is_instance(value: Any, expected: Any) -> bool:
    options = get_args(expected)
    if getattr(expected, "__origin__", None) is Literal:
        return value in options
    if getattr(expected, "__origin__", None) is tuple:  # tuple[X, ...]
        return isinstance(value, tuple) and all(_is_instance(item, options[0]) for item in value)
    if options:  # a union such as int | None
        return any(_is_instance(value, option) for option in options)
    if expected is type(None):
        return value is None
    if expected is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, expected)


def _describe(expected: Any) -> str:
    options = get_args(expected)
    if getattr(expected, "__origin__", None) is Literal:
        return " or ".join(repr(option) for option in options)
    if getattr(expected, "__origin__", None) is tuple:
        return f"a list of {_describe(options[0])}"
    if options:
        return " or ".join(_describe(option) for option in options)
    return "null" if expected is type(None) else expected.__name__


def _require(condition: bool, key: str, rule: str, value: Any) -> None:
    if not condition:
        raise ConfigError(f"config key {key!r} must be {rule}, got {value!r}")


def _check_ranges(c: StackConfig) -> None:
    prefix_ok = c.name_prefix.replace("-", "").isalnum() and c.name_prefix.isascii()
    _require(
        prefix_ok and 1 <= len(c.name_prefix) <= 32 and c.name_prefix[0].isalpha(),
        "name_prefix",
        "1-32 ASCII letters, digits or hyphens, starting with a letter",
        c.name_prefix,
    )
    _require(128 <= c.memory_mb <= 10_240, "memory_mb", "between 128 and 10240", c.memory_mb)
    _require(
        1 <= c.timeout_s < API_GATEWAY_TIMEOUT_S,
        "timeout_s",
        f"between 1 and {API_GATEWAY_TIMEOUT_S - 1} (below API Gateway's {API_GATEWAY_TIMEOUT_S} s "
        "integration timeout, or a slow direct request is answered 504 and still stored "
        "SUCCEEDED)",
        c.timeout_s,
    )
    for cidr in c.allowed_cidrs:
        _require(_is_cidr(cidr), "allowed_cidrs", "a list of CIDR blocks (1.2.3.0/24)", cidr)
    _require(
        c.reserved_concurrency is None or 1 <= c.reserved_concurrency <= 1000,
        "reserved_concurrency",
        "null or between 1 and 1000",
        c.reserved_concurrency,
    )
    _require(
        c.log_retention_days in LOG_RETENTION_DAYS,
        "log_retention_days",
        f"one of CloudWatch's periods {LOG_RETENTION_DAYS}",
        c.log_retention_days,
    )
    _require(1 <= c.batch_size <= 10_000, "batch_size", "between 1 and 10000", c.batch_size)
    _require(
        0 <= c.batching_window_s <= 300, "batching_window_s", "between 0 and 300",
        c.batching_window_s,
    )  # fmt: skip
    _require(
        0 <= c.retry_attempts <= 10_000,
        "retry_attempts",
        "between 0 and 10000 (finite: -1 would block a shard on a poison record)",
        c.retry_attempts,
    )
    _require(
        60 <= c.max_record_age_s <= 604_800,
        "max_record_age_s",
        "between 60 and 604800 (finite: -1 would keep retrying for the stream's 24 h)",
        c.max_record_age_s,
    )
    _require(
        1 <= c.parallelization_factor <= 10,
        "parallelization_factor",
        "between 1 and 10",
        c.parallelization_factor,
    )
    _require(
        1 <= c.batch_concurrency <= 100, "batch_concurrency", "between 1 and 100",
        c.batch_concurrency,
    )  # fmt: skip
    _require(c.retry_backoff_base_ms >= 0, "retry_backoff_base_ms", ">= 0", c.retry_backoff_base_ms)
    _require(
        c.retry_backoff_max_ms >= c.retry_backoff_base_ms,
        "retry_backoff_max_ms",
        ">= retry_backoff_base_ms",
        c.retry_backoff_max_ms,
    )
    _require(
        c.retry_backoff_max_ms < c.timeout_s * 1000,
        "retry_backoff_max_ms",
        "below timeout_s * 1000 (a back-off must fit in one invocation)",
        c.retry_backoff_max_ms,
    )
    _require(c.ttl_seconds >= 1, "ttl_seconds", ">= 1", c.ttl_seconds)
    _require(
        c.failure_ttl_seconds >= 0, "failure_ttl_seconds", ">= 0 (0 = never expire)",
        c.failure_ttl_seconds,
    )  # fmt: skip


def _is_cidr(text: str) -> bool:
    try:
        ipaddress.ip_network(text, strict=False)
    except ValueError:
        return False
    return "/" in text


def from_mapping(values: Mapping[str, Any], *, source: str = "config") -> StackConfig:
    """Build a config from a mapping, rejecting unknown keys by name."""
    known = {field.name for field in fields(StackConfig)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ConfigError(
            f"unknown config key(s) in {source}: {', '.join(unknown)} "
            f"(known keys: {', '.join(sorted(known))})"
        )
    try:
        return StackConfig(**values)
    except ConfigError as error:
        raise ConfigError(f"{source}: {error}") from None


def _read_file(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise ConfigError(f"cannot read config file {path}: {error.strerror}") from None
    try:
        if path.suffix == ".toml":
            data: Any = tomllib.loads(text)
            data = data.get("stack", data)
        else:
            data = json.loads(text)
    except (json.JSONDecodeError, tomllib.TOMLDecodeError) as error:
        kind = "TOML" if path.suffix == ".toml" else "JSON"
        raise ConfigError(f"config file {path} is not valid {kind}: {error}") from None
    if not isinstance(data, dict):
        raise ConfigError(
            f"config file {path} must hold a table of keys, not {type(data).__name__}"
        )
    return data


def parse_overrides(pairs: Iterable[str]) -> dict[str, Any]:
    """Parse ``key=value`` strings; values are JSON when they parse (50, true, null), else text."""
    result: dict[str, Any] = {}
    for pair in pairs:
        key, separator, raw = pair.partition("=")
        if not separator or not key.strip():
            raise ConfigError(f"override {pair!r} must look like key=value")
        try:
            result[key.strip()] = json.loads(raw)
        except json.JSONDecodeError:
            result[key.strip()] = raw
    return result


def load_config(path: str | Path | None = None, overrides: Iterable[str] = ()) -> StackConfig:
    """The config from a file (or the defaults) with command-line overrides applied."""
    values: dict[str, Any] = {}
    source = "defaults"
    if path is not None:
        values = _read_file(Path(path))
        source = str(path)
    override_values = parse_overrides(overrides)
    if override_values:
        source = f"{source} + --set"
    return from_mapping({**values, **override_values}, source=source)


# The event source mapping's filter (FilterCriteria pattern), used by the CDK app and the local
# stage alike: only new requests reach the processor, never its own updates or TTL deletions.
STREAM_FILTER_PATTERN: dict[str, Any] = {"eventName": ["INSERT"]}
