"""The analysis package's only reader: run folders (through ``reports.schema``) and price files."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa

from asyncbench.errors import ConfigError, RunFolderError
from reports import schema

__all__ = ["DEFAULT_PRICES", "Run", "load_prices", "load_run"]

DEFAULT_PRICES = Path(__file__).resolve().parent / "prices" / "aws-us-east-1.json"
_PRICE_KEYS = ("region", "date", "currency", "sources", "prices")


@dataclass(frozen=True)
class Run:
    """One run folder in memory: its manifest and its tables (read-only by convention)."""

    path: Path
    manifest: dict[str, Any]
    client: pd.DataFrame
    server: pd.DataFrame
    parked: pd.DataFrame
    metrics: pd.DataFrame
    trials: pd.DataFrame = field(repr=False)
    redriven: pd.DataFrame = field(
        repr=False, default_factory=lambda: schema.empty_frame(schema.REDRIVEN)
    )
    """Requests ``asyncbench redrive`` processed again (empty when none were)."""

    @property
    def run_id(self) -> str:
        return str(self.manifest.get("run_id") or self.path.name)

    @property
    def scenario(self) -> dict[str, Any]:
        """The scenario's parameters as one flat dict (name, stages, outage, slo_p99_ms...);
        the run driver nests them under ``parameters``, which is flattened here."""
        scenario = self.manifest.get("scenario")
        if not isinstance(scenario, dict):
            return {"name": str(scenario or "unknown")}
        parameters = scenario.get("parameters")
        flat = dict(parameters) if isinstance(parameters, dict) else {}
        flat.update({key: value for key, value in scenario.items() if key != "parameters"})
        return flat

    @property
    def scenario_name(self) -> str:
        return str(self.scenario.get("name", "unknown"))

    @property
    def target(self) -> str:
        return str(self.manifest.get("target", "unknown"))

    @property
    def partial(self) -> bool:
        return bool(self.manifest.get("partial", False))

    @property
    def stack_config(self) -> dict[str, Any]:
        config = self.manifest.get("stack_config")
        return config if isinstance(config, dict) else {}


def load_run(path: Path | str) -> Run:
    """Read a run folder; a missing, damaged or newer-version folder raises RunFolderError."""
    run_dir = Path(path)
    manifest = schema.read_manifest(run_dir)
    client = schema.read_table(run_dir, schema.CLIENT)
    if client.empty:
        raise RunFolderError(f"{run_dir} has no client records; the run recorded nothing")
    run = Run(
        path=run_dir,
        manifest=manifest,
        client=client,
        server=schema.read_table(run_dir, schema.SERVER),
        parked=schema.read_table(run_dir, schema.PARKED),
        metrics=schema.read_table(run_dir, schema.METRICS),
        trials=schema.read_table(run_dir, schema.TRIALS),
        redriven=schema.read_table(run_dir, schema.REDRIVEN),
    )
    # Parquet decoding leaves freed buffers in Arrow's pool; hand them back before analysis.
    pa.default_memory_pool().release_unused()
    return run


def load_prices(path: Path | str | None = None) -> dict[str, Any]:
    """The price table (default: the shipped us-east-1 file); a bad file raises ConfigError."""
    price_path = Path(path) if path is not None else DEFAULT_PRICES
    try:
        data = json.loads(price_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(
            f"no price file at {price_path}; pass an existing --prices FILE"
        ) from None
    except json.JSONDecodeError as error:
        raise ConfigError(f"price file {price_path} is not valid JSON: {error}") from None
    missing = [key for key in _PRICE_KEYS if key not in data]
    if missing:
        raise ConfigError(
            f"price file {price_path} lacks {', '.join(missing)}; copy {DEFAULT_PRICES} and edit it"
        )
    return dict(data)
