"""Scenario files load, validate, round-trip and scale."""

from __future__ import annotations

from pathlib import Path

import pytest

from asyncbench.errors import ScenarioError
from loadtests.scenario import SCENARIOS_DIR, Scenario, list_scenarios, load_scenario

SHIPPED = sorted(path.stem for path in SCENARIOS_DIR.glob("*.toml"))


def test_the_catalogue_holds_the_six_scenarios() -> None:
    assert {"baseline", "capacity", "spike", "outage", "poison", "throttle"} <= set(SHIPPED)
    assert [s.name for s in list_scenarios()] == SHIPPED


@pytest.mark.parametrize("name", SHIPPED)
def test_each_shipped_file_loads_and_round_trips(name: str) -> None:
    scenario = load_scenario(name)
    assert scenario.name == name
    assert scenario.description
    assert Scenario.from_dict(scenario.to_dict(), source="manifest") == scenario


def test_shapes_match_their_purpose() -> None:
    capacity = load_scenario("capacity")
    rates = [stage.rate_per_s for stage in capacity.stages]
    assert rates == sorted(rates) and len(rates) >= 4
    spike = load_scenario("spike")
    assert spike.peak_rate_per_s >= 5 * spike.stages[0].rate_per_s
    outage = load_scenario("outage")
    assert outage.outage is not None
    assert 0 < outage.outage.start_s < outage.outage.start_s + outage.outage.duration_s
    assert outage.outage.start_s + outage.outage.duration_s < outage.duration_s
    assert 0 < load_scenario("poison").poison_share < 1
    throttle = load_scenario("throttle")
    # Above reserved concurrency 10 at work_ms per request: 10 / (work_ms / 1000) per second.
    assert throttle.peak_rate_per_s > 10 / (throttle.work_ms / 1000)


def test_overrides_scale_the_shape() -> None:
    capacity = load_scenario("capacity")
    scaled = capacity.with_overrides(rate=320, duration=50)
    assert scaled.peak_rate_per_s == pytest.approx(320)
    assert scaled.stages[0].rate_per_s == pytest.approx(20)
    assert scaled.duration_s == pytest.approx(50)
    assert scaled.warmup_s == pytest.approx(capacity.warmup_s / 2)
    outage = load_scenario("outage").with_overrides(duration=30)
    assert outage.outage is not None
    assert outage.outage.start_s == pytest.approx(10)
    assert outage.outage.duration_s == pytest.approx(7.5)
    with pytest.raises(ScenarioError, match="--rate"):
        capacity.with_overrides(rate=0)


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "bad.toml"
    path.write_text(text, encoding="utf-8")
    return path


GOOD = 'name = "x"\n[[stages]]\nduration_s = 10\nrate_per_s = 5\n'


@pytest.mark.parametrize(
    ("text", "field"),
    [
        (GOOD + "poison_share = 2\n", "poison_share"),
        ('poison_share = 2\nname = "x"\n[[stages]]\nduration_s = 10\nrate_per_s = 5\n',
         "poison_share"),
        ('work_ms = "lots"\n' + GOOD, "work_ms"),
        ("colour = 1\n" + GOOD, "colour"),
        ('name = "x"\n[[stages]]\nduration_s = -1\nrate_per_s = 5\n', "stages[0].duration_s"),
        ('name = "x"\n[[stages]]\nduration_s = 1\n', "rate_per_s"),
        ('name = "x"\nstages = []\n', "stages"),
        ("warmup_s = 30\n" + GOOD, "warmup_s"),
        ('name = "x"\n[outage]\nstart_s = 1\nduration_s = 0\n[[stages]]\nduration_s = 10\n'
         "rate_per_s = 5\n", "outage.duration_s"),
        ('name = "x"\n[client_retry]\nmax_attempts = 0\n[[stages]]\nduration_s = 10\n'
         "rate_per_s = 5\n", "client_retry.max_attempts"),
        ("[[stages]]\nduration_s = 10\nrate_per_s = 5\n", "name"),
        ('capacity = "yes"\n' + GOOD, "capacity"),
    ],
)  # fmt: skip
def test_a_bad_file_names_the_file_and_the_field(tmp_path: Path, text: str, field: str) -> None:
    path = _write(tmp_path, text)
    with pytest.raises(ScenarioError) as caught:
        load_scenario(str(path))
    assert str(path) in str(caught.value)
    assert field in str(caught.value)


def test_unknown_names_and_broken_toml_are_clear(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError, match=r"unknown scenario 'nope'.*baseline"):
        load_scenario("nope")
    path = _write(tmp_path, "name = \n")
    with pytest.raises(ScenarioError, match="not valid TOML"):
        load_scenario(str(path))


def test_a_scenario_can_declare_itself_a_capacity_scenario(tmp_path: Path) -> None:
    declared = load_scenario(str(_write(tmp_path, "capacity = true\n" + GOOD)))
    assert declared.capacity is True
    assert declared.to_dict()["capacity"] is True  # reaches the manifest, where analysis reads it
    undeclared = load_scenario(str(_write(tmp_path, GOOD)))
    assert undeclared.capacity is None  # decided by the shape
    assert Scenario.from_dict(undeclared.to_dict(), source="manifest") == undeclared
