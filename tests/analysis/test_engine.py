"""The engine's quantiles and summaries equal numpy's (analysis.stats) on the same rows."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from analysis import engine, stats


@pytest.fixture(scope="module")
def connection():
    with engine.connect("256MB") as opened:
        yield opened


def _frame(seed: int, n: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    values = 10 + rng.exponential(20, n)
    values[rng.random(n) < 0.01] = np.nan  # non-finite values are left out by both
    values[: n // 7] = np.round(values[: n // 7])  # ties
    return pd.DataFrame(
        {
            "variant": rng.choice(["direct", "storage_first"], n),
            "trial": rng.integers(0, 5, n),
            "latency_ms": values,
        }
    )


@pytest.mark.parametrize("n", [1, 2, 7, 100, 369, 5000])
def test_quantiles_equal_numpy_linear_bit_for_bit(connection, n):
    frame = _frame(n, n)
    probabilities = [0.0, 0.25, 0.5, 0.9, 0.95, 0.99, 0.999, 1.0]
    result = engine.quantiles(connection, frame, ["variant"], "latency_ms", probabilities)
    for row in result.itertuples(index=False):
        values = frame.loc[frame["variant"] == row[0], "latency_ms"].to_numpy()
        values = values[np.isfinite(values)]
        assert row[1] == len(values)
        for position, q in enumerate(probabilities, start=2):
            assert row[position] == np.quantile(values, q), (n, q)  # exact, not approximate


def test_linear_quantile_matches_numpy_on_awkward_fractions():
    rng = np.random.default_rng(3)
    for _ in range(2000):
        n = int(rng.integers(2, 400))
        q = float(rng.random())
        values = np.sort(rng.normal(0, 1e6, n))
        below = math.floor((n - 1) * q)
        mine = engine.linear_quantile(values[below], values[min(below + 1, n - 1)], n, q)
        assert mine == np.quantile(values, q)


@pytest.mark.parametrize("trial_column", [None, "trial"])
def test_describe_groups_equals_stats(connection, trial_column):
    frame = _frame(11, 20_000)
    expected = stats.describe_groups(frame, ["variant"], "latency_ms", trial_column)
    got = engine.describe_groups(connection, frame, ["variant"], "latency_ms", trial_column)
    assert list(got.columns) == list(expected.columns)
    exact = [c for c in expected.columns if not c.startswith("mean")]
    pd.testing.assert_frame_equal(got[exact], expected[exact], check_exact=True)
    # The mean is DuckDB's sum, numpy's is pairwise: equal to rounding.
    pd.testing.assert_frame_equal(
        got[["mean", "mean_lo", "mean_hi"]], expected[["mean", "mean_lo", "mean_hi"]], rtol=1e-12
    )


def test_connection_has_the_memory_limit_and_a_spill_directory():
    with engine.connect("300MB") as connection:
        limit, spill = connection.execute(
            "SELECT current_setting('memory_limit'), current_setting('temp_directory')"
        ).fetchone()
    assert limit in ("286.1 MiB", "300.0 MB")
    assert "asyncbench-engine-" in spill
    assert engine.default_memory_limit().endswith("MB")


def test_default_limit_is_a_quarter_of_memory_at_most_the_cap(monkeypatch):
    from types import SimpleNamespace

    for total_gb, expected_mb in ((2, 512), (64, engine.DEFAULT_MEMORY_CAP_MB)):
        monkeypatch.setattr(
            engine.psutil, "virtual_memory", lambda gb=total_gb: SimpleNamespace(total=gb * 2**30)
        )
        assert engine.default_memory_limit() == f"{expected_mb}MB"


def test_groups_without_finite_values_and_empty_frames_match_stats(connection):
    frame = _frame(5, 3000)
    frame.loc[frame["variant"] == "direct", "latency_ms"] = np.nan
    frame.loc[frame["trial"] == 2, "latency_ms"] = np.nan  # a trial without values
    for data in (frame, frame.iloc[0:0]):
        expected = stats.describe_groups(data, ["variant"], "latency_ms", "trial")
        got = engine.describe_groups(connection, data, ["variant"], "latency_ms", "trial")
        exact = [c for c in expected.columns if not c.startswith("mean")]
        pd.testing.assert_frame_equal(
            got[exact], expected[exact], check_exact=True, check_dtype=len(data) > 0
        )


def _client_rows(trial: int, n: int) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "run_id": "r",
            "trial": trial,
            "variant": "direct",
            "scenario": "baseline",
            "worker": "w1",
            "intended_at_ms": np.arange(n, dtype=float),
            "sent_at_ms": np.arange(n, dtype=float),
            "latency_ms": np.full(n, 5.0),
            "latency_from_intended_ms": np.full(n, 6.0),
            "status_code": 200,
            "outcome": "succeeded",
            "request_id": [f"t{trial}-{i}" for i in range(n)],
        }
    )


def test_run_folder_views_have_the_schema_and_every_part(tmp_path, connection):
    from reports import schema

    # Two parts written by different writers: the second lacks an optional column entirely.
    schema.write_table(tmp_path, schema.CLIENT, _client_rows(1, 3), part="a")
    second = schema.conform(_client_rows(2, 4), schema.CLIENT).drop_columns(["time_to_result_ms"])
    (tmp_path / "data/client").mkdir(parents=True, exist_ok=True)
    import pyarrow.parquet as pq

    pq.write_table(second, tmp_path / "data/client/b.parquet")
    engine.register_run_folder(connection, tmp_path)
    described = connection.execute("DESCRIBE client").fetchall()
    assert [row[0] for row in described] == [*schema.CLIENT.columns, *engine.ORDER_COLUMNS]
    order = connection.execute(
        "SELECT request_id FROM client ORDER BY part_file, part_row"
    ).fetchall()
    assert [row[0] for row in order] == [f"t1-{i}" for i in range(3)] + [
        f"t2-{i}" for i in range(4)
    ]
    counts = connection.execute(
        "SELECT trial, count(*), count(time_to_result_ms) FROM client GROUP BY trial ORDER BY trial"
    ).fetchall()
    assert counts == [(1, 3, 0), (2, 4, 0)]
    # Tables with no part at all are empty views with their columns.
    assert connection.execute("SELECT count(*) FROM server").fetchone() == (0,)
    assert [row[0] for row in connection.execute("DESCRIBE metrics").fetchall()] == [
        *schema.METRICS.columns,
        *engine.ORDER_COLUMNS,
    ]


def test_a_damaged_part_is_one_clear_error(tmp_path, connection):
    from asyncbench.errors import RunFolderError

    (tmp_path / "data/server").mkdir(parents=True)
    (tmp_path / "data/server/t1.parquet").write_bytes(b"not parquet")
    with pytest.raises(RunFolderError, match=r"cannot read .*t1\.parquet"):
        engine.register_run_folder(connection, tmp_path)


def test_frames_register_under_the_same_names(connection):
    engine.register_frames(connection, client=_client_rows(3, 5))
    assert connection.execute("SELECT count(*), min(trial) FROM client").fetchone() == (5, 3)
    rows = connection.execute("SELECT request_id FROM client ORDER BY part_row").fetchall()
    assert [row[0] for row in rows] == [f"t3-{i}" for i in range(5)]
    assert connection.execute("SELECT count(*) FROM parked").fetchone() == (0,)
    with pytest.raises(ValueError, match="unknown table"):
        engine.register_frames(connection, clients=_client_rows(3, 5))
