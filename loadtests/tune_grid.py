"""The grid of ``asyncbench tune``: stack settings to try, one configuration per combination.

``--grid parallelization_factor=1,4 --grid batch_concurrency=1,8`` gives four configurations,
each a mapping of the grid's keys to one value, validated against :class:`StackConfig` (so a
value the stack would refuse is refused before any trial). A configuration's label
(``parallelization_factor=4,batch_concurrency=8``) is its name in the run folder: the TRIALS
column ``configuration`` and the manifest's ``tune.configurations``.
"""

from __future__ import annotations

import itertools
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from asyncbench.errors import ConfigError
from stack.config import StackConfig

__all__ = [
    "GRID_KEYS",
    "Configuration",
    "TuneGrid",
    "parse_grid",
    "read_tune_file",
    "set_line",
]

GRID_KEYS: dict[str, tuple[str, ...]] = {
    "storage_first": (
        "parallelization_factor",
        "batch_size",
        "batching_window_s",
        "batch_concurrency",
        "memory_mb",
    ),
    "direct": ("memory_mb", "reserved_concurrency"),
}
"""Settings tune can change in place, per architecture (the rest need a deploy)."""


@dataclass(frozen=True)
class Configuration:
    """One point of the grid: the settings it changes."""

    settings: tuple[tuple[str, Any], ...]

    @property
    def label(self) -> str:
        return ",".join(f"{key}={_show(value)}" for key, value in self.settings) or "deployed"

    def as_dict(self) -> dict[str, Any]:
        return dict(self.settings)


@dataclass(frozen=True)
class TuneGrid:
    """The architecture tuned and the values of each key, in the order given."""

    variant: str
    values: tuple[tuple[str, tuple[Any, ...]], ...]

    def configurations(self) -> list[Configuration]:
        keys = [key for key, _ in self.values]
        return [
            Configuration(tuple(zip(keys, combination, strict=True)))
            for combination in itertools.product(*(values for _, values in self.values))
        ]

    def to_dict(self) -> dict[str, Any]:
        return {"variant": self.variant, "grid": {key: list(values) for key, values in self.values}}


def _show(value: Any) -> str:
    return "null" if value is None else str(value)


def _parse_value(text: str) -> Any:
    text = text.strip()
    if text.lower() in ("null", "none"):
        return None
    try:
        return int(text)
    except ValueError:
        raise ConfigError(f"grid value {text!r} is not an integer (or null)") from None


def parse_grid(
    pairs: Iterable[str] | Mapping[str, Iterable[Any]], variant: str, base: StackConfig
) -> TuneGrid:
    """``["KEY=V1,V2", ...]`` (or a mapping of key to values) into a validated grid."""
    if variant not in GRID_KEYS:
        raise ConfigError(f"tune: unknown variant {variant!r}; choose direct or storage_first")
    values: dict[str, tuple[Any, ...]] = {}
    if isinstance(pairs, Mapping):
        for key, raw in pairs.items():
            values[key] = tuple(raw) if isinstance(raw, list | tuple) else (raw,)
    else:
        for pair in pairs:
            key, separator, text = pair.partition("=")
            if not separator or not text:
                raise ConfigError(f"--grid {pair!r}: expected KEY=V1,V2,...")
            values[key.strip()] = tuple(_parse_value(part) for part in text.split(","))
    allowed = GRID_KEYS[variant]
    for key, given in values.items():
        if key not in allowed:
            raise ConfigError(
                f"--grid {key}: not a setting tune changes in place for {variant} "
                f"(choose from {', '.join(allowed)})"
            )
        if len(set(given)) != len(given) or not given:
            raise ConfigError(f"--grid {key}: give distinct values, got {list(given)}")
    grid = TuneGrid(variant, tuple(values.items()))
    if not grid.values:
        raise ConfigError("tune: give at least one --grid KEY=V1,V2")
    for configuration in grid.configurations():
        base.with_overrides(configuration.as_dict())  # the stack's own validation
    return grid


def read_tune_file(path: str | Path) -> dict[str, Any]:
    """A TOML file with ``variant``, ``rate``, ``repetitions``, ``slo_p99_ms``,
    ``slo_lag_p99_ms``, ``scenario`` and a ``[grid]`` table of key = [values]."""
    try:
        data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as error:
        raise ConfigError(f"tune config {path}: {error}") from None
    known = {"variant", "rate", "repetitions", "slo_p99_ms", "slo_lag_p99_ms", "scenario", "grid"}
    unknown = set(data) - known
    if unknown:
        raise ConfigError(
            f"tune config {path}: unknown keys {sorted(unknown)} (known: {sorted(known)})"
        )
    return data


def set_line(configuration: Mapping[str, Any]) -> str:
    """The ``--set`` flags that deploy ``configuration``."""
    return " ".join(f"--set {key}={_show(value)}" for key, value in configuration.items())
