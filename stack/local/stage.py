"""The local stage: DynamoDB Local, both tables, both functions, the gateway and the mapping.

:class:`LocalStage` composes the parts in dependency order and stops them in reverse::

    DynamoDB Local -> tables -> functions -> Gateway -> EventSourceMapping -> endpoints file

A state file (``local-stage.json`` in the state dir) is both the lock that keeps a second stage
from starting in the same checkout and the record ``local status`` and ``local down`` read.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, cast

from asyncbench.errors import LocalStageError
from stack.config import StackConfig
from stack.endpoints import Endpoints, VariantEndpoint, write_endpoints
from stack.local.awslambda.runtime import LocalFunction
from stack.local.dynamodb.dynamodb_local import (
    LOCAL_CREDENTIALS,
    LOCAL_REGION,
    DynamoDBLocal,
    find_jar,
    find_java,
)
from stack.local.dynamodb.tables import LocalTable, create_tables
from stack.local.metrics import MetricsLog
from stack.local.settings import LocalStageSettings
from stack.variants import HANDLERS, STAGE_NAMES

__all__ = [
    "LocalStage",
    "StageState",
    "already_running_error",
    "pid_alive",
    "read_stage_state",
]


@dataclass(frozen=True)
class StageState:
    """What the state file records about a running (or starting) stage."""

    pid: int
    status: str  # "starting" | "serving"
    started_at_ms: int
    endpoints_path: str
    gateway_url: str | None = None
    dynamodb_endpoint: str | None = None
    dynamodb_pid: int | None = None
    environment_pids: tuple[int, ...] = ()


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie (exited, not yet reaped by its parent) counts as gone.
    with contextlib.suppress(OSError):
        status = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        return status != "Z"
    return True


def read_stage_state(settings: LocalStageSettings) -> StageState | None:
    """The running stage's state, or None (a file left by a dead stage is removed)."""
    try:
        data = json.loads(settings.pid_path.read_text(encoding="utf-8"))
        state = StageState(**{**data, "environment_pids": tuple(data.get("environment_pids", ()))})
    except FileNotFoundError:
        return None
    except (json.JSONDecodeError, TypeError):
        # A half-written file: the writer is starting right now, or died mid-write.
        return None
    if not pid_alive(state.pid):
        with contextlib.suppress(FileNotFoundError):
            settings.pid_path.unlink()
        return None
    return state


def already_running_error(state: StageState) -> LocalStageError:
    return LocalStageError(
        f"the local stage is already running (pid {state.pid}, endpoints {state.endpoints_path}); "
        "run `asyncbench local down` first"
    )


def _check_port_free(host: str, port: int) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind((host, port))
        except OSError as error:
            raise LocalStageError(
                f"the local API gateway cannot listen on {host}:{port} ({error.strerror}); "
                "choose another port with --port (0 picks a free one) or stop what uses it"
            ) from None


class LocalStage:
    """Both variants on this machine; ``with LocalStage(config) as stage: ...``."""

    def __init__(
        self,
        config: StackConfig | None = None,
        settings: LocalStageSettings | None = None,
        *,
        progress: Callable[[str], None] | None = None,
    ) -> None:
        self.config = config or StackConfig()
        self.settings = settings or LocalStageSettings()
        self._progress = progress or (lambda message: None)
        self.dynamodb: DynamoDBLocal | None = None
        self.dynamodb_endpoint: str = ""
        self.tables: dict[str, LocalTable] = {}
        self.functions: dict[str, LocalFunction] = {}
        self.gateway: Any = None
        self.event_source_mapping: Any = None
        self.metrics: MetricsLog | None = None
        self.endpoints: Endpoints | None = None
        self._started_at_ms = 0
        self._owns_lock = False
        # What tune changed in place, per variant (the control API; see reconfigure).
        self.variant_configs: dict[str, StackConfig] = {}
        self.mapping_uuid = str(uuid.uuid4())
        self._reconfigure_lock = threading.Lock()

    # ------------------------------------------------------------------------ properties
    @property
    def endpoints_path(self) -> Path:
        return self.settings.endpoints_path

    @property
    def metrics_log(self) -> Path:
        return self.settings.metrics_log_path

    @property
    def failure_destination(self) -> Path:
        return self.settings.failure_destination_path

    @property
    def gateway_url(self) -> str:
        if self.gateway is None:
            raise LocalStageError("the local stage is not started")
        return str(self.gateway.url)

    # --------------------------------------------------------------------------- control
    def start(self) -> LocalStage:
        """Bring everything up; on any failure, stop what was started and re-raise."""
        self._lock()
        try:
            self._start_parts()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Stop everything in reverse order; safe to call more than once."""
        for part in (self.event_source_mapping, self.gateway):
            if part is not None:
                with contextlib.suppress(Exception):
                    part.stop()
        self.event_source_mapping = None
        self.gateway = None
        for function in self.functions.values():
            function.close()
        self.functions = {}
        if self.dynamodb is not None:
            self.dynamodb.stop()
            self.dynamodb = None
        if self.metrics is not None:
            self.metrics.close()
            self.metrics = None
        if self._owns_lock:
            with contextlib.suppress(FileNotFoundError):
                self.settings.endpoints_path.unlink()
            with contextlib.suppress(FileNotFoundError):
                self.settings.pid_path.unlink()
            self._owns_lock = False

    def __enter__(self) -> LocalStage:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def state(self) -> StageState:
        return StageState(
            pid=os.getpid(),
            status="serving" if self.endpoints is not None else "starting",
            started_at_ms=self._started_at_ms,
            endpoints_path=str(self.endpoints_path),
            gateway_url=self.gateway.url if self.gateway is not None else None,
            dynamodb_endpoint=self.dynamodb_endpoint or None,
            dynamodb_pid=self.dynamodb.pid if self.dynamodb is not None else None,
            environment_pids=tuple(
                pid for function in self.functions.values() for pid in function.environment_pids
            ),
        )

    # --------------------------------------------------------------------------- private
    def _lock(self) -> None:
        """Create the state file exclusively: the one thing two `local up`s cannot both do."""
        self.settings.state_dir.mkdir(parents=True, exist_ok=True)
        self._started_at_ms = int(time.time() * 1000)
        for _attempt in range(2):
            try:
                descriptor = os.open(
                    self.settings.pid_path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644
                )
            except FileExistsError:
                state = read_stage_state(self.settings)  # removes a dead stage's file
                if state is not None:
                    raise already_running_error(state) from None
                if self.settings.pid_path.exists():  # being written right now by another stage
                    raise LocalStageError(
                        f"another local stage is starting (state file {self.settings.pid_path}); "
                        "run `asyncbench local status` in a moment"
                    ) from None
                continue
            with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
                json.dump(asdict(self.state()), handle)
            self._owns_lock = True
            return
        raise LocalStageError(f"cannot take the stage lock {self.settings.pid_path}")

    def _write_state(self) -> None:
        path = self.settings.pid_path
        temporary = path.with_suffix(".tmp")
        temporary.write_text(json.dumps(asdict(self.state())), encoding="utf-8")
        os.replace(temporary, path)

    def _start_parts(self) -> None:
        # Imported here: the gateway and the mapping are heavier and only needed when starting.
        from stack.local.apigateway.gateway import Gateway
        from stack.local.awslambda.control_api import ControlApi

        settings, config = self.settings, self.config
        if settings.gateway_port:
            _check_port_free(settings.host, settings.gateway_port)  # before the slow JVM start
        settings.stage_dir.mkdir(parents=True, exist_ok=True)
        settings.log_dir.mkdir(parents=True, exist_ok=True)
        self.metrics = MetricsLog(settings.metrics_log_path)
        settings.failure_destination_path.touch()

        if settings.dynamodb_endpoint is not None:
            self.dynamodb_endpoint = settings.dynamodb_endpoint.rstrip("/")
            self._progress(f"using DynamoDB Local at {self.dynamodb_endpoint}")
        else:
            find_java(), find_jar()  # a missing dependency is reported before any progress
            self._progress("starting DynamoDB Local (takes a few seconds)...")
            self.dynamodb = DynamoDBLocal(
                port=settings.dynamodb_port,
                log_path=settings.log_dir / "dynamodb-local.log",
                heap_mb=settings.dynamodb_heap_mb,
                startup_timeout_s=settings.startup_timeout_s,
            )
            self.dynamodb.start()
            self.dynamodb_endpoint = self.dynamodb.endpoint_url
            self._progress(f"DynamoDB Local serving at {self.dynamodb_endpoint}")
            self._write_state()

        self.tables = create_tables(self.dynamodb_endpoint, config)
        self._progress("tables: " + ", ".join(table.name for table in self.tables.values()))

        concurrency = config.reserved_concurrency or settings.default_concurrency
        for variant, handler in HANDLERS.items():
            table = self.tables[variant]
            self.functions[variant] = LocalFunction(
                name=f"{config.name_prefix}-{STAGE_NAMES[variant]}-processor",
                variant=variant,
                handler=handler,
                environment=self._function_environment(table.name, config),
                timeout_s=config.timeout_s,
                memory_mb=config.memory_mb,
                concurrency=concurrency,
                metrics=self.metrics,
                log_path=settings.log_dir / f"{variant}-function.log",
            )

        self.gateway = Gateway(
            dynamodb_endpoint=self.dynamodb_endpoint,
            tables={variant: table.name for variant, table in self.tables.items()},
            direct_function=self.functions["direct"],
            functions=self.functions,
            metrics=self.metrics,
            host=settings.host,
            port=settings.gateway_port,
        )
        self.gateway.start()
        self._progress(f"API gateway serving at {self.gateway.url}")

        self.variant_configs = {variant: config for variant in HANDLERS}
        self.gateway.control = ControlApi(self)
        self._start_mapping(config, "TRIM_HORIZON")

        self.endpoints = self._endpoints()
        write_endpoints(self.endpoints, settings.endpoints_path)
        self._write_state()

    def _function_environment(self, table_name: str, config: StackConfig) -> dict[str, str]:
        return {
            **config.processor_environment(table_name),
            "DYNAMODB_ENDPOINT_URL": self.dynamodb_endpoint,
            "AWS_REGION": LOCAL_REGION,
            "AWS_DEFAULT_REGION": LOCAL_REGION,
            "AWS_ACCESS_KEY_ID": LOCAL_CREDENTIALS["aws_access_key_id"],
            "AWS_SECRET_ACCESS_KEY": LOCAL_CREDENTIALS["aws_secret_access_key"],
        }

    def _endpoints(self) -> Endpoints:
        url = str(self.gateway.url).rstrip("/")
        variants = {
            variant: VariantEndpoint(
                base_url=f"{url}/{STAGE_NAMES[variant]}",
                table=self.tables[variant].name,
                failure_destination=(
                    str(self.settings.failure_destination_path)
                    if variant == "storage_first"
                    else None
                ),
            )
            for variant in HANDLERS
        }
        return Endpoints(
            target="local",
            region=LOCAL_REGION,
            variants=variants,
            dynamodb_endpoint=self.dynamodb_endpoint,
            extra={
                "metrics_log": str(self.settings.metrics_log_path),
                # Lambda's Invoke API on the gateway's port (boto3 `lambda` endpoint_url).
                "lambda_endpoint": url,
                "functions": {
                    variant: function.name for variant, function in self.functions.items()
                },
                # The config the stage runs with travels to every run's manifest.
                "stack_config": self.config.to_dict(),
            },
        )

    def _start_mapping(self, config: StackConfig, starting_position: str) -> None:
        from stack.local.event_source_mapping.mapping import EventSourceMapping

        stream_arn = self.tables["storage_first"].stream_arn
        if stream_arn is None:
            raise LocalStageError("the storage-first table has no stream; restart the stage")
        self.event_source_mapping = EventSourceMapping(
            dynamodb_endpoint=self.dynamodb_endpoint,
            stream_arn=stream_arn,
            # cast: the mapping's InvocationResult protocol declares settable attributes, which a
            # frozen Invocation cannot satisfy for mypy; the fields it reads are all there.
            function=cast(Any, self.functions["storage_first"]),
            config=config,
            failure_destination=self.settings.failure_destination_path,
            metrics=self.metrics,
            poll_interval_s=self.settings.poll_interval_s,
            starting_position=starting_position,
        )
        self.event_source_mapping.start()
        self._progress(f"event source mapping polling {stream_arn}")

    # ------------------------------------------------------- control API (asyncbench tune)
    def function_names(self) -> dict[str, str]:
        return {variant: function.name for variant, function in self.functions.items()}

    def function_configuration(self, variant: str) -> dict[str, Any]:
        """GetFunctionConfiguration's answer for a variant's function."""
        function, config = self.functions[variant], self.variant_configs[variant]
        return {
            "FunctionName": function.name,
            "FunctionArn": function.arn,
            "Runtime": "python3.12",
            "Handler": function.handler,
            "MemorySize": config.memory_mb,
            "Timeout": config.timeout_s,
            "Architectures": [config.architecture],
            "Environment": {"Variables": function.environment},
            "State": "Active",
            "LastUpdateStatus": "Successful",
        }

    def reserved_concurrency(self, variant: str) -> int | None:
        return self.variant_configs[variant].reserved_concurrency

    def mapping_configuration(self) -> dict[str, Any]:
        """GetEventSourceMapping's answer for the storage-first mapping."""
        config = self.variant_configs["storage_first"]
        return {
            "UUID": self.mapping_uuid,
            "EventSourceArn": self.tables["storage_first"].stream_arn,
            "FunctionArn": self.functions["storage_first"].arn,
            "BatchSize": config.batch_size,
            "MaximumBatchingWindowInSeconds": config.batching_window_s,
            "ParallelizationFactor": config.parallelization_factor,
            "MaximumRetryAttempts": config.retry_attempts,
            "MaximumRecordAgeInSeconds": config.max_record_age_s,
            "BisectBatchOnFunctionError": config.bisect_on_error,
            "FunctionResponseTypes": ["ReportBatchItemFailures"],
            "State": "Enabled",
        }

    def reconfigure(self, variant: str, overrides: Mapping[str, Any]) -> None:
        """Apply config overrides to one variant live; DynamoDB Local keeps running.

        Function settings reach new environments (idle ones are retired); a mapping change
        stops the mapping and starts it again at LATEST with the new settings, which loses
        nothing when the stream is drained (tune changes settings between collected trials).
        """
        with self._reconfigure_lock:
            old = self.variant_configs[variant]
            new = old.with_overrides(dict(overrides))
            function = self.functions[variant]
            if (new.memory_mb, new.batch_concurrency) != (old.memory_mb, old.batch_concurrency):
                function.reconfigure(
                    environment=self._function_environment(self.tables[variant].name, new),
                    memory_mb=new.memory_mb,
                )
            if new.reserved_concurrency != old.reserved_concurrency:
                function.reconfigure(
                    concurrency=new.reserved_concurrency or self.settings.default_concurrency
                )
            self.variant_configs[variant] = new
            mapping_keys = ("batch_size", "batching_window_s", "parallelization_factor")
            if variant == "storage_first" and any(
                getattr(new, key) != getattr(old, key) for key in mapping_keys
            ):
                if self.event_source_mapping is not None:
                    self.event_source_mapping.stop()
                self._start_mapping(new, "LATEST")
            self._progress(f"reconfigured {variant}: {dict(overrides)}")
