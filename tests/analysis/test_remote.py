"""`asyncbench report s3://BUCKET/RUN`: the run folder is copied from S3 (moto), then reported."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from analysis.remote import fetch_run_folder, local_copy_path
from analysis.synthetic import SyntheticSpec, build_run, write_run
from asyncbench.cli import main
from asyncbench.errors import RunFolderError

BUCKET = "runs"
SMALL = SyntheticSpec(stages=((20.0, 10.0),), repetitions=2, seed=5)


@pytest.fixture
def s3(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.setenv(name, "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket=BUCKET)
        yield client


def _upload(s3: Any, folder: Path, prefix: str) -> list[str]:
    keys = []
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            key = f"{prefix}/{path.relative_to(folder).as_posix()}"
            s3.upload_file(str(path), BUCKET, key)
            keys.append(key)
    return keys


@pytest.fixture
def stored_run(s3: Any, tmp_path: Path) -> Path:
    folder = write_run(tmp_path / "original", build_run(SMALL, "remote-1"))
    (folder / "index.html").write_text("an earlier report")
    (folder / "logs").mkdir()
    (folder / "logs" / "loadgen.log").write_text("log")
    _upload(s3, folder, "team/remote-1")
    _upload(s3, folder, "team/remote-10")  # shares the prefix "remote-1": must not be mixed in
    return folder


def test_only_the_manifest_and_data_are_copied_once(
    s3: Any, stored_run: Path, tmp_path: Path
) -> None:
    lines: list[str] = []
    url = f"s3://{BUCKET}/team/remote-1/"
    local = fetch_run_folder(url, tmp_path / "copies", s3=s3, progress=lines.append)
    assert (
        local == local_copy_path(url, tmp_path / "copies") == tmp_path / "copies/runs/team/remote-1"
    )
    copied = sorted(p.relative_to(local).as_posix() for p in local.rglob("*") if p.is_file())
    everything = sorted(
        p.relative_to(stored_run).as_posix() for p in stored_run.rglob("*") if p.is_file()
    )
    expected = [name for name in everything if name not in {"index.html", "logs/loadgen.log"}]
    assert copied == expected and "manifest.json" in copied
    for name in copied:
        assert (local / name).read_bytes() == (stored_run / name).read_bytes()
    assert lines[-1].startswith(f"{url}: {len(copied)} files copied, 0 already here")
    fetch_run_folder(url, tmp_path / "copies", s3=s3, progress=lines.append)
    assert lines[-1].startswith(f"{url}: 0 files copied, {len(copied)} already here")


def test_a_prefix_without_a_manifest_is_refused(s3: Any, tmp_path: Path) -> None:
    s3.put_object(Bucket=BUCKET, Key="team/empty/data/client/x.parquet", Body=b"x")
    with pytest.raises(RunFolderError, match="no run folder at s3://runs/team/empty: it has no"):
        fetch_run_folder("s3://runs/team/empty", tmp_path, s3=s3)
    with pytest.raises(RunFolderError, match="names no run folder"):
        fetch_run_folder("s3://runs", tmp_path, s3=s3)
    with pytest.raises(RunFolderError, match="cannot read s3://missing/run"):
        fetch_run_folder("s3://missing/run", tmp_path, s3=s3)


@pytest.mark.slow
def test_report_takes_an_s3_run_folder(
    stored_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    monkeypatch.setenv("ASYNCBENCH_REPORTS_DIR", str(tmp_path / "reports"))
    assert main(["report", f"s3://{BUCKET}/team/remote-1", "--out", str(tmp_path / "out")]) == 0
    output = capsys.readouterr().out.splitlines()
    assert output[0] == f"report: copying s3://{BUCKET}/team/remote-1 to {tmp_path}/reports/s3"
    assert output[-1] == str(tmp_path / "out" / "index.html")
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert list(summary["runs"]) == ["remote-1"]
    assert (tmp_path / "reports/s3/runs/team/remote-1/manifest.json").is_file()
