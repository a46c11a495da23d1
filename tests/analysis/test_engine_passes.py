"""The engine helpers the passes use give pandas' own numbers, bit for bit."""

from __future__ import annotations

import numpy as np
import pandas as pd

from analysis import engine, metrics
from analysis.stats import describe_groups


def _frame(seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    n = 5000
    values = rng.lognormal(5, 1, n)
    values[rng.random(n) < 0.05] = np.nan
    return pd.DataFrame(
        {
            "variant": rng.choice(["direct", "storage_first"], n),
            "t_s": np.floor(rng.random(n) * 40),
            "value": values,
        }
    )


def test_group_quantiles_counting_rows_are_pandas_size_and_quantiles() -> None:
    frame = _frame(3)
    expected = frame.groupby(["variant", "t_s"])["value"]
    with engine.frames_connection() as connection:
        got = engine.group_quantiles(
            connection, frame, ["variant", "t_s"], "value", [0.5, 0.99], count_rows=True
        )
    assert got["n"].tolist() == expected.size().tolist()  # rows, also those without a value
    for q in (0.5, 0.99):
        assert got[q].tolist() == expected.quantile(q).tolist()  # exact, NaN-free groups


def test_describe_fetched_is_describe_groups() -> None:
    frame = _frame(4)
    with engine.frames_connection() as connection:
        connection.register("rows", frame)
        got = engine.describe_fetched(connection, "SELECT * FROM rows", ["variant"], "value")
    pd.testing.assert_frame_equal(got, describe_groups(frame, ["variant"], "value"))


def test_metric_sums_equal_pandas_sums_whole_or_fractional() -> None:
    rng = np.random.default_rng(5)
    values = np.concatenate([np.ones(1000), rng.random(1000) * 100])
    rows = pd.DataFrame(
        {
            "variant": "direct",
            "source": "local",
            "metric": ["Invocations"] * 1000 + ["Duration"] * 1000,
            "value": values,
            "timestamp_ms": 0.0,
        }
    )
    with engine.frames_connection(metrics=rows) as connection:
        assert metrics.metric_total(connection, "direct", "Invocations") == 1000.0
        duration = rows.loc[rows["metric"] == "Duration", "value"]
        assert metrics.metric_total(connection, "direct", "Duration") == float(duration.sum())
        assert metrics.metric_mean(connection, "direct", "Duration") == float(duration.mean())
        usage = metrics.lambda_usage(connection, "direct")
    assert usage is not None and usage.exact
    assert usage.billed_ms == float(np.ceil(duration).sum())
