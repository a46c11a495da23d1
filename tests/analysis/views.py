"""Engine views over frames, for tests of passes that read the views."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import duckdb
import pandas as pd

from analysis import engine


@contextlib.contextmanager
def views(**frames: pd.DataFrame) -> Iterator[duckdb.DuckDBPyConnection]:
    """A connection whose views ``client``, ``server``... are the given frames."""
    with engine.connect("256MB") as connection:
        engine.register_frames(connection, **frames)
        yield connection
