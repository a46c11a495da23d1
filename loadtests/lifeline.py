"""A child process that dies with its parent: load generators never outlive what drives them.

``asyncbench worker`` restarts a Locust worker process (``python -m loadtests.distributed``)
run after run, and the engine starts local workers the same way; if the parent is killed
outright (SIGKILL, OOM killer) nothing would stop the child, which would wait for a master
forever or keep sending load. The parent passes its pid (:func:`parent_arguments`); the child
calls :func:`die_with_parent` first thing: on Linux the kernel sends it SIGTERM when the parent
dies (``prctl(PR_SET_PDEATHSIG)``), elsewhere a thread polls the parent's pid. A parent that is
already gone when the child starts is noticed at once.

The kernel's signal follows the parent *thread* that started the child: start such children
from a thread that lives as long as the parent process (the main thread).
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import threading
import time

__all__ = ["PARENT_OPTION", "die_with_parent", "parent_arguments"]

PARENT_OPTION = "--parent-pid"
_PR_SET_PDEATHSIG = 1
_POLL_S = 0.5


def parent_arguments() -> list[str]:
    """Command-line arguments that name this process as the child's parent."""
    return [PARENT_OPTION, str(os.getpid())]


def die_with_parent(parent: int | None, signum: int = signal.SIGTERM) -> None:
    """Get ``signum`` when process ``parent`` (None: the current parent) is gone."""
    expected = os.getppid() if parent is None else parent
    if not _kernel_signals_on_parent_death(signum):
        threading.Thread(target=_watch, args=(expected, signum), daemon=True).start()
    if os.getppid() != expected:  # gone before the kernel was asked: it would never signal
        os.kill(os.getpid(), signum)


def _kernel_signals_on_parent_death(signum: int) -> bool:
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return int(libc.prctl(_PR_SET_PDEATHSIG, signum, 0, 0, 0)) == 0
    except (OSError, AttributeError):
        return False


def _watch(parent: int, signum: int) -> None:
    while os.getppid() == parent:
        time.sleep(_POLL_S)
    os.kill(os.getpid(), signum)
