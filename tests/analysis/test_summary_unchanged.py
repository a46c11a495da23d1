"""summary.json of the seeded synthetic runs is exactly what the pandas-only analysis gave
(tests/analysis/data/expected_summaries.json, written by commit e46beb3's analysis, before the
engine took over passes): moving work into the engine changes no figure, not even a last bit.
When the analysis changes a definition on purpose, regenerate the file and say so."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from analysis.analyze import RunAnalysis
from analysis.claims import judge_claims
from analysis.summary import build_summary

EXPECTED = json.loads(
    (Path(__file__).parent / "data" / "expected_summaries.json").read_text(encoding="utf-8")
)


@pytest.mark.parametrize("name", ["baseline", "outage", "capacity"])
def test_summary_equals_the_stored_one(analyses: dict[str, RunAnalysis], name: str) -> None:
    analysis = analyses[name]
    summary = build_summary([analysis], judge_claims([analysis]))
    # Through JSON as summary.json is written, so floats compare by their exact repr.
    got = json.loads(json.dumps(summary, sort_keys=True, allow_nan=False))
    assert got == EXPECTED[name]
