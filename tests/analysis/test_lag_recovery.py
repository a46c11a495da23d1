from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from analysis import engine, lag, recovery
from analysis.accounting import accounting
from analysis.analyze import RunAnalysis
from analysis.synthetic import SyntheticSpec, build_run


def _recovery(
    client: pd.DataFrame, server: pd.DataFrame, parked: pd.DataFrame, trials: pd.DataFrame
) -> pd.DataFrame:
    """recovery_times of a run held in frames, backlog included."""
    with engine.frames_connection(client=client, server=server, parked=parked) as connection:
        backlog = lag.backlog_over_time(connection, lag.trial_origins(connection, trials))
        return recovery.recovery_times(connection, backlog, recovery.outage_windows(trials))


def test_lags_are_the_generated_constants(analyses: dict[str, RunAnalysis]) -> None:
    summary = analyses["baseline"].lag_summary.set_index("measure")
    # No queueing at 50/s with a 1000/s processor: trigger 200 ms, work 20 ms, total 220 ms.
    assert summary.loc["accepted_to_started_ms", "p50"] == pytest.approx(200.0)
    assert summary.loc["started_to_processed_ms", "p99"] == pytest.approx(20.0)
    assert summary.loc["accepted_to_processed_ms", "max"] == pytest.approx(220.0)


def test_backlog_peak_is_rate_times_outage(analyses: dict[str, RunAnalysis]) -> None:
    backlog = analyses["outage"].backlog
    # Before the outage: ~rate x lag = 50/s x 0.22 s in flight (plus the two PENDING items
    # until they are parked 5 s after acceptance); at its end 10 s x 50/s more.
    before = backlog.loc[(backlog["t_s"] > 2) & (backlog["t_s"] < 19), "backlog"]
    assert before.max() == 11 + 2
    assert backlog.loc[(backlog["t_s"] > 6) & (backlog["t_s"] < 19), "backlog"].max() == 11
    assert backlog["backlog"].max() == pytest.approx(500 + 11, abs=3)
    # Two items per trial stay PENDING but are parked; three never reached the table.
    assert backlog.groupby("trial")["backlog"].last().tolist() == [0, 0]


def test_accounting_counts_lost_and_parked(analyses: dict[str, RunAnalysis]) -> None:
    table = analyses["outage"].accounting.set_index("variant")
    assert table.loc["storage_first", "lost"] == 2 * 3
    assert table.loc["storage_first", "parked"] == 2 * 2
    assert table.loc["storage_first", "pending"] == 2 * 2
    assert table.loc["storage_first", "sent"] == 2 * 3000
    # direct: every 502 during the 10 s outage stored nothing -> lost, 500 per trial.
    assert table.loc["direct", "lost"] == 2 * 500
    assert table.loc["direct", "failed_transiently"] == 2 * 500
    assert table.loc["direct", "client_errors"] == 2 * 500


def test_errors_around_outage(analyses: dict[str, RunAnalysis]) -> None:
    table = analyses["outage"].errors_around_outage.set_index(["variant", "phase"])
    assert table.loc[("direct", "during"), "error_share"] == 1.0
    assert table.loc[("direct", "after"), "transient_errors"] == 0
    assert table.loc[("storage_first", "during"), "transient_errors"] == 0


def test_recovery_time_matches_queueing_arithmetic(analyses: dict[str, RunAnalysis]) -> None:
    """500 queued at the outage's end drain at 150 - 50 = 100/s net: 5 s."""
    table = analyses["outage"].recovery
    storage_first = table.loc[table["variant"] == "storage_first"]
    assert storage_first["recovery_s"].tolist() == pytest.approx([5.0, 5.0], abs=1.0)
    assert storage_first["recovered"].all()
    assert storage_first["under_load"].all() and storage_first["lag_checked"].all()
    assert table.loc[table["variant"] == "direct", "recovery_s"].tolist() == [0.0, 0.0]


def test_slow_processor_recovers_only_after_the_load_stops() -> None:
    # 49/s of processing for 50/s of arrivals never catches up while the load lasts: the
    # backlog drains only after the load stops, 45 s after the outage ended.
    spec = SyntheticSpec(outage=(10.0, 5.0), drain_rate_per_s=49.0, repetitions=1)
    run = build_run(spec)
    table = _recovery(run.client, run.server, run.parked, run.trials)
    row = table.loc[table["variant"] == "storage_first"].iloc[0]
    assert row["recovered"] and not row["lag_checked"] and not row["under_load"]
    assert row["recovery_s"] > 45


def test_never_drained_backlog_is_not_recovered() -> None:
    run = build_run(SyntheticSpec(outage=(10.0, 5.0), repetitions=1))
    server = run.server.copy()
    stuck = (server["variant"] == "storage_first") & (
        server["accepted_at_ms"] >= run.trials["outage_start_ms"].max()
    )
    server.loc[stuck, "status"] = "PENDING"
    server.loc[stuck, "processed_at_ms"] = np.nan
    table = _recovery(run.client, server, run.parked, run.trials)
    row = table.loc[table["variant"] == "storage_first"].iloc[0]
    assert not row["recovered"]
    assert math.isnan(row["recovery_s"])
    # Still PENDING when collection ended: unresolved, never "lost" (the item is in the table).
    table = accounting(run.client, server, run.parked, run.trials).set_index("variant")
    assert table.loc["storage_first", "unresolved"] == int(stuck.sum())
    assert table.loc["storage_first", "lost"] == 0


def test_poison_delays_healthy_records_behind_it() -> None:
    items = pd.DataFrame(
        {
            "variant": "storage_first",
            "status": ["SUCCEEDED"] * 10 + ["FAILED"],
            "accepted_at_ms": [0.0] * 11,
            "processed_at_ms": [100.0] * 8 + [3100.0, 5100.0, 50.0],
        }
    )
    with engine.frames_connection(server=items) as connection:
        table = recovery.poison_delay(connection).set_index("variant")
    assert table.loc["storage_first", "delayed"] == 2
    assert table.loc["storage_first", "baseline_lag_ms"] == 100.0
    assert table.loc["storage_first", "excess_max_ms"] == 5000.0
    assert table.loc["storage_first", "excess_p50_ms"] == 4000.0


def test_time_to_result_only_for_polling_clients() -> None:
    client = pd.DataFrame(
        {"variant": ["storage_first"] * 3, "time_to_result_ms": [100.0, None, 300.0]}
    )
    with engine.frames_connection(client=client) as connection:
        table = lag.time_to_result_summary(connection)
    assert int(table["n"].iloc[0]) == 2
    assert table["mean"].iloc[0] == 200.0


def test_lag_split_by_cold_start(analyses: dict[str, RunAnalysis]) -> None:
    table = analyses["baseline"].lag_by_start.set_index("start")
    assert table.loc["cold", "n"] == 4  # the first item of each storage_first trial
    assert table.loc["warm", "n"] == 4 * 3000 - 4


def test_drain_after_load_matches_the_queue() -> None:
    # 80/s for 20 s into a 50/s processor: 1600 accepted, drained 32 s after start, 12 s
    # after the last acceptance (plus the constant 0.22 s lag).
    run = build_run(SyntheticSpec(stages=((20.0, 80.0),), drain_rate_per_s=50.0, repetitions=1))
    with engine.frames_connection(server=run.server, parked=run.parked) as connection:
        backlog = lag.backlog_over_time(connection, lag.trial_origins(connection, run.trials))
        table = lag.drain_summary(connection, backlog).iloc[0]
    assert table["drain_after_load_s"] == pytest.approx(12.2, abs=0.1)
    assert table["backlog_peak"] == pytest.approx(20 * 30, abs=15)
    assert table["peak_at_s"] == pytest.approx(20.0, abs=1.0)


def test_recovery_when_the_load_ends_before_the_backlog_drains() -> None:
    """50/s for 30 s, outage 20..28 s, drain 60/s: 380 queued when the load stops at 30 s,
    gone 6.3 s later; the backlog is back under its pre-outage peak + 5 at the 9th whole
    second after the outage. No later arrival exists to check the lag."""
    spec = SyntheticSpec(
        stages=((30.0, 50.0),), outage=(20.0, 8.0), drain_rate_per_s=60.0, repetitions=1
    )
    run = build_run(spec)
    table = _recovery(run.client, run.server, run.parked, run.trials)
    row = table.loc[table["variant"] == "storage_first"].iloc[0]
    assert row["recovered"] and not row["lag_checked"]
    assert row["recovery_s"] == pytest.approx(9.0, abs=1.0)
