"""Run folders with known answers, shaped as the real handlers write them: the audit's cases.

Each case writes a synthetic run folder, reports it through the command line and checks the
verdict, the accounting (classes summing to ``sent``) or the capacity figures in summary.json.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from analysis.accounting import accounting
from analysis.analyze import Options, analyze_run
from analysis.claims import judge_claims
from analysis.load import load_prices, load_run
from analysis.report_tables import redriven_table
from analysis.synthetic import SyntheticSpec, build_run, write_run
from asyncbench.cli import main

SAME = {"direct": 20.0, "storage_first": 20.0}


def _report(tmp_path: Path, spec: SyntheticSpec, *extra: str) -> dict[str, Any]:
    run_dir = write_run(tmp_path / spec.scenario, build_run(spec, f"{spec.scenario}-1"))
    assert main(["report", str(run_dir), *extra]) == 0
    return dict(json.loads((run_dir / "summary.json").read_text()))


def _sums_to_sent(block: dict[str, Any]) -> None:
    assert sum(block["accounting"].values()) == block["sent"]


# -- claim 1 ---------------------------------------------------------------------------------


def test_two_vs_two_trials_is_not_significant_even_when_four_times_faster(tmp_path: Path) -> None:
    """2 trials per variant: no trial-level test can reach p < 0.05, so no verdict either way
    (the audit: the request-level fallback called identical drifting variants 'supported')."""
    summary = _report(tmp_path, SyntheticSpec(repetitions=2, seed=3))
    verdict = summary["verdicts"]["response_latency"]
    assert verdict["verdict"] == "not significant"
    assert "too few trials: 2 per variant, the test needs >= 4" in verdict["detail"]
    assert verdict["trials"] == {"direct": 2, "storage_first": 2}


def test_identical_variants_with_drift_are_not_supported_by_pooling(tmp_path: Path) -> None:
    spec = SyntheticSpec(
        repetitions=2,
        latency_offset_ms=SAME,
        latency_scale_ms=SAME,
        drift={"direct": (1.0, 1.1), "storage_first": (0.92, 1.0)},
    )
    verdict = _report(tmp_path, spec)["verdicts"]["response_latency"]
    assert verdict["verdict"] == "not significant"


def test_storage_first_slower_at_p99_is_not_supported(tmp_path: Path) -> None:
    """Faster at p50 (31 vs 43 ms) but slower at p99 (148 vs 63 ms), 5 vs 5 trials: the claim
    that storage-first is faster fails (the audit: an asymmetric rule called it 'not
    significant')."""
    spec = SyntheticSpec(
        repetitions=5,
        stages=((20.0, 50.0),),
        latency_offset_ms={"direct": 40.0, "storage_first": 10.0},
        latency_scale_ms={"direct": 5.0, "storage_first": 30.0},
    )
    verdict = _report(tmp_path, spec)["verdicts"]["response_latency"]
    assert verdict["verdict"] == "not supported"
    assert "p99" in verdict["detail"] and "slower" in verdict["detail"]
    assert verdict["p_values"]["p99"] < 0.05
    assert verdict["trials"] == {"direct": 5, "storage_first": 5}


def test_five_trials_decide_with_one_overlapping_pair(tmp_path: Path) -> None:
    """5 vs 5 with one trial of each variant out of order still reaches p < 0.05."""
    spec = SyntheticSpec(
        repetitions=5,
        stages=((10.0, 50.0),),
        latency_offset_ms=SAME,
        latency_scale_ms=SAME,
        drift={
            "direct": (1.3, 1.35, 1.4, 1.45, 1.1),
            "storage_first": (1.0, 1.02, 1.04, 1.06, 1.2),
        },
    )
    verdict = _report(tmp_path, spec)["verdicts"]["response_latency"]
    assert verdict["p_values"]["p50"] < 0.05
    assert verdict["verdict"] == "supported"
    assert "time to a processed result" in verdict["detail"]


def test_verdict_uses_latency_from_intended_send(tmp_path: Path) -> None:
    """A generator that could not keep up delays storage_first's sends: from the actual send
    it looks as fast as direct's, from the intended send it is not."""
    run = build_run(SyntheticSpec(repetitions=4, latency_offset_ms=SAME, latency_scale_ms=SAME))
    client = run.client.copy()
    late = client["variant"] == "storage_first"
    client.loc[late, "latency_from_intended_ms"] += 200.0
    client.loc[late, "sent_at_ms"] += 200.0
    run_dir = write_run(tmp_path / "run", type(run)(**{**run.__dict__, "client": client}))
    analysis = analyze_run(load_run(run_dir), Options(prices=load_prices()))
    verdict = judge_claims([analysis])[0]
    assert verdict.verdict == "not supported"


# -- accounting and loss -----------------------------------------------------------------------

OUTAGE = SyntheticSpec(scenario="outage", outage=(20.0, 10.0), drain_rate_per_s=150.0)


def test_items_pending_at_the_deadline_are_unresolved_not_lost(tmp_path: Path) -> None:
    """The audit: 40 PENDING items turned the verdict into 'not supported'."""
    summary = _report(tmp_path, SyntheticSpec(**{**OUTAGE.__dict__, "pending_per_trial": 20}))
    block = summary["scenarios"]["outage"]["storage_first"]
    assert block["accounting"]["unresolved"] == 40
    assert block["accounting"]["lost"] == 0 and block["lost"] == 0
    _sums_to_sent(block)
    verdict = summary["verdicts"]["no_data_lost"]
    assert verdict["verdict"] == "not measured in this run"
    assert "40 accepted requests were unresolved" in verdict["detail"]


def test_lost_items_fail_the_claim_when_collection_settled(tmp_path: Path) -> None:
    summary = _report(tmp_path, SyntheticSpec(**{**OUTAGE.__dict__, "lost_per_trial": 3}))
    assert summary["scenarios"]["outage"]["storage_first"]["accounting"]["lost"] == 6
    assert summary["verdicts"]["no_data_lost"]["verdict"] == "not supported"


def test_outage_without_loss_supports_the_claim(tmp_path: Path) -> None:
    summary = _report(tmp_path, OUTAGE)
    assert summary["verdicts"]["no_data_lost"]["verdict"] == "supported"
    assert "direct transient failures 1000" in summary["verdicts"]["no_data_lost"]["detail"]


def test_failures_injected_but_not_observed_are_not_measured(tmp_path: Path) -> None:
    # A poison share so small that no request drew it: nothing failed, nothing to judge.
    summary = _report(tmp_path, SyntheticSpec(scenario="poison", poison_share=1e-9))
    verdict = summary["verdicts"]["no_data_lost"]
    assert verdict["verdict"] == "not measured in this run"
    assert "none was observed" in verdict["detail"]


def test_a_502_retried_into_a_200_belongs_to_its_request(tmp_path: Path) -> None:
    spec = SyntheticSpec(retried_per_trial=3, repetitions=2)
    run = build_run(spec)
    table = accounting(run.client, run.server, run.parked, run.trials).set_index("variant")
    direct = table.loc["direct"]
    assert direct["attempts"] == direct["sent"] + 6
    assert direct["retried"] == 6
    assert direct["succeeded"] == direct["sent"]
    assert direct["failed_transiently"] == 0 and direct["lost"] == 0
    summary = _report(tmp_path, spec)
    _sums_to_sent(summary["scenarios"]["baseline"]["direct"])
    assert summary["scenarios"]["baseline"]["direct"]["lost"] == 0


def test_direct_poison_stores_no_item_and_is_rejected_permanently(tmp_path: Path) -> None:
    spec = SyntheticSpec(scenario="poison", poison_share=0.1, repetitions=2)
    run = build_run(spec)
    rejected = run.client.loc[
        (run.client["variant"] == "direct") & (run.client["status_code"] == 400), "request_id"
    ]
    assert len(rejected) > 0
    assert not run.server["request_id"].isin(rejected).any()  # as processor/direct.py does
    summary = _report(tmp_path, spec)
    direct = summary["scenarios"]["poison"]["direct"]
    storage_first = summary["scenarios"]["poison"]["storage_first"]
    assert direct["accounting"]["rejected_permanently"] == len(rejected)
    assert direct["accounting"]["failed_transiently"] == 0
    assert direct["lost"] == len(rejected)  # the seed's sense: the data never reached the table
    assert storage_first["accounting"]["failed"] == storage_first["failed"] > 0
    assert storage_first["lost"] == 0
    _sums_to_sent(direct)
    _sums_to_sent(storage_first)


def test_a_parked_item_that_later_succeeded_is_succeeded_and_redriven(tmp_path: Path) -> None:
    spec = SyntheticSpec(**{**OUTAGE.__dict__, "parked_per_trial": 1, "redriven_per_trial": 2})
    summary = _report(tmp_path, spec)
    block = summary["scenarios"]["outage"]["storage_first"]
    assert block["accounting"]["parked"] == 2
    assert block["redriven"] == 4 and block["redriven_succeeded"] == 4
    _sums_to_sent(block)
    page = (tmp_path / "outage" / "index.html").read_text()
    assert "of which re-driven: 4" in page
    assert "Re-driven requests" in page
    table = redriven_table(load_run(tmp_path / "outage").redriven)
    assert table[["source", "status_before", "status_after", "requests"]].values.tolist() == [
        ["parked", "PENDING", "SUCCEEDED", 4]
    ]


def test_dropped_sends_count_in_sent_and_flag_the_trial(tmp_path: Path) -> None:
    spec = SyntheticSpec(dropped_per_trial=7, workers_lost_per_trial=1, repetitions=2)
    summary = _report(tmp_path, spec)
    block = summary["scenarios"]["baseline"]["storage_first"]
    assert block["accounting"]["dropped"] == 14 and block["dropped"] == 14
    assert block["dropped_counted"] is True
    _sums_to_sent(block)
    page = (tmp_path / "baseline" / "index.html").read_text()
    assert "DROPPED SENDS" in page
    assert "baseline trial 2 (storage_first): 7 sends dropped, 1 worker(s) lost" in page


def test_uncounted_dropped_sends_say_so(tmp_path: Path) -> None:
    summary = _report(tmp_path, SyntheticSpec(dropped_per_trial=None, repetitions=1))
    block = summary["scenarios"]["baseline"]["direct"]
    assert block["dropped_counted"] is False and block["accounting"]["dropped"] == 0
    page = (tmp_path / "baseline" / "index.html").read_text()
    assert "dropped sends not counted" in page


# -- capacity ----------------------------------------------------------------------------------

STAIRCASE = SyntheticSpec(
    scenario="my-staircase",  # not named "capacity": the stepping rate decides
    stages=((40.0, 10.0), (40.0, 20.0), (40.0, 40.0), (40.0, 80.0), (40.0, 160.0)),
    repetitions=1,
    generator_limit_per_s=100.0,
)


def test_a_generator_limited_stage_is_never_the_knee(tmp_path: Path) -> None:
    """The audit: a generator that managed 100/s of a 160/s stage was reported as the knee."""
    summary = _report(tmp_path, STAIRCASE, "--slo-p99-ms", "500")
    for variant in ("direct", "storage_first"):
        capacity = summary["scenarios"]["my-staircase"][variant]["capacity"]
        assert capacity["knee"] == {"rate_per_s": 80.0, "stage": 3, "n": 3200, "repetitions": 1}
        assert capacity["sustained"]["rate_per_s"] == 80.0
        assert capacity["unjudged"] == "160/s generator-limited"
    page = (tmp_path / "my-staircase" / "index.html").read_text()
    assert "generator-limited" in page and "more --processes" in page


def test_a_stage_passes_on_p99_from_intended_send(tmp_path: Path) -> None:
    """Late sends whose latency from the actual send is fine fail the stage from intended."""
    run = build_run(SyntheticSpec(**{**STAIRCASE.__dict__, "generator_limit_per_s": None}))
    client = run.client.copy()
    top = client["stage"] == 4
    client.loc[top, "latency_from_intended_ms"] += 900.0  # waited in the generator's queue
    run_dir = write_run(tmp_path / "run", type(run)(**{**run.__dict__, "client": client}))
    options = Options(prices=load_prices(), slo_p99_ms=500.0)
    stages = analyze_run(load_run(run_dir), options).stages.set_index(["variant", "stage"])
    assert (
        stages.loc[("direct", 4), "p99_ms"]
        < 500
        < stages.loc[("direct", 4), "p99_from_intended_ms"]
    )
    assert stages.loc[("direct", 4), "status"] == "fail"


def test_a_stage_too_short_for_a_bounded_p99_does_not_pass(tmp_path: Path) -> None:
    spec = SyntheticSpec(stages=((10.0, 10.0), (40.0, 20.0)), repetitions=1)
    run_dir = write_run(tmp_path / "run", build_run(spec))
    analysis = analyze_run(load_run(run_dir), Options(prices=load_prices()))
    stages = analysis.stages.set_index(["variant", "stage"])
    assert stages.loc[("direct", 0), "status"] == "too few requests"
    assert np.isnan(stages.loc[("direct", 0), "p99_from_intended_hi_ms"])
    assert stages.loc[("direct", 1), "status"] == "pass"
    assert analysis.is_capacity


@pytest.mark.parametrize("stages", [((60.0, 50.0),), ((20.0, 50.0), (20.0, 50.0))])
def test_a_steady_scenario_gets_no_capacity_analysis(
    stages: tuple[tuple[float, float], ...], tmp_path: Path
) -> None:
    run_dir = write_run(tmp_path / "run", build_run(SyntheticSpec(stages=stages, repetitions=1)))
    assert not analyze_run(load_run(run_dir), Options(prices=load_prices())).is_capacity
