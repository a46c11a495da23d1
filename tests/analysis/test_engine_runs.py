"""Runs read in place: the engine's frames, views and pandas' group quantiles."""

from __future__ import annotations

from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest

from analysis import engine
from analysis.analyze import Options, analyze_run
from analysis.load import Run, load_prices, load_run
from analysis.synthetic import SyntheticSpec, build_run, write_run
from asyncbench.errors import RunFolderError
from reports import schema


def _frame(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "variant": rng.choice(["direct", "storage_first", None], n),
            "trial": rng.integers(1, 4, n).astype("int32"),
            "value": rng.lognormal(3, 1, n).round(rng.integers(0, 3)),
        }
    )
    frame.loc[rng.random(n) < 0.05, "value"] = np.nan
    frame.loc[rng.random(n) < 0.01, "value"] = np.inf
    return frame


@pytest.mark.parametrize("n", [1, 2, 7, 100, 2001])
def test_group_quantiles_are_pandas_groupby_quantiles_bit_for_bit(n: int) -> None:
    frame = _frame(n, seed=n)
    probabilities = [0.0, 0.1, 0.5, 0.9, 0.99, 0.999, 1.0]
    grouped = frame.groupby(["variant", "trial"], observed=True)["value"]
    expected = pd.concat({q: grouped.quantile(q) for q in probabilities}, axis=1).reset_index()
    with engine.connect("256MB") as connection:
        found = engine.group_quantiles(
            connection, frame, ["variant", "trial"], "value", probabilities
        )
    assert (
        found[["variant", "trial"]]
        .astype(object)
        .equals(expected[["variant", "trial"]].astype(object))
    )
    for q in probabilities:
        assert np.array_equal(found[q].to_numpy(), expected[q].to_numpy(), equal_nan=True), q


def test_group_quantiles_of_a_group_without_values_are_nan() -> None:
    frame = pd.DataFrame({"variant": ["a", "a", "b"], "value": [np.nan, np.nan, 1.0]})
    with engine.connect("256MB") as connection:
        found = engine.group_quantiles(connection, frame, ["variant"], "value", [0.5])
    assert found["n"].tolist() == [0, 1]
    assert np.isnan(found[0.5].iloc[0]) and found[0.5].iloc[1] == 1.0


def _two_part_folder(tmp_path: Path) -> tuple[Path, pd.DataFrame]:
    run = build_run(SyntheticSpec(repetitions=1, stages=((4.0, 10.0),)), "parts-1")
    run_dir = write_run(tmp_path / "run", run)
    client = schema.read_table(run_dir, schema.CLIENT)
    # A second part, without two optional columns: they read back as missing values.
    extra = client.drop(columns=["time_to_result_ms", "result_status"]).iloc[:7]
    schema.write_table(run_dir, schema.CLIENT, extra, part="client-0002")
    return run_dir, schema.read_table(run_dir, schema.CLIENT)


def test_fetch_gives_the_frame_pandas_read(tmp_path: Path) -> None:
    run_dir, expected = _two_part_folder(tmp_path)
    with engine.connect("256MB") as connection:
        engine.register_run(connection, load_run(run_dir))
        found = engine.fetch(connection, "client")
        some = engine.fetch(connection, "client", ["variant", "latency_ms"], "trial = 1")
    pd.testing.assert_frame_equal(found, expected)
    chosen = expected.loc[expected["trial"] == 1, ["variant", "latency_ms"]]
    pd.testing.assert_frame_equal(some, chosen.reset_index(drop=True))


def test_load_run_reads_no_row_table_but_counts_client_rows(tmp_path: Path) -> None:
    run_dir, expected = _two_part_folder(tmp_path)
    run = load_run(run_dir)
    assert run.frames is None and run.client_rows == len(expected)
    assert not hasattr(run, "client")
    empty = tmp_path / "empty"
    schema.write_manifest(empty, run.manifest)
    with pytest.raises(RunFolderError, match="no client records"):
        load_run(empty)


def test_a_run_from_frames_analyses_as_its_folder(tmp_path: Path) -> None:
    spec = SyntheticSpec(
        scenario="outage", outage=(5.0, 3.0), repetitions=1, stages=((15.0, 20.0),)
    )
    synthetic = build_run(spec, "frames-1")
    run_dir = write_run(tmp_path / "run", synthetic)
    options = Options(prices=load_prices())
    from_folder = analyze_run(load_run(run_dir), options)
    in_memory = Run.from_frames(
        run_dir,
        synthetic.manifest,
        synthetic.trials,
        synthetic.redriven,
        client=synthetic.client,
        server=synthetic.server,
        parked=synthetic.parked,
        metrics=synthetic.metrics,
    )
    from_frames = analyze_run(in_memory, options)
    for name in ("latency", "per_trial", "throughput", "latency_over_time", "send_delay"):
        pd.testing.assert_frame_equal(
            getattr(from_frames, name), getattr(from_folder, name), check_dtype=False
        )
    assert from_frames.variants == from_folder.variants == ("direct", "storage_first")
    pd.testing.assert_frame_equal(from_frames.cdf["latency_ms"], from_folder.cdf["latency_ms"])


def test_pooled_and_trials_is_describe_groups_with_and_without_trials() -> None:
    frame = _frame(3000, seed=11)
    frame.loc[frame["variant"] == "direct", "trial"] = 1  # one trial: nothing to widen by
    frame = pd.concat(
        [frame, pd.DataFrame({"variant": ["empty"], "trial": [1], "value": [np.nan]})]
    ).astype({"trial": "int32"})
    with engine.connect("256MB") as connection:
        widened, pooled = engine.describe_pooled_and_trials(
            connection, frame, ["variant"], "value", "trial"
        )
        expected_widened = engine.describe_groups(
            connection, frame, ["variant"], "value", trial_column="trial"
        )
        expected_pooled = engine.describe_groups(connection, frame, ["variant"], "value")
    pd.testing.assert_frame_equal(widened, expected_widened)
    pd.testing.assert_frame_equal(pooled, expected_pooled)
    assert widened["trials"].tolist() == [1, 1, 3]


@pytest.mark.parametrize("few_groups", [0, 1000])
def test_order_statistics_by_sorted_lists_and_by_selection_are_numpys(
    monkeypatch: pytest.MonkeyPatch, few_groups: int
) -> None:
    """Both ways of fetching order statistics (lists past FEW_GROUPS groups, quantile_disc up
    to it) give numpy's quantiles bit for bit, ties and one-value groups included."""
    monkeypatch.setattr(engine, "FEW_GROUPS", few_groups)
    monkeypatch.setattr(engine, "FEW_RANKS", 10**6)
    frame = _frame(5000, seed=3)
    frame = frame.loc[np.isfinite(frame["value"])]
    probabilities = [0.0, 0.001, 0.25, 0.5, 0.9, 0.99, 0.999, 1.0]
    with engine.connect("256MB") as connection:
        found = engine.quantiles(connection, frame, ["variant", "trial"], "value", probabilities)
    for row in found.itertuples(index=False):
        values = frame.loc[
            (frame["variant"] == row.variant) & (frame["trial"] == row.trial), "value"
        ].to_numpy()
        expected = np.quantile(values, probabilities)
        assert np.array_equal(np.array(row[3:], dtype=float), expected), (row.variant, row.trial)


def test_passes_run_side_by_side_on_cursors_of_one_database(tmp_path: Path) -> None:
    """Two passes overlap (each waits for the other at a barrier: run one after the other,
    the first would time out), both read the connection's views, each on its own cursor."""
    import threading

    barrier = threading.Barrier(2, timeout=30)

    def count(connection: duckdb.DuckDBPyConnection, table: str) -> tuple[int, int]:
        barrier.wait()
        found = connection.execute(f"SELECT count(*) FROM {table}").fetchone()
        assert found is not None
        return id(connection), int(found[0])

    with engine.connect() as connection:
        connection.execute("CREATE VIEW numbers AS SELECT * FROM range(10)")
        with engine.Passes(connection, workers=2) as passes:
            first, second = passes.submit(count, "numbers"), passes.submit(count, "numbers")
        (cursor_a, rows_a), (cursor_b, rows_b) = first.result(), second.result()
        assert rows_a == rows_b == 10
        assert len({cursor_a, cursor_b, id(connection)}) == 3
        threads = connection.execute("SELECT current_setting('threads')").fetchone()
        with engine.Passes(connection, workers=2) as passes:  # the cores shared out, then back
            shared = passes.submit(
                lambda cursor: cursor.execute("SELECT current_setting('threads')").fetchone()
            )
        assert threads is not None and shared.result() == (max(1, threads[0] // 2),)
        assert connection.execute("SELECT current_setting('threads')").fetchone() == threads
        with engine.Passes(connection, workers=1) as passes:  # on the connection, at once
            at_once = passes.submit(lambda cursor: (cursor is connection, 1))
        assert at_once.done() and at_once.result() == (True, 1)
        with pytest.raises(duckdb.CatalogException), engine.Passes(connection, 2) as passes:
            passes.submit(_missing).result()


def _missing(connection: duckdb.DuckDBPyConnection) -> None:
    connection.execute("SELECT * FROM no_such_table")


@pytest.mark.parametrize(
    ("limit", "rows", "workers"),
    [("1GB", 1_000_000, 2), ("1GB", 10_000_000, 1), ("300MB", 1_000_000, 1), ("8GB", 0, 2)],
)
def test_two_passes_at_once_only_while_two_fit_in_the_memory_limit(
    limit: str, rows: int, workers: int
) -> None:
    with engine.connect(limit) as connection:
        size = engine.memory_limit_bytes(connection)
        assert abs(size - {"1GB": 1e9, "300MB": 3e8, "8GB": 8e9}[limit]) < 0.05 * size
        assert engine.pass_workers(connection, rows) == workers
