"""The raw HTTP/1.1 layer of the local API Gateway: keep-alive connections, one thread each,
the 10 MB payload quota, chunked bodies, and a 500 instead of a dropped connection on a bug.

The server hands every request to a :class:`RequestHandler` (the gateway) and writes its
:class:`GatewayResponse` back with ``x-amzn-RequestId``.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
import traceback
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol
from urllib.parse import parse_qsl

from asyncbench.errors import LocalStageError
from stack.local.apigateway.messages import GatewayRequest, GatewayResponse, error_response

__all__ = ["API_GATEWAY_MAX_BODY_BYTES", "GatewayServer", "RequestHandler"]

# API Gateway quota: 10 MB payload
# (docs.aws.amazon.com/apigateway/latest/developerguide/limits.html).
API_GATEWAY_MAX_BODY_BYTES = 10 * 1024 * 1024


class RequestHandler(Protocol):
    def handle(
        self, request: GatewayRequest, request_id: str, received_ms: int
    ) -> GatewayResponse: ...

    def record(
        self, stage: str | None, method: str, response: GatewayResponse, latency_ms: float
    ) -> None: ...


class GatewayServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256

    def __init__(self, address: tuple[str, int], handler: RequestHandler) -> None:
        super().__init__(address, _ConnectionHandler)
        self.handler = handler
        self._sockets: set[socket.socket] = set()
        self._sockets_lock = threading.Lock()

    def track(self, connection: socket.socket, active: bool) -> None:
        with self._sockets_lock:
            (self._sockets.add if active else self._sockets.discard)(connection)

    def close_connections(self) -> None:
        """Wake keep-alive threads blocked on idle client connections so they end."""
        with self._sockets_lock:
            sockets = list(self._sockets)
        for connection in sockets:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)


class _ConnectionHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive
    disable_nagle_algorithm = True  # small responses must not wait for a delayed ACK
    server: GatewayServer

    def setup(self) -> None:
        super().setup()
        self.server.track(self.connection, True)

    def finish(self) -> None:
        self.server.track(self.connection, False)
        super().finish()

    def log_message(self, format: str, *args: Any) -> None:
        pass  # a log line per request would cost more than the request

    def do_GET(self) -> None:
        self._serve()

    do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = do_GET

    def _serve(self) -> None:
        started = time.perf_counter()
        received_ms = time.time_ns() // 1_000_000
        request_id = str(uuid.uuid4())
        path, _, query = self.path.partition("?")
        stage = path.split("/")[1] if path.count("/") >= 1 else None
        length_header = self.headers.get("Content-Length")
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            body = self._read_chunked()
        else:
            length = int(length_header) if length_header and length_header.isdigit() else 0
            if length > API_GATEWAY_MAX_BODY_BYTES:
                self.close_connection = True
                response = error_response(413, "Request Too Long", "RequestTooLongException")
                self._send(response, request_id)
                self._discard_body(length)
                return
            body = self.rfile.read(length) if length else b""
        if body is None:
            self.close_connection = True
            self._send(
                error_response(413, "Request Too Long", "RequestTooLongException"), request_id
            )
            return
        request = GatewayRequest(
            method=self.command,
            path=path,
            query=parse_qsl(query, keep_blank_values=True),
            headers=list(self.headers.items()),
            body=body,
            source_ip=self.client_address[0],
            host=self.headers.get("Host")
            or f"{self.server.server_address[0]!s}:{self.server.server_address[1]}",
        )
        handler = self.server.handler
        try:
            response = handler.handle(request, request_id, received_ms)
        except LocalStageError:
            response = error_response(500, "Internal server error")
        except Exception:
            # A bug here must not cost the client its connection: answer as API Gateway does
            # for an internal failure and leave the traceback in the stage's log (stderr).
            traceback.print_exc()
            response = error_response(500, "Internal server error")
        self._send(response, request_id)
        handler.record(stage, self.command, response, (time.perf_counter() - started) * 1000)

    def _discard_body(self, length: int) -> None:
        """Read and drop a refused body, so that closing the connection does not reset it
        (a reset can destroy the 413 before the client has read it)."""
        with contextlib.suppress(OSError):
            self.wfile.flush()
            self.connection.settimeout(5.0)
            while length > 0:
                chunk = self.rfile.read(min(length, 1 << 20))
                if not chunk:
                    break
                length -= len(chunk)

    def _read_chunked(self) -> bytes | None:
        chunks: list[bytes] = []
        total = 0
        while True:
            size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
            if size == 0:
                while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                    pass  # trailers
                return b"".join(chunks)
            total += size
            if total > API_GATEWAY_MAX_BODY_BYTES:
                return None
            chunks.append(self.rfile.read(size))
            self.rfile.readline()

    def _send(self, response: GatewayResponse, request_id: str) -> None:
        lines = [f"HTTP/1.1 {response.status} {_reason(response.status)}"]
        lines.extend(f"{name}: {value}" for name, value in response.headers)
        lines.append(f"Content-Length: {len(response.body)}")
        lines.append(f"x-amzn-RequestId: {request_id}")
        lines.append("Connection: close" if self.close_connection else "Connection: keep-alive")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1", "replace")
        self.wfile.write(head if self.command == "HEAD" else head + response.body)


def _reason(status: int) -> str:
    responses = BaseHTTPRequestHandler.responses
    return responses[status][0] if status in responses else ""
