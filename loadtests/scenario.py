"""Scenarios as data: a load shape (stages of target arrival rates) plus what each request asks for.

A scenario is one TOML file in ``loadtests/scenarios/`` (or any path given to
:func:`load_scenario`). Top-level keys are the :class:`Scenario` fields; ``[[stages]]`` holds
the load shape, ``[outage]`` and ``[client_retry]`` are optional tables::

    name = "baseline"
    description = "Steady rate"
    work_ms = 20
    [[stages]]
    duration_s = 60
    rate_per_s = 20

Unknown keys, wrong types and values out of range raise :class:`ScenarioError` naming the file
and the field. This module imports no Locust (the CLI lists scenarios without loading gevent).
"""

from __future__ import annotations

import dataclasses
import math
import tomllib
from collections.abc import Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from asyncbench.errors import ScenarioError

__all__ = [
    "SCENARIOS_DIR",
    "ClientRetry",
    "Outage",
    "Scenario",
    "Stage",
    "list_scenarios",
    "load_scenario",
]

SCENARIOS_DIR = Path(__file__).resolve().parent / "scenarios"

# The file a scenario is being built from, so validation errors name it (set by from_dict).
_SOURCE: ContextVar[str | None] = ContextVar("scenario_source", default=None)


@dataclass(frozen=True)
class Stage:
    """One step of the load shape: a target arrival rate (open loop) held for a duration."""

    duration_s: float
    rate_per_s: float


@dataclass(frozen=True)
class Outage:
    """A processor outage window, relative to the trial's start."""

    start_s: float
    duration_s: float


@dataclass(frozen=True)
class ClientRetry:
    """Client retry of the direct variant's 5xx/429 answers; every attempt is its own row."""

    max_attempts: int = 1
    backoff_ms: int = 100


@dataclass(frozen=True)
class Scenario:
    """What a trial offers: the load shape and the request body's parameters."""

    name: str
    description: str
    stages: tuple[Stage, ...]
    warmup_s: float = 5.0
    """Rows whose intended time is before this offset are marked ``warmup``."""
    work_ms: int = 20
    work_kind: str = "io"
    """The body's ``work_kind``: "io" (the work waits, a sleep) or "cpu" (a busy loop)."""
    poison_share: float = 0.0
    """Share of requests with ``"fail": "always"`` (chosen by the seeded generator)."""
    payload_bytes: int = 64
    outage: Outage | None = None
    poll_results: bool = False
    """Poll ``GET /requests/{id}`` until terminal (``time_to_result_ms``)."""
    client_retry: ClientRetry = field(default_factory=ClientRetry)
    request_timeout_s: float = 30.0
    collection_timeout_s: float = 120.0
    """How long collection waits for accepted requests to become terminal."""
    repetitions: int = 2
    slo_p99_ms: float = 500.0
    error_threshold: float = 0.01
    capacity: bool | None = None
    """Capacity analysis (knee, sustained and drain rates): None decides from the shape (a rate
    that steps up); true or false declares it."""

    def __post_init__(self) -> None:
        _validate(self, source=_SOURCE.get() or f"scenario {self.name!r}")

    @property
    def duration_s(self) -> float:
        """Total load duration: the sum of the stages."""
        return sum(stage.duration_s for stage in self.stages)

    @property
    def peak_rate_per_s(self) -> float:
        return max(stage.rate_per_s for stage in self.stages)

    @property
    def expected_requests(self) -> float:
        """Requests the shape offers in total (before client retries)."""
        return sum(stage.duration_s * stage.rate_per_s for stage in self.stages)

    def with_overrides(
        self, *, rate: float | None = None, duration: float | None = None
    ) -> Scenario:
        """A copy with the peak rate set to ``rate`` and/or the total duration to ``duration``.

        Other stages keep their proportion to the peak; stage durations, warm-up and the outage
        window scale with the total duration, so the shape stays the same.
        """
        stages = self.stages
        warmup_s = self.warmup_s
        outage = self.outage
        if rate is not None:
            if not (math.isfinite(rate) and rate > 0):
                raise ScenarioError(f"--rate must be a positive number, not {rate}")
            factor = rate / self.peak_rate_per_s
            stages = tuple(dataclasses.replace(s, rate_per_s=s.rate_per_s * factor) for s in stages)
        if duration is not None:
            if not (math.isfinite(duration) and duration > 0):
                raise ScenarioError(f"--duration must be a positive number, not {duration}")
            factor = duration / self.duration_s
            stages = tuple(dataclasses.replace(s, duration_s=s.duration_s * factor) for s in stages)
            warmup_s = self.warmup_s * factor
            if outage is not None:
                outage = Outage(outage.start_s * factor, outage.duration_s * factor)
        return dataclasses.replace(self, stages=stages, warmup_s=warmup_s, outage=outage)

    def to_dict(self) -> dict[str, Any]:
        """Plain data (for the manifest); :meth:`from_dict` reads it back."""
        data = dataclasses.asdict(self)
        data["stages"] = [dataclasses.asdict(stage) for stage in self.stages]
        if self.outage is None:
            del data["outage"]
        if self.capacity is None:
            del data["capacity"]  # TOML has no null: a declaration is only ever true or false
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, source: str) -> Scenario:
        """Build and validate; errors name ``source`` (a file) and the field."""
        if not isinstance(data, Mapping):
            raise ScenarioError(f"{source}: a scenario must be a table of fields")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ScenarioError(
                f"{source}: unknown field(s) {', '.join(unknown)}; "
                f"known: {', '.join(sorted(known))}"
            )
        for required in ("name", "stages"):
            if required not in data:
                raise ScenarioError(f"{source}: missing required field '{required}'")
        values = dict(data)
        values.setdefault("description", "")
        values["stages"] = _stages(data["stages"], source)
        if data.get("outage") is not None:
            values["outage"] = _sub(Outage, data["outage"], "outage", source)
        if "client_retry" in data:
            values["client_retry"] = _sub(ClientRetry, data["client_retry"], "client_retry", source)
        for name in known - {"stages", "outage", "client_retry"}:
            if name in values:
                values[name] = _coerce(cls, name, values[name], source)
        token = _SOURCE.set(source)
        try:
            return cls(**values)
        finally:
            _SOURCE.reset(token)


# --- validation -------------------------------------------------------------------------------

_FLOAT_FIELDS = {
    "warmup_s", "poison_share", "request_timeout_s", "collection_timeout_s", "slo_p99_ms",
    "error_threshold", "duration_s", "rate_per_s", "start_s",
}  # fmt: skip
_INT_FIELDS = {"work_ms", "payload_bytes", "repetitions", "max_attempts", "backoff_ms"}
_BOOL_FIELDS = {"poll_results", "capacity"}
_STR_FIELDS = {"name", "description", "work_kind"}


def _coerce(owner: type, name: str, value: Any, source: str) -> Any:
    label = name if owner is Scenario else f"{owner.__name__.lower()}.{name}"
    if name in _STR_FIELDS:
        if not isinstance(value, str):
            raise ScenarioError(f"{source}: field '{label}' must be a string, not {value!r}")
        return value
    if name in _BOOL_FIELDS:
        if not isinstance(value, bool):
            raise ScenarioError(f"{source}: field '{label}' must be true or false, not {value!r}")
        return value
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ScenarioError(f"{source}: field '{label}' must be a number, not {value!r}")
    if name in _INT_FIELDS:
        if isinstance(value, float) and not value.is_integer():
            raise ScenarioError(f"{source}: field '{label}' must be a whole number, not {value}")
        return int(value)
    if not math.isfinite(value):
        raise ScenarioError(f"{source}: field '{label}' must be finite, not {value}")
    return float(value)


def _sub(cls: type, data: Any, label: str, source: str) -> Any:
    if not isinstance(data, Mapping):
        raise ScenarioError(f"{source}: field '{label}' must be a table")
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ScenarioError(f"{source}: unknown field(s) in '{label}': {', '.join(unknown)}")
    missing = [
        f.name
        for f in dataclasses.fields(cls)
        if f.default is dataclasses.MISSING and f.name not in data
    ]
    if missing:
        raise ScenarioError(f"{source}: '{label}' lacks field(s) {', '.join(missing)}")
    return cls(**{key: _coerce(cls, key, value, source) for key, value in data.items()})


def _stages(data: Any, source: str) -> tuple[Stage, ...]:
    if not isinstance(data, list | tuple) or not data:
        raise ScenarioError(f"{source}: field 'stages' must be a non-empty list of tables")
    stages = []
    for index, item in enumerate(data):
        if isinstance(item, Stage):
            stages.append(item)
        else:
            stages.append(_sub(Stage, item, f"stages[{index}]", source))
    return tuple(stages)


def _validate(scenario: Scenario, *, source: str) -> None:
    def fail(name: str, rule: str) -> None:
        raise ScenarioError(f"{source}: field '{name}' {rule}")

    if not scenario.name or not all(c.isalnum() or c in "-_" for c in scenario.name):
        fail("name", "must be letters, digits, '-' or '_'")
    if not scenario.stages:
        fail("stages", "must hold at least one stage")
    for index, stage in enumerate(scenario.stages):
        if not stage.duration_s > 0:
            fail(f"stages[{index}].duration_s", "must be > 0")
        if not stage.rate_per_s >= 0:
            fail(f"stages[{index}].rate_per_s", "must be >= 0")
    if not any(stage.rate_per_s > 0 for stage in scenario.stages):
        fail("stages", "must offer some load (a rate_per_s > 0)")
    if not 0 <= scenario.warmup_s < scenario.duration_s:
        fail("warmup_s", f"must be >= 0 and shorter than the load ({scenario.duration_s:g} s)")
    if scenario.work_ms < 0:
        fail("work_ms", "must be >= 0")
    if scenario.work_kind not in ("io", "cpu"):
        fail("work_kind", 'must be "io" or "cpu"')
    if not 0 <= scenario.poison_share <= 1:
        fail("poison_share", "must be between 0 and 1")
    if scenario.payload_bytes < 0:
        fail("payload_bytes", "must be >= 0")
    if scenario.outage is not None:
        if scenario.outage.start_s < 0:
            fail("outage.start_s", "must be >= 0")
        if not scenario.outage.duration_s > 0:
            fail("outage.duration_s", "must be > 0")
    if scenario.client_retry.max_attempts < 1:
        fail("client_retry.max_attempts", "must be >= 1 (1 = no retries)")
    if scenario.client_retry.backoff_ms < 0:
        fail("client_retry.backoff_ms", "must be >= 0")
    if not scenario.request_timeout_s > 0:
        fail("request_timeout_s", "must be > 0")
    if not scenario.collection_timeout_s > 0:
        fail("collection_timeout_s", "must be > 0")
    if scenario.repetitions < 1:
        fail("repetitions", "must be >= 1")
    if not scenario.slo_p99_ms > 0:
        fail("slo_p99_ms", "must be > 0")
    if not 0 <= scenario.error_threshold <= 1:
        fail("error_threshold", "must be between 0 and 1")


# --- files ------------------------------------------------------------------------------------


def _read_file(path: Path) -> Scenario:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise ScenarioError(f"cannot read scenario file {path}: {error.strerror}") from None
    except tomllib.TOMLDecodeError as error:
        raise ScenarioError(f"{path}: not valid TOML: {error}") from None
    return Scenario.from_dict(data, source=str(path))


def list_scenarios() -> list[Scenario]:
    """The shipped catalogue, sorted by name."""
    return sorted((_read_file(path) for path in SCENARIOS_DIR.glob("*.toml")), key=lambda s: s.name)


def load_scenario(name_or_path: str) -> Scenario:
    """A shipped scenario by name, or a scenario file by path."""
    candidate = Path(name_or_path)
    if candidate.suffix == ".toml" or candidate.exists():
        if not candidate.is_file():
            raise ScenarioError(f"no scenario file at {candidate}")
        return _read_file(candidate)
    path = SCENARIOS_DIR / f"{name_or_path}.toml"
    if not path.is_file():
        names = ", ".join(sorted(p.stem for p in SCENARIOS_DIR.glob("*.toml")))
        raise ScenarioError(
            f"unknown scenario {name_or_path!r}; choose one of {names} or give a .toml file path"
        )
    return _read_file(path)
