"""The one exception hierarchy for expected problems.

Every problem a user can fix (a bad config, a missing Java, a stack that is not deployed, an
interrupted run folder) is raised as a subclass of :class:`AsyncbenchError`. The command line
catches it once and prints one line: what happened and what to do. Anything else is a bug and
propagates with its traceback.
"""

from __future__ import annotations

__all__ = [
    "AsyncbenchError",
    "ConfigError",
    "DependencyMissingError",
    "EndpointsError",
    "LocalStageError",
    "RunError",
    "RunFolderError",
    "ScenarioError",
    "StackNotDeployedError",
]


class AsyncbenchError(Exception):
    """Raised for an expected problem the user can fix; the message says what to do."""


class ConfigError(AsyncbenchError):
    """Raised when a stack or local-stage config is invalid (unknown key, wrong type, range)."""


class ScenarioError(AsyncbenchError):
    """Raised when a scenario file is missing or invalid; the message names the field."""


class DependencyMissingError(AsyncbenchError):
    """Raised when a program the suite needs (Java, Node/npx, Chromium) is not installed."""


class EndpointsError(AsyncbenchError):
    """Raised when the endpoints file is missing, unreadable or of a newer schema version."""


class StackNotDeployedError(AsyncbenchError):
    """Raised when the AWS stacks are not deployed (or no credentials) and a command needs them."""


class LocalStageError(AsyncbenchError):
    """Raised when the local stage cannot start, is already running, or is not running."""


class RunError(AsyncbenchError):
    """Raised when a run cannot start or loses records (rows written != requests counted)."""


class RunFolderError(AsyncbenchError):
    """Raised when a run folder is missing, incomplete or written by a newer schema version."""
