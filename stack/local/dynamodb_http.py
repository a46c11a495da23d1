"""DynamoDB's JSON protocol over HTTP, as API Gateway's AWS service integration sends it.

One keep-alive connection per thread (the gateway serves each client connection on its own
thread), so an accept costs one round trip on an open socket. DynamoDB Local does not check
signatures but does read the credential scope of the Authorization header: it keeps one
database per access key and region, so the gateway must name the same ones the tables were
created with.
"""

from __future__ import annotations

import http.client
import threading
import time
from urllib.parse import urlsplit

from asyncbench.errors import LocalStageError

__all__ = ["DynamoDbHttp", "DynamoDbUnavailableError"]

_CONTENT_TYPE = "application/x-amz-json-1.0"
_RETRYABLE = (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError)


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

    def _headers(self, operation: str, length: int) -> dict[str, str]:
        now = time.gmtime()
        stamp = time.strftime("%Y%m%dT%H%M%SZ", now)
        scope = f"{self._access_key_id}/{stamp[:8]}/{self._region}/dynamodb/aws4_request"
        return {
            "Content-Type": _CONTENT_TYPE,
            "Content-Length": str(length),
            "X-Amz-Target": f"DynamoDB_20120810.{operation}",
            "X-Amz-Date": stamp,
            # The signature is not checked by DynamoDB Local; the scope picks the database.
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

    def call(self, operation: str, body: bytes) -> tuple[int, bytes]:
        """Send one operation; returns DynamoDB's HTTP status and response body."""
        headers = self._headers(operation, len(body))
        for attempt in (1, 2):
            connection = self._connection()
            try:
                connection.request("POST", "/", body=body, headers=headers)
                response = connection.getresponse()
                return response.status, response.read()
            except _RETRYABLE as error:
                # A keep-alive connection the server closed: reconnect once, then give up.
                connection.close()
                self._local.connection = None
                if attempt == 2:
                    raise DynamoDbUnavailableError(
                        f"DynamoDB Local at {self._host}:{self._port} closed the connection "
                        f"({error}); is the local stage running?"
                    ) from error
            except OSError as error:
                connection.close()
                self._local.connection = None
                raise DynamoDbUnavailableError(
                    f"DynamoDB Local at {self._host}:{self._port} did not answer ({error}); "
                    "is the local stage running?"
                ) from error
        raise AssertionError("unreachable")

    def close(self) -> None:
        """Close every thread's connection."""
        with self._lock:
            connections, self._connections = self._connections, []
        for connection in connections:
            connection.close()
