"""The analysis package's run folders (manifest and small tables through ``reports.schema``;
the per-request tables are read by :mod:`analysis.engine`) and price files."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow.parquet as pq

from asyncbench.errors import ConfigError, RunFolderError
from reports import schema

__all__ = ["DEFAULT_PRICES", "Run", "load_prices", "load_run"]

DEFAULT_PRICES = Path(__file__).resolve().parent / "prices" / "aws-us-east-1.json"
_PRICE_KEYS = ("region", "date", "currency", "sources", "prices")


@dataclass(frozen=True)
class Run:
    """One run: its manifest, its small tables (trials, redriven) in memory, and its per-request
    tables (client, server, parked, metrics) left where they are: the analysis reads them
    through the engine (:func:`analysis.engine.register_run`), from the folder's parquet parts
    or, for a run built in memory (tests, synthetic runs), from ``frames``."""

    path: Path
    manifest: dict[str, Any]
    trials: pd.DataFrame = field(repr=False)
    redriven: pd.DataFrame = field(
        repr=False, default_factory=lambda: schema.empty_frame(schema.REDRIVEN)
    )
    """Requests ``asyncbench redrive`` processed again (empty when none were)."""
    client_rows: int = 0
    """Rows in the client table (from the parts' footers: nothing is read to count them)."""
    frames: Mapping[str, pd.DataFrame] | None = field(repr=False, default=None)
    """In-memory per-request tables by name (engine.ROW_TABLES' names); None: the folder's."""

    @classmethod
    def from_frames(
        cls,
        path: Path | str,
        manifest: dict[str, Any],
        trials: pd.DataFrame,
        redriven: pd.DataFrame | None = None,
        **frames: pd.DataFrame,
    ) -> Run:
        """A run held in memory: ``frames`` are client=, server=, parked=, metrics=."""
        return cls(
            path=Path(path),
            manifest=manifest,
            trials=trials,
            redriven=schema.empty_frame(schema.REDRIVEN) if redriven is None else redriven,
            client_rows=len(frames["client"]) if "client" in frames else 0,
            frames=dict(frames),
        )

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
    """Open a run folder: its manifest and small tables are read, its per-request tables only
    checked (every part readable with the required columns, from the footers); a missing,
    damaged, empty or newer-version folder raises RunFolderError."""
    run_dir = Path(path)
    manifest = schema.read_manifest(run_dir)
    for spec in (schema.SERVER, schema.PARKED, schema.METRICS):
        schema.check_parts(run_dir, spec)
    client_rows = sum(
        pq.read_metadata(part).num_rows for part in schema.check_parts(run_dir, schema.CLIENT)
    )
    if client_rows == 0:
        raise RunFolderError(f"{run_dir} has no client records; the run recorded nothing")
    return Run(
        path=run_dir,
        manifest=manifest,
        trials=schema.read_table(run_dir, schema.TRIALS),
        redriven=schema.read_table(run_dir, schema.REDRIVEN),
        client_rows=client_rows,
    )


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
