"""The latency passes in the engine give exactly what their pandas versions gave (the
pandas code below is the analysis' former implementation, kept as the reference)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from analysis import compare, latency
from analysis.stats import describe_groups
from analysis.synthetic import SyntheticSpec, build_run
from tests.analysis.views import views

SPEC = SyntheticSpec(
    scenario="outage", outage=(10.0, 5.0), warmup_s=3, repetitions=4, stages=((30.0, 20.0),)
)


@pytest.fixture(scope="module")
def frames() -> tuple[pd.DataFrame, pd.DataFrame]:
    run = build_run(SPEC, "passes-1")
    client = run.client.copy()
    rng = np.random.default_rng(5)
    client.loc[rng.random(len(client)) < 0.02, "latency_ms"] = np.nan  # timeouts
    client.loc[rng.random(len(client)) < 0.01, "latency_from_intended_ms"] = np.nan
    return client, run.server


def _headline(client: pd.DataFrame) -> pd.DataFrame:
    return client.loc[~client["warmup"].fillna(False).astype(bool)]


def _answered(client: pd.DataFrame) -> pd.DataFrame:
    rows = _headline(client)
    return rows.loc[rows["outcome"].isin(latency.SUCCESS_OUTCOMES)]


def _origin(client: pd.DataFrame) -> pd.Series:
    return client.groupby(["variant", "trial"], observed=True)["intended_at_ms"].transform("min")


def _same(found: pd.DataFrame, expected: pd.DataFrame) -> None:
    found, expected = found.reset_index(drop=True), expected.reset_index(drop=True)
    assert list(found.columns) == list(expected.columns)
    for column in expected.columns:
        a, b = found[column].to_numpy(), expected[column].to_numpy()
        if a.dtype.kind == "f" or b.dtype.kind == "f":
            assert np.array_equal(a.astype(float), b.astype(float), equal_nan=True), column
        else:
            assert a.astype(object).tolist() == b.astype(object).tolist(), column


def test_per_trial_quantiles(frames: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    client, _ = frames
    rows = _answered(client)
    grouped = rows.groupby(["variant", "trial"], observed=True)["latency_from_intended_ms"]
    expected = pd.concat(
        {f"q{round(q * 1000):04d}": grouped.quantile(q) for q in (0.5, 0.9, 0.99)}, axis=1
    ).reset_index()
    with views(client=client) as connection:
        found = latency.per_trial_quantiles(
            connection, "latency_from_intended_ms", quantiles=(0.5, 0.9, 0.99)
        )
    _same(found, expected)


def test_outcome_rates(frames: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    client, _ = frames
    rows = _headline(client)
    expected = rows.groupby(["variant", "outcome"], observed=True).size().rename("count")
    expected = expected.reset_index()
    expected["share"] = expected["count"] / expected.groupby("variant")["count"].transform("sum")
    with views(client=client) as connection:
        _same(latency.outcome_rates(connection), expected)


def test_throughput_over_time(frames: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    client, _ = frames
    origin = _origin(client)
    intended_bin = np.floor((client["intended_at_ms"] - origin) / 1000 / 1.0) * 1.0
    done_bin = np.floor((client["sent_at_ms"] + client["latency_ms"] - origin) / 1000) * 1.0
    success = client["outcome"].isin(latency.SUCCESS_OUTCOMES)
    trials = client.groupby("variant", observed=True)["trial"].nunique()
    offered = pd.DataFrame({"variant": client["variant"], "t_s": intended_bin})
    achieved = pd.DataFrame({"variant": client["variant"][success], "t_s": done_bin[success]})
    expected = pd.concat(
        [
            offered.groupby(["variant", "t_s"], observed=True).size().rename("offered"),
            achieved.groupby(["variant", "t_s"], observed=True).size().rename("achieved"),
        ],
        axis=1,
    ).fillna(0)
    expected = expected.reset_index()
    per_trial_bin = expected["variant"].map(trials).astype(float) * 1.0
    expected["offered_per_s"] = expected.pop("offered") / per_trial_bin
    expected["achieved_per_s"] = expected.pop("achieved") / per_trial_bin
    expected = expected.sort_values(["variant", "t_s"], ignore_index=True)
    with views(client=client) as connection:
        _same(latency.throughput_over_time(connection), expected)


def test_latency_over_time(frames: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    client, _ = frames
    frame = pd.DataFrame(
        {
            "variant": client["variant"],
            "t_s": np.floor((client["intended_at_ms"] - _origin(client)) / 1000 / 1.0) * 1.0,
            "latency_ms": client["latency_ms"],
            "latency_from_intended_ms": client["latency_from_intended_ms"],
        }
    ).loc[~client["warmup"].fillna(False).astype(bool)]
    grouped = frame.groupby(["variant", "t_s"], observed=True)
    expected = pd.concat(
        {
            "n": grouped.size(),
            "p50_ms": grouped["latency_ms"].quantile(0.5),
            "p99_ms": grouped["latency_ms"].quantile(0.99),
            "p99_from_intended_ms": grouped["latency_from_intended_ms"].quantile(0.99),
        },
        axis=1,
    ).reset_index()
    with views(client=client) as connection:
        _same(latency.latency_over_time(connection), expected)


def test_send_delay_summary(frames: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    client, _ = frames
    rows = _headline(client)
    delay = rows["sent_at_ms"] - rows["intended_at_ms"]
    grouped = pd.DataFrame({"variant": rows["variant"], "delay": delay}).groupby("variant")["delay"]
    expected = pd.concat(
        {
            "n": grouped.size(),
            "late": grouped.agg(lambda values: int((values > 10.0).sum())),
            "p50_ms": grouped.quantile(0.5),
            "p99_ms": grouped.quantile(0.99),
            "max_ms": grouped.max(),
        },
        axis=1,
    ).reset_index()
    expected["late_share"] = expected["late"] / expected["n"]
    columns = ["variant", "n", "late", "late_share", "p50_ms", "p99_ms", "max_ms"]
    with views(client=client) as connection:
        _same(latency.send_delay_summary(connection), expected[columns])


@pytest.mark.parametrize("stored_twice", [False, True])
def test_cold_warm_summary(frames: tuple[pd.DataFrame, pd.DataFrame], stored_twice: bool) -> None:
    client, server = frames
    if stored_twice:  # the first item read counts (the join then reduces the items first)
        server = pd.concat([server, server.iloc[:5].assign(cold_start=True)], ignore_index=True)
        # warm items of headline requests stored again, cold: a headline row finds two items
        warm = ~server["cold_start"].fillna(True).astype(bool)
        again = server.loc[warm & server["request_id"].isin(_headline(client)["request_id"])]
        assert len(again) >= 50
        server = pd.concat([server, again.iloc[:50].assign(cold_start=True)], ignore_index=True)
    rows = _headline(client)[["variant", "request_id", "latency_ms"]]
    cold = (
        server.loc[server["request_id"].notna(), ["variant", "request_id", "cold_start"]]
        .drop_duplicates(["variant", "request_id"])
        .astype({"cold_start": "object"})
    )
    joined = rows.merge(cold, on=["variant", "request_id"], how="left")
    joined["start"] = np.where(
        joined["cold_start"].isna(),
        "unknown",
        np.where(joined["cold_start"].fillna(False).astype(bool), "cold", "warm"),
    )
    expected = describe_groups(joined, ["variant", "start"], "latency_ms")
    with views(client=client, server=server) as connection:
        found = latency.cold_warm_summary(connection)
    # The mean is DuckDB's sum (~1e-15 relative); every order statistic is exact.
    assert found["mean"].to_numpy() == pytest.approx(expected["mean"].to_numpy(), rel=1e-12)
    _same(found.drop(columns=["mean", "mean_lo", "mean_hi"]),
          expected.drop(columns=["mean", "mean_lo", "mean_hi"]))  # fmt: skip


def test_samples_compare_as_the_frames_did(frames: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    client, _ = frames
    rows = _answered(client)
    a = rows.loc[rows["variant"] == "direct"]
    b = rows.loc[rows["variant"] == "storage_first"]
    expected = compare.compare_groups(a, b, "latency_ms", label_a="direct", label_b="sf")
    with views(client=client) as connection:
        found = compare.samples(
            connection, latency.answered(connection, ["variant", "trial", "latency_ms"]),
            "variant", "latency_ms",
        )  # fmt: skip
    table = compare.compare_samples(
        found["direct"], found["storage_first"], label_a="direct", label_b="sf"
    )
    quantiles = table["statistic"] != "mean"
    _same(table.loc[quantiles], expected.loc[quantiles])
    means = table.loc[~quantiles, ["a_value", "b_value", "p_value"]].to_numpy(dtype=float)
    assert means == pytest.approx(
        expected.loc[~quantiles, ["a_value", "b_value", "p_value"]].to_numpy(dtype=float),
        rel=1e-12,
        nan_ok=True,
    )
    assert (table["verdict"] == expected["verdict"]).all()
