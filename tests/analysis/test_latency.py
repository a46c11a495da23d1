from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from analysis import latency
from analysis.analyze import RunAnalysis
from analysis.stats import describe
from analysis.synthetic import SyntheticSpec, build_run, true_quantile
from tests.analysis.conftest import BASELINE
from tests.analysis.views import views


@pytest.mark.parametrize("variant", ["direct", "storage_first"])
@pytest.mark.parametrize("name,q", [("p50", 0.5), ("p90", 0.9), ("p99", 0.99)])
def test_true_percentiles_inside_their_intervals(
    analyses: dict[str, RunAnalysis], variant: str, name: str, q: float
) -> None:
    table = analyses["baseline"].latency
    row = table.loc[(table["variant"] == variant) & (table["measure"] == "latency_ms")].iloc[0]
    truth = true_quantile(BASELINE, variant, q)
    assert row[f"{name}_lo"] <= truth <= row[f"{name}_hi"]
    assert row[name] == pytest.approx(truth, rel=0.05)


def test_warmup_is_excluded_and_summarised_apart(analyses: dict[str, RunAnalysis]) -> None:
    analysis = analyses["baseline"]
    # 4 trials per variant... 2 repetitions x (60 s x 50/s) each; 5 s warm-up = 250 rows/trial.
    headline = analysis.latency.query("variant == 'direct' and measure == 'latency_ms'")
    warm = analysis.warmup_latency.query("variant == 'direct' and measure == 'latency_ms'")
    assert int(headline["n"].iloc[0]) == 4 * (3000 - 250)
    assert int(warm["n"].iloc[0]) == 4 * 250


def test_offered_rate_is_the_stage_rate(analyses: dict[str, RunAnalysis]) -> None:
    throughput = analyses["baseline"].throughput
    middle = throughput.loc[(throughput["t_s"] >= 1) & (throughput["t_s"] < 59)]
    assert middle["offered_per_s"].to_numpy() == pytest.approx(50.0)
    assert middle["achieved_per_s"].mean() == pytest.approx(50.0, rel=0.02)


def test_cold_start_joined_from_items(analyses: dict[str, RunAnalysis]) -> None:
    cold = analyses["baseline"].cold_warm
    # The synthetic processor marks the first item of each trial cold; warm-up excludes it.
    assert set(cold["start"]) == {"warm"}
    spec = SyntheticSpec(repetitions=1, stages=((2.0, 10.0),))
    run = build_run(spec)
    with views(client=run.client, server=run.server) as connection:
        table = latency.cold_warm_summary(connection)
    counts = table.set_index(["variant", "start"])["n"]
    assert counts[("direct", "cold")] == 1
    assert counts[("direct", "warm")] == 19


def test_outcome_rates_share_sums_to_one(analyses: dict[str, RunAnalysis]) -> None:
    rates = analyses["outage"].outcomes
    direct = rates.loc[rates["variant"] == "direct"].set_index("outcome")
    assert direct["share"].sum() == pytest.approx(1.0)
    assert direct.loc["server_error", "count"] == 2 * 500  # 10 s x 50/s per direct trial


def test_stall_corrected_p99_matches_the_analytic_value() -> None:
    """Open-loop at R/s for D s; the generator stalls S s at T: requests meant for [T, T+S)
    go out at T+S. Latency from intended = (T+S - t) + L for those (uniform on [L, L+S]),
    L otherwise, so p99 = L + S - 0.01 D (for S/D > 1%). Actual-send latency stays ~L."""
    rate, duration_s, stall_s, at_s, service_ms = 200.0, 100.0, 5.0, 40.0, 10.0
    intended = np.arange(0, duration_s, 1 / rate) * 1000
    rng = np.random.default_rng(3)
    service = service_ms + rng.uniform(-0.5, 0.5, len(intended))
    stalled = (intended >= at_s * 1000) & (intended < (at_s + stall_s) * 1000)
    sent = np.where(stalled, (at_s + stall_s) * 1000, intended)
    client = pd.DataFrame(
        {
            "variant": "direct",
            "trial": 1,
            "intended_at_ms": intended,
            "sent_at_ms": sent,
            "latency_ms": service,
            "latency_from_intended_ms": sent - intended + service,
            "warmup": False,
            "outcome": "succeeded",
        }
    )
    with views(client=client) as connection:
        table = latency.latency_summary(connection).set_index("measure")
    analytic = service_ms + stall_s * 1000 - 0.01 * duration_s * 1000
    assert table.loc["latency_from_intended_ms", "p99"] == pytest.approx(analytic, rel=0.05)
    assert table.loc["latency_ms", "p99"] < 11  # the stall is invisible from actual send
    assert describe(client["latency_ms"])["max"] < 11


def test_latency_over_time_per_second(analyses: dict[str, RunAnalysis]) -> None:
    over_time = analyses["baseline"].latency_over_time
    direct = over_time.loc[over_time["variant"] == "direct"]
    assert direct["t_s"].min() == 5  # warm-up seconds dropped
    assert (direct["n"] == 4 * 50).all()
    assert (direct["p99_ms"] >= direct["p50_ms"]).all()


def test_send_delay_counts_late_requests() -> None:
    client = pd.DataFrame(
        {
            "variant": "direct",
            "intended_at_ms": [0.0, 100.0, 200.0, 300.0],
            "sent_at_ms": [1.0, 100.0, 250.0, 400.0],
            "warmup": False,
        }
    )
    with views(client=client) as connection:
        row = latency.send_delay_summary(connection).iloc[0]
    assert row["late"] == 2 and row["late_share"] == 0.5 and row["max_ms"] == 100.0


def test_errors_are_not_fast_answers() -> None:
    """A 502 returned in 2 ms during an outage must not pull the response latency down."""
    served = pd.DataFrame(
        {
            "variant": "direct",
            "trial": 1,
            "latency_ms": [20.0] * 90 + [2.0] * 10,
            "latency_from_intended_ms": [21.0] * 90 + [3.0] * 10,
            "warmup": False,
            "outcome": ["succeeded"] * 90 + ["server_error"] * 10,
        }
    )
    with views(client=served) as connection:
        table = latency.latency_summary(connection).set_index("measure")
        counts = latency.outcome_rates(connection).set_index("outcome")["count"]
    assert table.loc["latency_ms", "n"] == 90
    assert table.loc["latency_ms", "p50"] == pytest.approx(20.0)
    assert table.loc["latency_ms", "max"] == pytest.approx(20.0)
    assert counts["server_error"] == 10  # still counted, as an outcome
