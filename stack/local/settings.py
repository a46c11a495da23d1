"""Settings of the local stage itself (where it listens, how it polls), apart from StackConfig.

:class:`StackConfig` describes the system under test, identical on AWS and locally;
:class:`LocalStageSettings` only says how this machine hosts it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

from asyncbench.errors import ConfigError
from asyncbench.paths import state_dir

__all__ = ["LocalStageConfig", "LocalStageSettings"]


@dataclass(frozen=True, kw_only=True)
class LocalStageSettings:
    host: str = "127.0.0.1"
    gateway_port: int = 0
    """0 = a free port chosen at start."""
    dynamodb_port: int = 0
    """0 = a free port chosen at start."""
    dynamodb_endpoint: str | None = None
    """Use this already running DynamoDB Local instead of starting one (tests share one)."""
    dynamodb_heap_mb: int = 512
    poll_interval_s: float = 0.25
    """Event source mapping polls per shard (AWS polls 4 times a second)."""
    default_concurrency: int = 10
    """Local cap on each function's environments when the config reserves none (None)."""
    startup_timeout_s: float = 60.0
    state_dir: Path = field(default_factory=state_dir)

    def __post_init__(self) -> None:
        for name in ("gateway_port", "dynamodb_port"):
            port = getattr(self, name)
            if not 0 <= port <= 65_535:
                raise ConfigError(f"local setting {name!r} must be between 0 and 65535, got {port}")
        if self.poll_interval_s <= 0:
            raise ConfigError(
                f"local setting 'poll_interval_s' must be > 0, got {self.poll_interval_s}"
            )
        if self.default_concurrency < 1:
            raise ConfigError(
                f"local setting 'default_concurrency' must be >= 1, got {self.default_concurrency}"
            )
        if self.dynamodb_heap_mb < 64:
            raise ConfigError(
                f"local setting 'dynamodb_heap_mb' must be >= 64, got {self.dynamodb_heap_mb}"
            )

    def replace(self, **changes: object) -> LocalStageSettings:
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]

    # Where the stage keeps its files (all under the state dir, git-ignored).
    @property
    def endpoints_path(self) -> Path:
        return self.state_dir / "endpoints-local.json"

    @property
    def pid_path(self) -> Path:
        return self.state_dir / "local-stage.json"

    @property
    def stage_dir(self) -> Path:
        return self.state_dir / "local"

    @property
    def metrics_log_path(self) -> Path:
        return self.stage_dir / "metrics.jsonl"

    @property
    def failure_destination_path(self) -> Path:
        return self.stage_dir / "failure-destination.jsonl"

    @property
    def log_dir(self) -> Path:
        return self.stage_dir / "logs"


LocalStageConfig = LocalStageSettings
"""The name the design notes use for the same settings."""
