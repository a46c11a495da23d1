"""The local Lambda runtime: environments as processes, cold starts, throttling, timeouts,
import errors, killed environments, and the metrics CloudWatch would have recorded."""

from __future__ import annotations

import json
import os
import signal
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from stack.local.lambda_runtime import Invocation, LocalFunction
from stack.local.metrics import MetricsLog

HANDLER_CODE = textwrap.dedent(
    """
    import os, sys, time
    from pathlib import Path

    def handler(event, context):
        print("a line the handler prints must not break the protocol")
        if "wait_for" in event:  # block until the test creates this file
            while not Path(event["wait_for"]).exists():
                time.sleep(0.01)
        if "sleep_s" in event:
            time.sleep(event["sleep_s"])
        if "raise" in event:
            raise ValueError(event["raise"])
        if event.get("unmarshallable"):
            return {1, 2}
        return {
            "pid": os.getpid(),
            "event": event,
            "function_name": context.function_name,
            "function_version": context.function_version,
            "arn": context.invoked_function_arn,
            "memory": context.memory_limit_in_mb,
            "request_id": context.aws_request_id,
            "log_group": context.log_group_name,
            "log_stream": context.log_stream_name,
            "remaining_ms": context.get_remaining_time_in_millis(),
            "env": {k: os.environ.get(k) for k in (
                "TABLE_NAME", "AWS_LAMBDA_FUNCTION_NAME", "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
                "AWS_REGION", "_HANDLER", "AWS_EXECUTION_ENV")},
        }
    """
)


def wait_until(condition: Callable[[], bool], timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met before the deadline")
        time.sleep(0.01)


@pytest.fixture
def code_dir(tmp_path: Path) -> Path:
    code = tmp_path / "code"
    code.mkdir()
    (code / "fake_handler.py").write_text(HANDLER_CODE)
    (code / "broken_handler.py").write_text("import module_that_does_not_exist\n")
    return code


@pytest.fixture
def make_function(code_dir: Path, tmp_path: Path) -> Iterator[Callable[..., LocalFunction]]:
    created: list[LocalFunction] = []
    metrics = MetricsLog(tmp_path / "metrics.jsonl")

    def make(**overrides: Any) -> LocalFunction:
        arguments: dict[str, Any] = {
            "name": "test-fn",
            "variant": "direct",
            "handler": "fake_handler.handler",
            "environment": {"TABLE_NAME": "t1", "AWS_REGION": "local"},
            "timeout_s": 5,
            "memory_mb": 256,
            "concurrency": 2,
            "metrics": metrics,
            "code_dir": code_dir,
            "log_path": tmp_path / "function.log",
            **overrides,
        }
        function = LocalFunction(**arguments)
        created.append(function)
        return function

    yield make
    for function in created:
        function.close()
    metrics.close()


def read_metrics(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def start_blocked_invocation(function: LocalFunction, go: Path) -> tuple[threading.Thread, list]:
    results: list[Invocation] = []
    thread = threading.Thread(target=lambda: results.append(function.invoke({"wait_for": str(go)})))
    thread.start()
    wait_until(lambda: len(function.environment_pids) == 1 and function.busy_count == 1)
    return thread, results


def test_cold_start_then_warm_reuse(make_function: Callable[..., LocalFunction], tmp_path: Path):
    function = make_function()
    first = function.invoke({"n": 1})
    second = function.invoke({"n": 2})

    assert first.status == "ok" and first.cold_start and first.init_duration_ms is not None
    assert first.init_duration_ms > 0
    assert second.status == "ok" and not second.cold_start and second.init_duration_ms is None
    assert first.payload["pid"] == second.payload["pid"] == function.environment_pids[0]
    assert second.payload["event"] == {"n": 2}

    metrics = read_metrics(tmp_path / "metrics.jsonl")
    names = [m["metric"] for m in metrics]
    assert names.count("Invocations") == 2 and names.count("Duration") == 2
    assert names.count("InitDuration") == 1 and names.count("ColdStart") == 1
    assert {m["function"] for m in metrics} == {"test-fn"}
    assert all(m["variant"] == "direct" and isinstance(m["ts_ms"], int) for m in metrics)


def test_context_and_environment_as_lambda_sets_them(make_function: Callable[..., LocalFunction]):
    result = make_function(timeout_s=7).invoke({})
    payload = result.payload
    assert payload["function_name"] == "test-fn" and payload["function_version"] == "$LATEST"
    assert payload["arn"].endswith(":function:test-fn")
    assert payload["memory"] == "256"  # a string, as on AWS
    assert payload["request_id"] == result.request_id
    assert payload["log_group"] == "/aws/lambda/test-fn" and "[$LATEST]" in payload["log_stream"]
    assert 5_000 < payload["remaining_ms"] <= 7_000
    assert payload["env"] == {
        "TABLE_NAME": "t1",
        "AWS_LAMBDA_FUNCTION_NAME": "test-fn",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "256",
        "AWS_REGION": "local",
        "_HANDLER": "fake_handler.handler",
        "AWS_EXECUTION_ENV": payload["env"]["AWS_EXECUTION_ENV"],
    }
    assert payload["env"]["AWS_EXECUTION_ENV"].startswith("AWS_Lambda_python3.")


def test_handler_exception_is_an_error_and_the_environment_is_kept(
    make_function: Callable[..., LocalFunction], tmp_path: Path
):
    function = make_function()
    failed = function.invoke({"raise": "boom"})
    after = function.invoke({})
    assert failed.status == "error" and failed.error_type == "ValueError"
    assert failed.error_message == "boom" and failed.payload["errorType"] == "ValueError"
    assert after.status == "ok" and not after.cold_start
    errors = [m for m in read_metrics(tmp_path / "metrics.jsonl") if m["metric"] == "Errors"]
    assert [m["error_type"] for m in errors] == ["ValueError"]


def test_unserializable_result_is_a_marshal_error(make_function: Callable[..., LocalFunction]):
    result = make_function().invoke({"unmarshallable": True})
    assert result.status == "error" and result.error_type == "Runtime.MarshalError"


def test_concurrency_cap_throttles_at_once(
    make_function: Callable[..., LocalFunction], tmp_path: Path
):
    function = make_function(concurrency=1)
    go = tmp_path / "go"
    thread, results = start_blocked_invocation(function, go)

    started = time.monotonic()
    throttled = function.invoke({})
    assert throttled.status == "throttled" and throttled.error_type == "TooManyRequestsException"
    assert time.monotonic() - started < 0.5

    go.touch()
    thread.join(timeout=10)
    assert results[0].status == "ok"
    assert function.invoke({}).status == "ok"  # the slot is free again
    metrics = read_metrics(tmp_path / "metrics.jsonl")
    assert sum(m["metric"] == "Throttles" for m in metrics) == 1
    assert max(m["value"] for m in metrics if m["metric"] == "ConcurrentExecutions") == 1


def test_timeout_kills_and_replaces_the_environment(
    make_function: Callable[..., LocalFunction], tmp_path: Path
):
    function = make_function(timeout_s=0.5)
    warm = function.invoke({})
    old_pid = warm.payload["pid"]

    timed_out = function.invoke({"sleep_s": 30})
    assert timed_out.status == "timeout" and timed_out.error_type == "Sandbox.Timedout"
    assert "timed out after 0.50 seconds" in (timed_out.error_message or "")
    wait_until(lambda: not _alive(old_pid))

    replaced = function.invoke({})
    assert replaced.status == "ok" and replaced.cold_start and replaced.payload["pid"] != old_pid
    metrics = read_metrics(tmp_path / "metrics.jsonl")
    assert sum(m["metric"] == "Timeouts" for m in metrics) == 1


def test_import_error_fails_each_invocation_and_other_functions_keep_serving(
    make_function: Callable[..., LocalFunction],
):
    broken = make_function(name="broken-fn", handler="broken_handler.handler")
    healthy = make_function(name="healthy-fn")
    for _ in range(2):
        result = broken.invoke({})
        assert result.status == "error" and result.error_type == "Runtime.ImportModuleError"
        assert "Unable to import module 'broken_handler'" in (result.error_message or "")
        assert "module_that_does_not_exist" in (result.error_message or "")
    assert broken.environment_pids == []  # a failed init leaves no environment behind
    assert healthy.invoke({}).status == "ok"


def test_missing_handler_function_is_reported(make_function: Callable[..., LocalFunction]):
    result = make_function(handler="fake_handler.no_such_function").invoke({})
    assert result.status == "error" and result.error_type == "Runtime.HandlerNotFound"


def test_sigkill_mid_invocation_is_an_exit_error_and_the_environment_is_replaced(
    make_function: Callable[..., LocalFunction], tmp_path: Path
):
    function = make_function()
    thread, results = start_blocked_invocation(function, tmp_path / "never")
    (pid,) = function.environment_pids
    os.kill(pid, signal.SIGKILL)
    thread.join(timeout=10)

    (killed,) = results
    assert killed.status == "error" and killed.error_type == "Runtime.ExitError"
    assert "signal: killed" in (killed.error_message or "")
    assert pid not in function.environment_pids
    replacement = function.invoke({})
    assert replacement.status == "ok" and replacement.cold_start
    assert replacement.payload["pid"] != pid


def test_close_leaves_no_environment_process(
    make_function: Callable[..., LocalFunction], tmp_path: Path
):
    function = make_function(concurrency=3)
    release = tmp_path / "release"
    results: list[Invocation] = []
    go_threads = [
        threading.Thread(target=lambda: results.append(function.invoke({"wait_for": str(release)})))
        for _ in range(3)
    ]
    for thread in go_threads:
        thread.start()
    # Three calls held inside their handlers at once at concurrency 3: three environments.
    wait_until(lambda: function.busy_count == 3 and len(function.environment_pids) == 3)
    release.touch()
    for thread in go_threads:
        thread.join(timeout=10)
    assert [result.status for result in results] == ["ok"] * 3
    pids = function.environment_pids
    assert sorted(result.payload["pid"] for result in results) == pids
    function.close()
    wait_until(lambda: not any(_alive(pid) for pid in pids))
    assert function.invoke({}).status == "error"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().rsplit(")", 1)[1].split()[0] != "Z"
