"""Accounting in the engine: which row of a request or an item counts when several do."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pandas as pd
import pytest

from analysis import accounting as accounting_module
from analysis import engine
from analysis.accounting import accounting, request_classes
from analysis.load import load_run
from analysis.synthetic import SyntheticSpec, build_run, write_run
from reports import schema
from reports.schema import write_table


def _client(rows: list[tuple[str, int, str, float, int, str, str | None]]) -> pd.DataFrame:
    return pd.DataFrame(
        rows,
        columns=[
            "variant",
            "trial",
            "worker",
            "intended_at_ms",
            "attempt",
            "outcome",
            "request_id",
        ],
    ).assign(status_code=lambda frame: frame["outcome"].map({"accepted": 202}).fillna(0))


def _server(rows: list[tuple[str, int, str, str, int]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["variant", "trial", "request_id", "status", "duplicates"])


def test_the_last_attempt_read_decides_a_request_and_its_last_item_read_its_class() -> None:
    client = _client(
        [
            ("storage_first", 1, "w", 1.0, 1, "timeout", None),
            ("storage_first", 1, "w", 1.0, 2, "accepted", "a"),  # the retry answered
            ("storage_first", 1, "w", 2.0, 1, "accepted", "b"),
            ("storage_first", 1, "w", 2.0, 1, "timeout", None),  # same attempt: read last wins
            ("storage_first", 1, "w", 3.0, 1, "accepted", "c"),
        ]
    )
    # "a" collected twice: the first row read counts once, the last read gives its status.
    server = _server(
        [
            ("storage_first", 1, "a", "PENDING", 0),
            ("storage_first", 1, "a", "SUCCEEDED", 2),
            ("storage_first", 1, "c", "FAILED", 0),
        ]
    )
    trials = pd.DataFrame({"variant": ["storage_first"], "trial": [1], "unfinished": [0]})
    with engine.frames_connection(client=client, server=server) as connection:
        classes = request_classes(connection, trials)
    assert classes["class"].tolist() == ["succeeded", "no_answer", "failed"]
    assert classes["attempts"].tolist() == [2, 1, 1]
    row = accounting(client, server, pd.DataFrame(), trials).iloc[0]
    assert (row["recorded"], row["attempts"], row["retried"]) == (3, 5, 1)
    assert (row["items_collected"], row["pending"], row["duplicates"]) == (2, 1, 0)
    assert (row["succeeded"], row["failed"], row["no_answer"], row["lost"]) == (1, 1, 1, 1)
    assert row["client_errors"] == 2


def test_read_order_across_parts_is_the_part_names_then_the_rows(tmp_path: Path) -> None:
    """The engine reads parts in name order as load_run did: of two rows of one request with
    the same attempt number, the one in the later-named part is its last attempt."""
    row = ("storage_first", 1, "w", 1.0, 1)
    write_table(tmp_path, schema.CLIENT, _full(_client([(*row, "timeout", None)])), part="b-0001")
    write_table(tmp_path, schema.CLIENT, _full(_client([(*row, "accepted", "x")])), part="a-0002")
    server = _server([("storage_first", 1, "x", "SUCCEEDED", 0)]).assign(accepted_at_ms=0.0)
    write_table(tmp_path, schema.SERVER, _full(server), part="server-0001")
    trials = pd.DataFrame({"variant": ["storage_first"], "trial": [1], "unfinished": [0]})
    with engine.connect() as connection:
        engine.register_run_folder(connection, tmp_path)
        classes = request_classes(connection, trials)
    assert classes[["outcome", "class"]].values.tolist() == [["timeout", "no_answer"]]


def _full(frame: pd.DataFrame) -> pd.DataFrame:
    """The required columns a run folder's parts carry, filled with placeholders."""
    defaults = {"run_id": "run", "scenario": "baseline", "sent_at_ms": 0.0, "latency_ms": 1.0,
                "latency_from_intended_ms": 1.0, "status_code": 0, "request_id": None}  # fmt: skip
    names = schema.CLIENT.schema.names if "outcome" in frame else schema.SERVER.schema.names
    return frame.assign(
        **{key: value for key, value in defaults.items() if key not in frame and key in names}
    )


def test_the_tally_in_buckets_counts_what_one_bucket_counts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Items and requests split by a hash of the request id (ITEMS_PER_BUCKET) give the same
    tally as all at once: every request and item falls in exactly one bucket. The run has
    retries, lost, parked, pending, re-collected and duplicated items and a NULL-id item."""
    spec = SyntheticSpec(
        scenario="outage", outage=(5.0, 3.0), repetitions=1, stages=((20.0, 30.0),),
        poison_share=0.05,
    )  # fmt: skip
    synthetic = build_run(spec, "buckets-1")
    server = synthetic.server
    again = server.iloc[:40].assign(status="PENDING", duplicates=3)  # read again, earlier part
    nameless = server.iloc[:1].assign(request_id=None)
    run_dir = write_run(
        tmp_path / "run",
        dataclasses.replace(synthetic, server=pd.concat([again, server, nameless])),
    )
    run = load_run(run_dir)
    tallies = {}
    for per_bucket in (10**9, 50):
        monkeypatch.setattr(accounting_module, "ITEMS_PER_BUCKET", per_bucket)
        monkeypatch.setattr(accounting_module, "MAX_BUCKETS", 100)
        with engine.connect() as connection:
            engine.register_run(connection, run)
            if per_bucket == 50:
                assert accounting_module._buckets(connection) > 4
            tallies[per_bucket] = accounting_module.tally(connection, run.trials, run.redriven)
    pd.testing.assert_frame_equal(tallies[50], tallies[10**9])
    assert tallies[50]["duplicates"].sum() > 0 and tallies[50]["pending"].sum() > 0


def test_rows_with_missing_key_parts_are_one_request_as_grouping_makes_them() -> None:
    """A missing worker or intended time is a key part like any other (NULL matches NULL, as
    GROUP BY has it): two rows of such a key are one request, its last attempt decides."""
    client = _client(
        [
            ("storage_first", 1, None, float("nan"), 1, "timeout", None),  # type: ignore[list-item]
            ("storage_first", 1, None, float("nan"), 2, "accepted", "a"),  # type: ignore[list-item]
            ("storage_first", 1, "w", 5.0, 1, "accepted", "b"),
        ]
    )
    client.loc[0:1, "intended_at_ms"] = None
    server = _server([("storage_first", 1, "a", "SUCCEEDED", 0)])
    trials = pd.DataFrame({"variant": ["storage_first"], "trial": [1], "unfinished": [0]})
    with engine.frames_connection(client=client, server=server) as connection:
        classes = request_classes(connection, trials)
    assert classes["worker"].tolist() == ["", "w"]
    assert classes["class"].tolist() == ["succeeded", "lost"]
    assert classes["attempts"].tolist() == [2, 1]
