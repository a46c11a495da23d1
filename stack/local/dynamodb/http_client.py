"""DynamoDB's JSON protocol over keep-alive HTTP: the one client of the local stage's parts.

The gateway's service integration sends PutItem and GetItem as API Gateway's AWS integration
would (``X-Amz-Target: DynamoDB_20120810.<Operation>``); the event source mapping's stream
reader sends the Streams operations (``DynamoDBStreams_20120810.<Operation>``). Raw bytes in
and out: no boto3 parsing, which turns binary attributes into bytes and costs several times
the round trip on a 2-core machine.

One keep-alive connection per thread (the gateway serves each client connection on its own
thread; each shard consumer polls on its own), so a call costs one round trip on an open
socket. DynamoDB Local checks no signature and, run with ``-sharedDb``, keeps one database
whatever the access key and region in the Authorization header, so a dummy header serves.
"""

from __future__ import annotations

import http.client
import threading
import time
from urllib.parse import urlsplit

from asyncbench.errors import LocalStageError

__all__ = ["DYNAMODB_TARGET", "STREAMS_TARGET", "DynamoDbHttp", "DynamoDbUnavailableError"]

DYNAMODB_TARGET = "DynamoDB_20120810"
STREAMS_TARGET = "DynamoDBStreams_20120810"
_CONTENT_TYPE = "application/x-amz-json-1.0"
# A keep-alive connection the server closed shows up as one of these: reconnect once.
_RECONNECTABLE = (ConnectionError, http.client.HTTPException)


class DynamoDbUnavailableError(LocalStageError):
    """Raised when DynamoDB Local cannot be reached (not running, wrong port)."""


class DynamoDbHttp:
    """POST an operation's JSON to DynamoDB (Local); thread-safe, one connection per thread."""

    def __init__(
        self,
        endpoint_url: str,
        *,
        region: str = "us-east-1",
        access_key_id: str = "local",
        timeout_s: float = 10.0,
    ) -> None:
        parts = urlsplit(endpoint_url)
        if parts.scheme != "http" or not parts.hostname:
            raise LocalStageError(
                f"DynamoDB endpoint {endpoint_url!r} must look like http://HOST:PORT"
            )
        self._host = parts.hostname
        self._port = parts.port or 80
        self._timeout_s = timeout_s
        self._region = region
        self._access_key_id = access_key_id
        self._local = threading.local()
        self._connections: list[http.client.HTTPConnection] = []
        self._lock = threading.Lock()

    def call(
        self, operation: str, body: bytes, *, target: str = DYNAMODB_TARGET
    ) -> tuple[int, bytes]:
        """Send one operation; returns DynamoDB's HTTP status and response body."""
        headers = self._headers(f"{target}.{operation}", len(body))
        for attempt in (1, 2):
            connection = self._connection()
            try:
                connection.request("POST", "/", body=body, headers=headers)
                response = connection.getresponse()
                return response.status, response.read()
            except _RECONNECTABLE as error:
                self.close_thread_connection()
                if attempt == 2:
                    raise DynamoDbUnavailableError(
                        f"DynamoDB Local at {self._host}:{self._port} closed the connection "
                        f"({error}); is the local stage running?"
                    ) from error
            except OSError as error:
                self.close_thread_connection()
                raise DynamoDbUnavailableError(
                    f"DynamoDB Local at {self._host}:{self._port} did not answer ({error}); "
                    "is the local stage running?"
                ) from error
        raise AssertionError("unreachable")

    def close_thread_connection(self) -> None:
        """Close the calling thread's connection (a thread calls this before it ends)."""
        connection: http.client.HTTPConnection | None = getattr(self._local, "connection", None)
        if connection is not None:
            self._local.connection = None
            with self._lock:
                if connection in self._connections:
                    self._connections.remove(connection)
            connection.close()

    def close(self) -> None:
        """Close every thread's connection."""
        with self._lock:
            connections, self._connections = self._connections, []
        for connection in connections:
            connection.close()

    def _headers(self, target: str, length: int) -> dict[str, str]:
        now = time.gmtime()
        stamp = time.strftime("%Y%m%dT%H%M%SZ", now)
        scope = f"{self._access_key_id}/{stamp[:8]}/{self._region}/dynamodb/aws4_request"
        return {
            "Content-Type": _CONTENT_TYPE,
            "Content-Length": str(length),
            "X-Amz-Target": target,
            "X-Amz-Date": stamp,
            "Authorization": (
                f"AWS4-HMAC-SHA256 Credential={scope}, "
                "SignedHeaders=content-type;host;x-amz-date;x-amz-target, Signature=" + "0" * 64
            ),
        }

    def _connection(self) -> http.client.HTTPConnection:
        connection: http.client.HTTPConnection | None = getattr(self._local, "connection", None)
        if connection is None:
            connection = http.client.HTTPConnection(self._host, self._port, timeout=self._timeout_s)
            self._local.connection = connection
            with self._lock:
                self._connections.append(connection)
        return connection
