from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from analysis.analyze import Options, analyze_run
from analysis.load import load_prices, load_run
from analysis.synthetic import SyntheticSpec, build_run, write_run
from asyncbench.cli import main
from reports import schema


@pytest.fixture(scope="module")
def combined_report(run_folders: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("report")
    folders = [str(run_folders[name]) for name in ("baseline", "outage", "capacity")]
    assert main(["report", *folders, "--out", str(out), "--slo-p99-ms", "500"]) == 0
    return out


def test_report_prints_index_path_last(
    run_folders: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["report", str(run_folders["baseline"]), "--out", str(tmp_path)]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[-1] == str(tmp_path / "index.html")
    assert any(line.startswith("report: analysing") for line in lines[:-1])


def test_summary_has_the_contract_keys(combined_report: Path) -> None:
    summary = json.loads((combined_report / "summary.json").read_text())
    assert set(summary["scenarios"]) == {"baseline", "outage", "capacity"}
    outage = summary["scenarios"]["outage"]
    for variant in ("direct", "storage_first"):
        block = outage[variant]
        for key in ("sent", "accepted", "succeeded", "failed", "parked", "lost", "duplicates"):
            assert isinstance(block[key], int)
        for key in ("p50", "p90", "p99", "p999", "max"):
            entry = block["latency_ms"][key]
            assert entry["ci95"][0] <= entry["value"] <= entry["ci95"][1]
        assert "recovery_s" in block
    assert "lag_ms" in outage["storage_first"] and "lag_ms" not in outage["direct"]
    assert outage["storage_first"]["lost"] == 6
    assert outage["storage_first"]["recovery_s"] == pytest.approx(5.0, abs=1.0)
    assert "recovery_s" not in summary["scenarios"]["baseline"]["direct"]


def test_verdicts_on_the_three_claims(combined_report: Path) -> None:
    verdicts = json.loads((combined_report / "summary.json").read_text())["verdicts"]
    assert verdicts["response_latency"]["verdict"] == "supported"  # 4 vs 4 trials, 4x faster
    # The synthetic outage run loses 3 accepted requests per trial: the claim fails, visibly.
    assert verdicts["no_data_lost"]["verdict"] == "not supported"
    assert "lost 6" in verdicts["no_data_lost"]["detail"]
    assert verdicts["recovery"]["verdict"] == "not supported"


def test_claims_not_measured_without_failure_scenarios(
    run_folders: dict[str, Path], tmp_path: Path
) -> None:
    assert main(["report", str(run_folders["baseline"]), "--out", str(tmp_path)]) == 0
    verdicts = json.loads((tmp_path / "summary.json").read_text())["verdicts"]
    assert verdicts["no_data_lost"]["verdict"] == "not measured in this run"
    assert verdicts["recovery"]["verdict"] == "not measured in this run"


def test_too_few_trials_are_not_significant(tmp_path: Path) -> None:
    spec = SyntheticSpec(
        repetitions=1,
        latency_offset_ms={"direct": 10.0, "storage_first": 10.0},
        latency_scale_ms={"direct": 5.0, "storage_first": 5.0},
    )
    run_dir = write_run(tmp_path / "run", build_run(spec))
    assert main(["report", str(run_dir)]) == 0
    verdicts = json.loads((run_dir / "summary.json").read_text())["verdicts"]
    assert verdicts["response_latency"]["verdict"] == "not significant"
    assert (run_dir / "index.html").is_file()  # a single run is reported in its own folder


def test_html_has_banners_provenance_and_embedded_figures(combined_report: Path) -> None:
    page = (combined_report / "index.html").read_text()
    assert "PARTIAL RUN: capacity-1" in page
    assert "Local stage" in page
    assert page.index("1. The three claims") < page.index("Scenario baseline")
    assert page.count("data:image/png;base64,") >= 20
    assert "src='http" not in page and 'src="http' not in page  # readable offline
    assert "0.1.0 @ synthetic" in page
    markdown = (combined_report / "report.md").read_text()
    for line in markdown.splitlines():
        if line.startswith("!["):
            assert (combined_report / line.split("](")[1].rstrip(")")).is_file()


def test_aws_run_has_no_local_label(tmp_path: Path) -> None:
    spec = SyntheticSpec(repetitions=1, target="aws", stages=((5.0, 10.0),))
    run_dir = write_run(tmp_path / "run", build_run(spec))
    assert main(["report", str(run_dir)]) == 0
    page = (run_dir / "index.html").read_text()
    assert "Local stage" not in page and "PARTIAL RUN" not in page


def test_a_plain_locust_run_says_it_was_not_interleaved(tmp_path: Path) -> None:
    run = build_run(SyntheticSpec(repetitions=1, stages=((5.0, 10.0),)))
    interleaved = write_run(tmp_path / "interleaved", run)
    plain = write_run(
        tmp_path / "plain", replace(run, manifest={**run.manifest, "interleaved": False})
    )
    assert main(["report", str(interleaved)]) == 0
    assert "NOT INTERLEAVED" not in (interleaved / "index.html").read_text()
    assert main(["report", str(plain)]) == 0
    assert "NOT INTERLEAVED" in (plain / "index.html").read_text()


def test_before_after_section_for_two_runs_of_one_scenario(
    run_folders: dict[str, Path], tmp_path: Path
) -> None:
    second = write_run(tmp_path / "again", build_run(SyntheticSpec(seed=9), "baseline-2"))
    out = tmp_path / "report"
    assert main(["report", str(run_folders["baseline"]), str(second), "--out", str(out)]) == 0
    page = (out / "index.html").read_text()
    assert "Before / after: baseline" in page
    assert "baseline-2 vs baseline-1" in page


@pytest.mark.parametrize(
    "damage,message",
    [
        ("missing", "no run folder"),
        ("no-manifest", "not a run folder"),
        ("newer", "newer than this"),
        ("no-client", "no client records"),
        ("damaged", "cannot read"),
    ],
)
def test_bad_run_folders_give_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], damage: str, message: str
) -> None:
    run_dir = tmp_path / "run"
    if damage != "missing":
        run_dir.mkdir()
    if damage in ("newer", "no-client", "damaged"):
        schema.write_manifest(run_dir, {"run_id": "x"})
    if damage == "damaged":
        (run_dir / "data" / "client").mkdir(parents=True)
        (run_dir / "data" / "client" / "part-1.parquet").write_bytes(b"not parquet")
    if damage == "newer":
        manifest = json.loads((run_dir / "manifest.json").read_text())
        manifest["schema_version"] = schema.SCHEMA_VERSION + 1
        (run_dir / "manifest.json").write_text(json.dumps(manifest))
    assert main(["report", str(run_dir)]) == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and message in error[0]


def _api_gateway_costs(markdown: Path) -> list[str]:
    """The cost cell of each cost-table row for API Gateway requests."""
    lines = markdown.read_text().splitlines()
    header = next(line for line in lines if line.startswith("| variant | component |"))
    column = header.strip(" |").split(" | ").index("cost")
    rows = [line for line in lines if "| API Gateway requests |" in line]
    return [row.strip(" |").split(" | ")[column] for row in rows]


def test_user_price_file_overrides_and_bad_one_is_refused(
    run_folders: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    prices = json.loads(Path("analysis/prices/aws-us-east-1.json").read_text())
    prices["prices"]["api_gateway_rest_per_million_requests"] = 100.0
    price_file = tmp_path / "prices.json"
    price_file.write_text(json.dumps(prices))
    out = tmp_path / "report"
    args = ["report", str(run_folders["baseline"]), "--out", str(out), "--prices", str(price_file)]
    assert main(args) == 0
    # The API Gateway row's cost per million requests: 100 with the override (3.50 without).
    assert _api_gateway_costs(out / "report.md") == ["100", "100"]
    default_out = tmp_path / "default"
    assert main(["report", str(run_folders["baseline"]), "--out", str(default_out)]) == 0
    assert _api_gateway_costs(default_out / "report.md") == ["3.50", "3.50"]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["scenarios"]["baseline"]["direct"]["cost_per_million"]["total"] > 100
    price_file.write_text("{}")
    assert main(args) == 2
    assert "lacks" in capsys.readouterr().err


def test_minimal_run_folder_without_server_items(tmp_path: Path) -> None:
    """Only the required client columns and no collected items: the report still renders and
    says loss and recovery were not measured instead of calling every request lost."""
    import pandas as pd

    run_dir = tmp_path / "minimal"
    schema.write_manifest(
        run_dir,
        {"run_id": "m", "scenario": {"name": "outage"}, "target": "local", "partial": True},
    )
    count = 40
    client = pd.DataFrame(
        {
            "run_id": "m",
            "trial": [1] * 20 + [2] * 20,
            "variant": ["direct"] * 20 + ["storage_first"] * 20,
            "scenario": "outage",
            "worker": "w",
            "intended_at_ms": [i * 100.0 for i in range(count)],
            "sent_at_ms": [i * 100.0 for i in range(count)],
            "latency_ms": 10.0,
            "latency_from_intended_ms": 10.0,
            "status_code": 200,
            "outcome": ["succeeded"] * 18 + ["connection_error"] * 2 + ["accepted"] * 20,
            "request_id": [f"r{i}" for i in range(18)]
            + [None, None]
            + [f"s{i}" for i in range(20)],
        }
    )
    schema.write_table(run_dir, schema.CLIENT, client, part="c1")
    trials = pd.DataFrame(
        {
            "run_id": "m", "trial": [1, 2], "repetition": 1, "variant": ["direct", "storage_first"],
            "scenario": "outage", "started_at_ms": [0.0, 2000.0],
            "outage_start_ms": [200.0, 2200.0], "outage_end_ms": [400.0, 2400.0],
        }
    )  # fmt: skip
    schema.write_table(run_dir, schema.TRIALS, trials)
    assert main(["report", str(run_dir)]) == 0
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["scenarios"]["outage"]["storage_first"]["lost"] is None
    assert summary["verdicts"]["no_data_lost"]["verdict"] == "not measured in this run"
    assert summary["verdicts"]["recovery"]["verdict"] == "not measured in this run"
    assert "PARTIAL RUN" in (run_dir / "index.html").read_text()


def test_scenario_parameters_nested_by_the_run_driver_are_read(tmp_path: Path) -> None:
    """`asyncbench run` writes scenario = {name, parameters: {...}}: SLO and poison share must
    still be found there."""
    synthetic = build_run(SyntheticSpec(scenario="poison", poison_share=0.1, repetitions=1))
    manifest = dict(synthetic.manifest)
    parameters = dict(manifest.pop("scenario"))
    parameters["slo_p99_ms"] = 123.0
    manifest["scenario"] = {"name": "poison", "parameters": parameters}
    run_dir = write_run(tmp_path / "run", replace(synthetic, manifest=manifest))
    analysis = analyze_run(load_run(run_dir), Options(prices=load_prices()))
    assert analysis.has_poison and analysis.slo_p99_ms == 123.0
    assert analysis.run.scenario_name == "poison"
