"""The knobs of the local event source mapping, as CreateEventSourceMapping names them.

Built from :class:`~stack.config.StackConfig` (the same values the CDK app deploys) by
:meth:`MappingSettings.from_config`; tests build one directly to use values AWS does not allow
(a record age of seconds instead of at least 60 s) so they run fast.
"""

from __future__ import annotations

from dataclasses import dataclass

from stack.config import StackConfig

__all__ = ["INVOKE_PAYLOAD_LIMIT_BYTES", "MappingSettings"]

# Synchronous Invoke's request payload limit; Lambda invokes early when a batch nears it
# ("Lambda event source mappings" > batching behavior: "The payload size reaches 6 MB").
INVOKE_PAYLOAD_LIMIT_BYTES = 6 * 1024 * 1024


@dataclass(frozen=True, kw_only=True)
class MappingSettings:
    """BatchSize, MaximumBatchingWindowInSeconds, ... of one stream event source mapping."""

    batch_size: int = 100
    batching_window_s: float = 0.0
    retry_attempts: int = -1
    """MaximumRetryAttempts; -1 is infinite (retry until the record is too old)."""
    max_record_age_s: float = -1
    """MaximumRecordAgeInSeconds; -1 is infinite (the stream's 24 h retention)."""
    bisect_on_error: bool = False
    parallelization_factor: int = 1
    report_batch_item_failures: bool = True
    """FunctionResponseTypes ["ReportBatchItemFailures"] (the stream handler returns them)."""

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
        if not 1 <= self.parallelization_factor <= 10:
            raise ValueError(
                f"parallelization_factor must be 1..10, got {self.parallelization_factor}"
            )
        if self.batching_window_s < 0:
            raise ValueError(f"batching_window_s must be >= 0, got {self.batching_window_s}")

    @classmethod
    def from_config(cls, config: StackConfig) -> MappingSettings:
        return cls(
            batch_size=config.batch_size,
            batching_window_s=float(config.batching_window_s),
            retry_attempts=config.retry_attempts,
            max_record_age_s=float(config.max_record_age_s),
            bisect_on_error=config.bisect_on_error,
            parallelization_factor=config.parallelization_factor,
            report_batch_item_failures=True,
        )
