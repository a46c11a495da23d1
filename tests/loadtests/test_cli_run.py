"""`asyncbench scenarios`, and the one-line errors of `asyncbench run`."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest

from asyncbench.cli import main
from loadtests.scenario import list_scenarios


def test_scenarios_lists_every_scenario_with_its_parameters(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["scenarios"]) == 0
    out = capsys.readouterr().out
    for scenario in list_scenarios():
        assert f"{scenario.name}: {scenario.description}" in out
    assert "outage 20s +15s" in out  # the outage scenario's window
    assert "SLO p99" in out and "collection" in out


def test_run_without_endpoints_file_says_what_to_do(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "endpoints.json"
    code = main(["run", "--scenario", "baseline", "--endpoints", str(missing)])
    assert code == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and "asyncbench local up" in error[0] and str(missing) in error[0]


def test_run_refuses_an_endpoints_file_of_the_other_target(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "endpoints.json"
    path.write_text(
        json.dumps(
            {
                "schema_version": 1,
                "target": "aws",
                "region": "eu-west-1",
                "variants": {"direct": {"base_url": "https://x/direct", "table": "t"}},
            }
        )
    )
    assert main(["run", "--scenario", "baseline", "--endpoints", str(path)]) == 2
    assert "is for target 'aws', not 'local'" in capsys.readouterr().err


def test_run_with_an_unknown_scenario_fails_in_one_line(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["run", "--scenario", "no-such-scenario"]) == 2
    assert "no-such-scenario" in capsys.readouterr().err


def test_run_against_a_stage_that_is_down_fails_before_any_folder(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    path = tmp_path / "endpoints.json"
    url = f"http://127.0.0.1:{port}"
    path.write_text(
        json.dumps(
            {
                "schema_version": 1,
                "target": "local",
                "region": "local",
                "variants": {
                    "direct": {"base_url": f"{url}/direct", "table": "t-direct"},
                    "storage_first": {"base_url": f"{url}/storage-first", "table": "t-sf"},
                },
                "dynamodb_endpoint": url,
            }
        )
    )
    out = tmp_path / "runs"
    args = ["run", "--scenario", "baseline", "--endpoints", str(path), "--out", str(out)]
    assert main(args) == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and "asyncbench local up" in error[0]
    assert not out.exists()


def test_run_and_worker_flags_for_remote_workers_and_the_web_ui() -> None:
    from asyncbench.cli import build_parser

    parser = build_parser()
    run = parser.parse_args(["run", "--scenario", "baseline"])
    assert (run.expect_workers, run.master_bind_host, run.master_port, run.web) == (
        0, "*", 5557, None,
    )  # fmt: skip
    run = parser.parse_args(
        ["run", "--scenario", "baseline", "--expect-workers", "2", "--master-bind-host",
         "10.0.0.5", "--master-port", "6000", "--web"]
    )  # fmt: skip
    assert (run.expect_workers, run.master_bind_host, run.master_port, run.web) == (
        2, "10.0.0.5", 6000, 8089,
    )  # fmt: skip
    worker = parser.parse_args(["worker", "--master-host", "h", "--master-port", "6000"])
    assert (worker.master_host, worker.master_port) == ("h", 6000)


def test_a_worker_without_a_master_says_what_it_waits_for(tmp_path: Path) -> None:
    import os
    import signal
    import subprocess
    import sys

    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = [sys.executable, "-m", "asyncbench", "worker", "--master-host", "127.0.0.1"]
    worker = subprocess.Popen(
        [*command, "--master-port", str(port)],
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its Locust child goes down with it below
    )
    try:
        assert worker.stdout is not None
        first_line = worker.stdout.readline()  # printed before Locust is even imported
    finally:
        os.killpg(worker.pid, signal.SIGKILL)
        worker.wait(timeout=10)
        assert worker.stdout is not None
        worker.stdout.close()
    assert f"waiting for a master at 127.0.0.1:{port}" in first_line
