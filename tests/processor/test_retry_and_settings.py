"""The retry policy (pure) and the settings read from the function's environment."""

from __future__ import annotations

import pytest

from processor.retry import DELIVERY_SLACK_MS, SAFETY_MARGIN_MS, backoff_ms, give_up_reason
from processor.settings import ProcessorSettingsError, Settings
from stack.config import StackConfig


def test_backoff_doubles_per_attempt_up_to_the_cap() -> None:
    delays = [backoff_ms(attempt, base_ms=500, max_ms=8000) for attempt in range(1, 8)]
    assert delays == [500, 1000, 2000, 4000, 8000, 8000, 8000]


def test_backoff_never_runs_past_the_remaining_time() -> None:
    assert backoff_ms(5, base_ms=500, max_ms=8000, remaining_ms=3000) == 3000 - SAFETY_MARGIN_MS
    assert backoff_ms(1, base_ms=500, max_ms=8000, remaining_ms=30_000) == 500
    assert backoff_ms(3, base_ms=500, max_ms=8000, remaining_ms=200) == 0


def test_backoff_survives_huge_attempt_counts() -> None:
    assert backoff_ms(10_000, base_ms=500, max_ms=8000) == 8000
    assert backoff_ms(1, base_ms=0, max_ms=0) == 0


def test_default_config_retries_ride_out_two_minutes() -> None:
    config = StackConfig()
    total_ms = sum(
        backoff_ms(
            attempt, base_ms=config.retry_backoff_base_ms, max_ms=config.retry_backoff_max_ms
        )
        for attempt in range(1, config.retry_attempts + 1)
    )
    assert total_ms >= 120_000


def test_give_up_on_the_last_attempt() -> None:
    common = {"max_attempts": 5, "age_ms": 0, "max_record_age_s": 3600, "next_backoff_ms": 500}
    assert give_up_reason(4, **common) is None
    assert give_up_reason(5, **common) == "gave up after 5 attempts"


def test_give_up_when_the_next_delivery_would_be_too_old() -> None:
    limit_ms = 600 * 1000
    common = {"max_attempts": 100, "max_record_age_s": 600, "next_backoff_ms": 2000}
    young = limit_ms - 2000 - DELIVERY_SLACK_MS - 1
    assert give_up_reason(3, age_ms=young, **common) is None
    reason = give_up_reason(3, age_ms=young + 1, **common)
    assert reason is not None and "maximum record age of 600 s" in reason


def test_settings_from_the_stack_config_environment() -> None:
    config = StackConfig(retry_attempts=7, failure_ttl_seconds=60, ttl_seconds=100)
    environ = {**config.processor_environment("t1"), "AWS_REGION": "eu-west-1"}
    settings = Settings.from_environ(environ)
    assert settings == Settings(
        table_name="t1",
        ttl_seconds=100,
        failure_ttl_seconds=60,
        max_attempts=8,
        max_record_age_s=config.max_record_age_s,
        retry_backoff_base_ms=config.retry_backoff_base_ms,
        retry_backoff_max_ms=config.retry_backoff_max_ms,
        dynamodb_endpoint_url=None,
        region="eu-west-1",
    )


def test_settings_endpoint_override_and_default_region() -> None:
    settings = Settings.from_environ(
        {
            "TABLE_NAME": "t",
            "DYNAMODB_ENDPOINT_URL": "http://127.0.0.1:8000",
            "AWS_DEFAULT_REGION": "local",
        }
    )
    assert settings.dynamodb_endpoint_url == "http://127.0.0.1:8000"
    assert settings.region == "local"
    assert settings.max_attempts == 21


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({}, "TABLE_NAME is not set"),
        ({"TABLE_NAME": "t", "MAX_ATTEMPTS": "many"}, "MAX_ATTEMPTS must be an integer"),
        ({"TABLE_NAME": "t", "TTL_SECONDS": "0"}, "TTL_SECONDS must be >= 1"),
    ],
)
def test_settings_errors_name_the_variable(environ: dict[str, str], message: str) -> None:
    with pytest.raises(ProcessorSettingsError, match=message):
        Settings.from_environ(environ)
