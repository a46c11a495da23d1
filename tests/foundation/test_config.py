"""StackConfig: validated when built, unknown keys rejected, file + command-line overrides."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from asyncbench.errors import ConfigError
from stack.config import StackConfig, load_config, parse_overrides


def test_defaults_are_finite_and_safe() -> None:
    config = StackConfig()
    # AWS's own defaults (-1) would let a poison record block a shard for the stream's 24 h.
    assert config.retry_attempts >= 0
    assert config.max_record_age_s > 0
    assert config.bisect_on_error is True
    assert config.retry_backoff_max_ms < config.timeout_s * 1000


def test_unknown_key_is_rejected_by_name() -> None:
    with pytest.raises(ConfigError, match="batchsize"):
        load_config(overrides=["batchsize=5"])


@pytest.mark.parametrize(
    ("override", "key"),
    [
        ("batch_size=0", "batch_size"),
        ("retry_attempts=-1", "retry_attempts"),
        ("max_record_age_s=-1", "max_record_age_s"),
        ("memory_mb=64", "memory_mb"),
        ("architecture=sparc", "architecture"),
        ("reserved_concurrency=true", "reserved_concurrency"),
        ("log_retention_days=8", "log_retention_days"),
        ("name_prefix=9bad_name", "name_prefix"),
        ("retry_backoff_max_ms=40000", "retry_backoff_max_ms"),
    ],
)
def test_invalid_values_name_the_key(override: str, key: str) -> None:
    with pytest.raises(ConfigError, match=key):
        load_config(overrides=[override])


def test_json_file_then_command_line_override(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"batch_size": 25, "reserved_concurrency": None}))
    config = load_config(path, overrides=["batch_size=50", "name_prefix=bench"])
    assert config.batch_size == 50  # the command line wins over the file
    assert config.reserved_concurrency is None
    assert config.name_prefix == "bench"


def test_toml_file_with_stack_table(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text('[stack]\nbatching_window_s = 2\narchitecture = "x86_64"\n')
    config = load_config(path)
    assert (config.batching_window_s, config.architecture) == (2, "x86_64")


def test_unreadable_and_malformed_files_give_one_line(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read config file"):
        load_config(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ConfigError, match="not valid JSON"):
        load_config(bad)
    listing = tmp_path / "list.json"
    listing.write_text("[1, 2]")
    with pytest.raises(ConfigError, match="table of keys"):
        load_config(listing)


def test_override_syntax() -> None:
    assert parse_overrides(["a=1", "b=true", "c=null", "d=text"]) == {
        "a": 1,
        "b": True,
        "c": None,
        "d": "text",
    }
    with pytest.raises(ConfigError, match="key=value"):
        parse_overrides(["novalue"])


def test_processor_environment_gives_up_on_the_last_delivery() -> None:
    config = StackConfig(retry_attempts=3)
    environment = config.processor_environment("table-1")
    assert environment["TABLE_NAME"] == "table-1"
    # 1 first delivery + 3 retries: the handler marks FAILED on the 4th.
    assert environment["MAX_ATTEMPTS"] == "4"
    assert all(isinstance(value, str) for value in environment.values())


def test_with_overrides_validates_again() -> None:
    assert StackConfig().with_overrides({"batch_size": 7}).batch_size == 7
    with pytest.raises(ConfigError):
        StackConfig().with_overrides({"batch_size": -7})
