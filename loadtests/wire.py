"""Every message the load generator's processes exchange, typed, in one place.

Two conversations:

- **run <-> engine** (JSON lines over the engine child's stdin and stdout, see
  ``loadtests.driver`` and ``loadtests.engine``): the run sends one :class:`JobMessage` per trial
  (or a :class:`QuitMessage`); the engine answers :class:`ReadyMessage` once when it can take
  jobs, :class:`ProgressMessage` about once a second during a trial, then one
  :class:`ResultMessage` (or an :class:`ErrorMessage`) per job, and :class:`NoticeMessage` lines
  for things the run should print (a worker lost, a worker refused).
- **master <-> worker** (Locust custom messages over its ZeroMQ connection, see
  ``loadtests.distributed``): a worker says :data:`HELLO` with its asyncbench version and is
  :data:`REFUSE`\\ d when it differs; per trial the master sends :data:`PLAN` (the trial and the
  worker's share of the schedule), then :data:`GO` (time zero) or :data:`STOP`; the worker sends
  :data:`ROWS` (recorded rows as columns) and, last, :data:`DONE` with its counts.

The dataclasses are what the code uses; ``to_wire``/``from_wire`` turn them into the JSON-able
TypedDicts that travel, and back. Nothing here imports Locust.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypedDict

from loadtests.scenario import Scenario

__all__ = [
    "DEFAULT_MASTER_PORT",
    "DONE",
    "GO",
    "HELLO",
    "PLAN",
    "REFUSE",
    "ROWS",
    "STOP",
    "DoneReport",
    "EngineMessage",
    "ErrorMessage",
    "GoData",
    "HelloData",
    "JobMessage",
    "NoticeMessage",
    "PlanData",
    "PlanWire",
    "ProgressMessage",
    "ProgressWire",
    "QuitMessage",
    "ReadyMessage",
    "RefuseData",
    "ResultMessage",
    "ResultWire",
    "RowsData",
    "TrialLoadResult",
    "TrialPlan",
    "TrialProgress",
    "parse_engine_message",
]


# --- the trial plan ---------------------------------------------------------------------------


class PlanWire(TypedDict):
    run_id: str
    trial: int
    repetition: int
    variant: str
    base_url: str
    scenario: dict[str, Any]
    run_dir: str
    started_at_ms: float
    seed: int


@dataclass(frozen=True)
class TrialPlan:
    """Everything a load generator needs to drive one trial."""

    run_id: str
    trial: int
    repetition: int
    variant: str
    base_url: str
    scenario: Scenario
    run_dir: Path
    started_at_ms: float
    """Earliest time zero (epoch ms); the generator starts as soon as it is ready after it."""
    seed: int

    def to_wire(self) -> PlanWire:
        return {
            "run_id": self.run_id,
            "trial": self.trial,
            "repetition": self.repetition,
            "variant": self.variant,
            "base_url": self.base_url,
            "scenario": self.scenario.to_dict(),
            "run_dir": str(self.run_dir),
            "started_at_ms": self.started_at_ms,
            "seed": self.seed,
        }

    @classmethod
    def from_wire(cls, data: PlanWire) -> TrialPlan:
        return cls(
            run_id=data["run_id"],
            trial=int(data["trial"]),
            repetition=int(data["repetition"]),
            variant=data["variant"],
            base_url=data["base_url"].rstrip("/"),
            scenario=Scenario.from_dict(data["scenario"], source="trial plan"),
            run_dir=Path(data["run_dir"]),
            started_at_ms=float(data["started_at_ms"]),
            seed=int(data["seed"]),
        )


# --- progress ---------------------------------------------------------------------------------


class ProgressWire(TypedDict):
    elapsed_s: float
    offered_rate_per_s: float
    achieved_rate_per_s: float
    sent: int
    errors: int


@dataclass(frozen=True)
class TrialProgress:
    """A snapshot during the load; both rates describe the same window of time."""

    elapsed_s: float
    offered_rate_per_s: float
    """Requests per second the schedule offered in the window."""
    achieved_rate_per_s: float
    """Requests per second that completed in the window."""
    sent: int
    errors: int

    def to_wire(self) -> ProgressWire:
        return {
            "elapsed_s": self.elapsed_s,
            "offered_rate_per_s": self.offered_rate_per_s,
            "achieved_rate_per_s": self.achieved_rate_per_s,
            "sent": self.sent,
            "errors": self.errors,
        }

    @classmethod
    def from_wire(cls, data: ProgressWire) -> TrialProgress:
        return cls(
            elapsed_s=float(data["elapsed_s"]),
            offered_rate_per_s=float(data["offered_rate_per_s"]),
            achieved_rate_per_s=float(data["achieved_rate_per_s"]),
            sent=int(data["sent"]),
            errors=int(data["errors"]),
        )


# --- the result -------------------------------------------------------------------------------


class ResultWire(TypedDict):
    started_at_ms: float
    ended_at_ms: float
    warmup_until_ms: float
    ready_at_ms: float
    requests_counted: dict[str, int]
    rows_written: dict[str, int]
    late_sends: int
    dropped_sends: int
    workers_lost: list[str]
    interrupted: bool
    users: int
    cpu_s: float
    workers: list[str]


@dataclass(frozen=True)
class TrialLoadResult:
    """What one trial's load did, as the run records it."""

    started_at_ms: float
    """Time zero actually used (epoch ms)."""
    ended_at_ms: float
    warmup_until_ms: float
    requests_counted: dict[str, int]
    """POST attempts Locust counted, per worker (a lost worker: the rows it delivered)."""
    rows_written: dict[str, int]
    late_sends: int
    interrupted: bool
    users: int = 0
    cpu_s: float = 0.0
    """CPU time the load-generator processes spent from time zero to the end (all workers)."""
    workers: tuple[str, ...] = field(default_factory=tuple)
    dropped_sends: int = 0
    """Slots of the schedule without a first attempt's row: never sent (stop, drain deadline,
    an overloaded generator) or lost with a worker."""
    workers_lost: tuple[str, ...] = field(default_factory=tuple)
    ready_at_ms: float = 0.0
    """When the generator was ready for time zero (users spawned, workers armed)."""

    @property
    def total_counted(self) -> int:
        return sum(self.requests_counted.values())

    @property
    def total_written(self) -> int:
        return sum(self.rows_written.values())

    def to_wire(self) -> ResultWire:
        return {
            "started_at_ms": self.started_at_ms,
            "ended_at_ms": self.ended_at_ms,
            "warmup_until_ms": self.warmup_until_ms,
            "ready_at_ms": self.ready_at_ms,
            "requests_counted": dict(self.requests_counted),
            "rows_written": dict(self.rows_written),
            "late_sends": self.late_sends,
            "dropped_sends": self.dropped_sends,
            "workers_lost": list(self.workers_lost),
            "interrupted": self.interrupted,
            "users": self.users,
            "cpu_s": self.cpu_s,
            "workers": list(self.workers),
        }

    @classmethod
    def from_wire(cls, data: ResultWire) -> TrialLoadResult:
        return cls(
            started_at_ms=float(data["started_at_ms"]),
            ended_at_ms=float(data["ended_at_ms"]),
            warmup_until_ms=float(data["warmup_until_ms"]),
            ready_at_ms=float(data["ready_at_ms"]),
            requests_counted={str(k): int(v) for k, v in data["requests_counted"].items()},
            rows_written={str(k): int(v) for k, v in data["rows_written"].items()},
            late_sends=int(data["late_sends"]),
            dropped_sends=int(data["dropped_sends"]),
            workers_lost=tuple(data["workers_lost"]),
            interrupted=bool(data["interrupted"]),
            users=int(data["users"]),
            cpu_s=float(data["cpu_s"]),
            workers=tuple(data["workers"]),
        )


# --- run <-> engine (JSON lines) --------------------------------------------------------------


class JobMessage(TypedDict):
    type: Literal["job"]
    plan: PlanWire
    record: bool
    """False only to measure the recorder's overhead: no rows, no loss check."""


class QuitMessage(TypedDict):
    type: Literal["quit"]


class ReadyMessage(TypedDict):
    type: Literal["ready"]
    workers: int


class ProgressMessage(TypedDict):
    type: Literal["progress"]
    progress: ProgressWire


class ResultMessage(TypedDict):
    type: Literal["result"]
    result: ResultWire


class ErrorMessage(TypedDict):
    type: Literal["error"]
    message: str


class NoticeMessage(TypedDict):
    type: Literal["notice"]
    message: str


EngineMessage = ReadyMessage | ProgressMessage | ResultMessage | ErrorMessage | NoticeMessage
_ENGINE_TYPES = {"ready", "progress", "result", "error", "notice"}


def parse_engine_message(data: Any) -> EngineMessage | None:
    """A decoded stdout line of the engine, or None when it is not one of its messages."""
    if isinstance(data, dict) and data.get("type") in _ENGINE_TYPES:
        return data  # type: ignore[return-value]
    return None


# --- master <-> worker (Locust custom messages) -----------------------------------------------

DEFAULT_MASTER_PORT = 5557
"""TCP port the master listens on for workers unless told otherwise (Locust's own default)."""
HELLO = "asyncbench_hello"
REFUSE = "asyncbench_refuse"
PLAN = "asyncbench_plan"
GO = "asyncbench_go"
STOP = "asyncbench_stop"
ROWS = "asyncbench_rows"
DONE = "asyncbench_done"


class HelloData(TypedDict):
    version: str
    host: str


class RefuseData(TypedDict):
    reason: str


class PlanData(TypedDict):
    plan: PlanWire
    worker: str
    """The worker's name in the trial's rows (``w0``, ``w1``, ...)."""
    index: int
    count: int
    """The worker owns the schedule's slots ``k % count == index``."""
    record: bool


class GoData(TypedDict):
    zero_ms: float


class RowsData(TypedDict):
    worker: str
    trial: int
    columns: dict[str, list[Any]]


class DoneReport(TypedDict):
    worker: str
    trial: int
    counted: int
    rows: int
    late: int
    dropped: int
    cpu_s: float
