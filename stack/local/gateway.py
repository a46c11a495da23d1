"""The local API Gateway: both variants' REST routes on one HTTP server on 127.0.0.1.

- ``POST /storage-first/requests``: put_request.vtl -> DynamoDB PutItem (JSON protocol) ->
  integration response by DynamoDB's status: 2xx -> 202 + put_response.vtl; 4xx -> 400 and
  5xx -> 500 + put_error_response.vtl (which may override the status, e.g. 429 on throttling).
- ``GET /{stage}/requests/{id}`` on both stages: get_request.vtl -> GetItem -> get_response.vtl
  (which overrides to 404 when there is no item).
- ``POST /direct/requests``: a REST proxy event -> the direct function -> its proxy response.
- ``POST /2015-03-31/functions/{name}/invocations``: Lambda's Invoke API for the stage's
  functions (:mod:`stack.local.lambda_invoke_api`), so boto3's ``lambda`` client can call them.
- Anything else: 403 ``{"message":"Missing Authentication Token"}``, as API Gateway answers.

Each client connection is served on its own thread (HTTP/1.1 keep-alive) with its own
keep-alive connection to DynamoDB Local, so an accept is one render plus one round trip.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import json
import socket
import threading
import time
import traceback
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, unquote

from asyncbench.errors import LocalStageError
from stack.local.dynamodb_http import DynamoDbHttp
from stack.local.lambda_invoke_api import InvokeApi, is_invoke_path
from stack.local.lambda_runtime import Invocation, LocalFunction
from stack.local.metrics import MetricsLog
from stack.local.proxy_event import build_proxy_event, parse_proxy_response
from stack.local.vtl import Context, Input, Template, load_template

__all__ = [
    "API_GATEWAY_MAX_BODY_BYTES",
    "INTEGRATION_TIMEOUT_S",
    "STAGES",
    "Gateway",
    "GatewayResponse",
]

STAGES = {"direct": "direct", "storage-first": "storage_first"}
"""API stage name (the first path segment) -> variant key of the endpoints file."""

# API Gateway quotas: 10 MB payload; 29 s default integration timeout
# (docs.aws.amazon.com/apigateway/latest/developerguide/limits.html).
API_GATEWAY_MAX_BODY_BYTES = 10 * 1024 * 1024
INTEGRATION_TIMEOUT_S = 29.0

_JSON = "application/json"
_INTERNAL_ERROR = b'{"message": "Internal server error"}'


@dataclass
class GatewayResponse:
    status: int
    body: bytes
    headers: list[tuple[str, str]] = field(default_factory=list)
    integration_latency_ms: float | None = None
    api_gateway: bool = True
    """False for Lambda Invoke API calls, which API Gateway's metrics do not count."""


def _message(status: int, message: str, error_type: str | None = None) -> GatewayResponse:
    headers = [("Content-Type", _JSON)]
    if error_type:
        headers.append(("x-amzn-ErrorType", error_type))
    return GatewayResponse(status, json.dumps({"message": message}).encode(), headers)


@dataclass(frozen=True)
class _Request:
    method: str
    path: str
    query: list[tuple[str, str]]
    headers: list[tuple[str, str]]
    body: bytes
    source_ip: str
    host: str


class Gateway:
    """API Gateway for both variants, served in background threads on ``host:port``."""

    def __init__(
        self,
        *,
        dynamodb_endpoint: str,
        tables: Mapping[str, str],
        direct_function: LocalFunction,
        functions: Mapping[str, LocalFunction] | None = None,
        metrics: MetricsLog | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        region: str = "us-east-1",
        access_key_id: str = "local",
        integration_timeout_s: float = INTEGRATION_TIMEOUT_S,
    ) -> None:
        missing = {"direct", "storage_first"} - set(tables)
        if missing:
            raise LocalStageError(f"gateway needs a table for each variant, missing {missing}")
        self._tables = dict(tables)
        self._function = direct_function
        self._metrics = metrics
        self._host = host
        self._port = port
        self._integration_timeout_s = integration_timeout_s
        self._dynamodb = DynamoDbHttp(dynamodb_endpoint, region=region, access_key_id=access_key_id)
        self._templates: dict[str, Template] = {
            name: load_template(f"{name}.vtl")
            for name in (
                "put_request",
                "put_response",
                "put_error_response",
                "get_request",
                "get_response",
            )
        }
        self._invoker = concurrent.futures.ThreadPoolExecutor(
            max_workers=256, thread_name_prefix="gateway-invoke"
        )
        self._invoke_api = InvokeApi(
            functions if functions is not None else {"direct": direct_function},
            self._invoker,
        )
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        """Listen and serve in background threads; returns once the socket is listening."""
        if self._server is not None:
            return
        try:
            server = _Server((self._host, self._port), _Handler)
        except OSError as error:
            raise LocalStageError(
                f"the local API gateway cannot listen on {self._host}:{self._port} ({error}); "
                "choose another port or stop what uses it"
            ) from error
        server.gateway = self
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.2},
            daemon=True,
            name="gateway-accept",
        )
        self._thread.start()

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT``; base urls add ``/direct`` and ``/storage-first``."""
        if self._server is None:
            raise LocalStageError("the local API gateway is not started")
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def stop(self) -> None:
        """Stop serving, close client and DynamoDB connections."""
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.close_connections()
            server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._invoker.shutdown(wait=False, cancel_futures=True)
        self._dynamodb.close()

    def __enter__(self) -> Gateway:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # ------------------------------------------------------------------ routing
    def handle(self, request: _Request, request_id: str, received_ms: int) -> GatewayResponse:
        """Route one request (the HTTP layer is in :class:`_Handler`)."""
        if is_invoke_path(request.path):
            answer = self._invoke_api.handle(
                request.method,
                request.path,
                dict(request.query),
                dict(request.headers),
                request.body,
            )
            return GatewayResponse(answer.status, answer.body, answer.headers, api_gateway=False)
        segments = request.path.split("/")
        # "/{stage}/requests" -> ["", stage, "requests"]; "/{stage}/requests/{id}" adds the id.
        if len(segments) in (3, 4) and segments[0] == "" and segments[2] == "requests":
            stage = segments[1]
            variant = STAGES.get(stage)
            if variant is not None:
                if len(segments) == 3 and request.method == "POST":
                    if variant == "storage_first":
                        return self._put(request, stage, request_id, received_ms)
                    return self._direct(request, stage, request_id, received_ms)
                if len(segments) == 4 and request.method == "GET" and segments[3]:
                    return self._get(request, stage, unquote(segments[3]), request_id, received_ms)
        return _message(403, "Missing Authentication Token", "MissingAuthenticationTokenException")

    def _context(
        self, request: _Request, stage: str, resource: str, request_id: str, received_ms: int
    ) -> Context:
        return Context(
            request_id=request_id,
            request_time_epoch_ms=received_ms,
            request_time=_request_time(received_ms),
            domain_name=request.host,
            stage=stage,
            resource_path=resource,
            path=request.path,
            http_method=request.method,
            source_ip=request.source_ip,
            user_agent=_header(request.headers, "User-Agent"),
        )

    def _stage_variables(self, stage: str) -> dict[str, str]:
        return {"tableName": self._tables[STAGES[stage]], "scheme": "http"}

    def _put(
        self, request: _Request, stage: str, request_id: str, received_ms: int
    ) -> GatewayResponse:
        context = self._context(request, stage, "/requests", request_id, received_ms)
        body = request.body.decode("utf-8", "replace")
        request_input = Input(
            body=body, query_params=dict(request.query), headers=dict(request.headers)
        )
        return self._integrate(
            "PutItem",
            self._templates["put_request"],
            request_input,
            context,
            stage,
            success=(202, self._templates["put_response"]),
            failure=self._templates["put_error_response"],
        )

    def _get(
        self, request: _Request, stage: str, item_id: str, request_id: str, received_ms: int
    ) -> GatewayResponse:
        context = self._context(request, stage, "/requests/{id}", request_id, received_ms)
        request_input = Input(
            body="",
            path_params={"id": item_id},
            query_params=dict(request.query),
            headers=dict(request.headers),
        )
        return self._integrate(
            "GetItem",
            self._templates["get_request"],
            request_input,
            context,
            stage,
            success=(200, self._templates["get_response"]),
            failure=self._templates["put_error_response"],
        )

    def _integrate(
        self,
        operation: str,
        request_template: Template,
        request_input: Input,
        context: Context,
        stage: str,
        *,
        success: tuple[int, Template],
        failure: Template,
    ) -> GatewayResponse:
        """An AWS service integration: request template, call, integration response."""
        if not _is_json(request_input.headers):
            # The stack maps only application/json with passthrough behaviour NEVER, so
            # API Gateway refuses any other body type (a request without one counts as JSON).
            return _message(415, "Unsupported Media Type", "UnsupportedMediaTypeException")
        stage_variables = self._stage_variables(stage)
        payload = request_template.render_api_gateway(
            input=request_input, context=context, stage_variables=stage_variables
        )
        started = time.perf_counter()
        status, answer = self._dynamodb.call(operation, payload.encode("utf-8"))
        integration_ms = (time.perf_counter() - started) * 1000
        # Integration responses selected by the integration's HTTP status (selectionPattern).
        if 200 <= status < 300:
            method_status, template = success
        else:
            method_status, template = (400 if status < 500 else 500), failure
        response_context = Context(
            **{**context.__dict__, "response_override": {"status": None, "header": {}}}
        )
        response_input = Input(
            body=answer.decode("utf-8", "replace"),
            path_params=request_input.path_params,
            query_params=request_input.query_params,
            headers=request_input.headers,
        )
        body = template.render_api_gateway(
            input=response_input, context=response_context, stage_variables=stage_variables
        )
        headers = [("Content-Type", _JSON), *response_context.header_overrides.items()]
        return GatewayResponse(
            response_context.status_override or method_status,
            body.encode("utf-8"),
            headers,
            integration_ms,
        )

    def _direct(
        self, request: _Request, stage: str, request_id: str, received_ms: int
    ) -> GatewayResponse:
        context = self._context(request, stage, "/requests", request_id, received_ms)
        event = build_proxy_event(
            resource="/requests",
            path="/requests",
            http_method=request.method,
            headers=request.headers,
            query=request.query,
            path_parameters={},
            stage_variables=self._stage_variables(stage),
            body=request.body,
            request_context=_proxy_request_context(context),
        )
        started = time.perf_counter()
        future = self._invoker.submit(self._function.invoke, event)
        try:
            invocation = future.result(timeout=self._integration_timeout_s)
        except concurrent.futures.TimeoutError:
            # API Gateway stops waiting after its integration timeout (29 s by default) and
            # answers 504 while the function runs on (developerguide/limits.html,
            # "Integration timeout"; gateway response INTEGRATION_TIMEOUT).
            response = _message(504, "Endpoint request timed out", "IntegrationTimeout")
            response.integration_latency_ms = (time.perf_counter() - started) * 1000
            return response
        response = _from_invocation(invocation)
        response.integration_latency_ms = (time.perf_counter() - started) * 1000
        return response

    def record(
        self, stage: str | None, method: str, response: GatewayResponse, latency_ms: float
    ) -> None:
        """One CloudWatch-like observation per request: Latency, with status and
        IntegrationLatency as extras (Count, 4XXError and 5XXError follow from them)."""
        if self._metrics is None or not response.api_gateway:
            return
        self._metrics.emit(
            STAGES.get(stage or "", "unknown"),
            "apigateway",
            "Latency",
            round(latency_ms, 3),
            "Milliseconds",
            status=response.status,
            method=method,
            integration_latency_ms=(
                None
                if response.integration_latency_ms is None
                else round(response.integration_latency_ms, 3)
            ),
        )


def _from_invocation(invocation: Invocation) -> GatewayResponse:
    """API Gateway's answer to a Lambda proxy invocation outcome.

    "Handling Lambda errors with an API Gateway API" (docs.aws.amazon.com/lambda/latest/dg/
    services-apigateway-errors.html): "If the Lambda API rejects the invocation request, API
    Gateway returns a 500 error code. If the function runs but returns an error, or returns a
    response in the wrong format, API Gateway returns a 502. In both cases, the body ... is
    {"message": "Internal server error"}." A throttle (Invoke's 429 TooManyRequestsException) is
    such a rejection: 500. A function timeout is a function error ("Task timed out"): 502.
    """
    if invocation.status == "ok":
        proxy = parse_proxy_response(invocation.payload)
        if proxy is not None:
            headers = proxy.headers
            if not any(name.lower() == "content-type" for name, _ in headers):
                headers = [("Content-Type", _JSON), *headers]
            return GatewayResponse(proxy.status, proxy.body, headers)
        return GatewayResponse(502, _INTERNAL_ERROR, [("Content-Type", _JSON)])
    if invocation.status == "throttled":
        return GatewayResponse(500, _INTERNAL_ERROR, [("Content-Type", _JSON)])
    return GatewayResponse(502, _INTERNAL_ERROR, [("Content-Type", _JSON)])


def _proxy_request_context(context: Context) -> dict[str, Any]:
    return {
        "resourceId": "local",
        "resourcePath": context.resource_path,
        "httpMethod": context.http_method,
        "extendedRequestId": context.request_id,
        "requestTime": context.request_time,
        "path": context.path,
        "accountId": context.account_id,
        "protocol": context.protocol,
        "stage": context.stage,
        "domainPrefix": context.domain_name.split(".")[0],
        "requestTimeEpoch": context.request_time_epoch_ms,
        "requestId": context.request_id,
        "identity": {
            "cognitoIdentityPoolId": None,
            "accountId": None,
            "cognitoIdentityId": None,
            "caller": None,
            "sourceIp": context.source_ip,
            "principalOrgId": None,
            "accessKey": None,
            "cognitoAuthenticationType": None,
            "cognitoAuthenticationProvider": None,
            "userArn": None,
            "userAgent": context.user_agent or None,
            "user": None,
        },
        "domainName": context.domain_name,
        "deploymentId": "local",
        "apiId": context.api_id,
    }


_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def _request_time(epoch_ms: int) -> str:
    """$context.requestTime: CLF-formatted, e.g. 28/Nov/2026:12:34:05 +0000."""
    t = time.gmtime(epoch_ms / 1000)
    return f"{t.tm_mday:02d}/{_MONTHS[t.tm_mon - 1]}/{t.tm_year}:" + time.strftime(
        "%H:%M:%S +0000", t
    )


def _is_json(headers: Mapping[str, str]) -> bool:
    for name, value in headers.items():
        if name.lower() == "content-type":
            media_type = value.split(";")[0].strip().lower()
            return media_type in ("", "application/json")
    return True


def _header(headers: list[tuple[str, str]], name: str) -> str:
    lowered = name.lower()
    for key, value in headers:
        if key.lower() == lowered:
            return value
    return ""


# ---------------------------------------------------------------------- HTTP layer


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256
    gateway: Gateway

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
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


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive
    disable_nagle_algorithm = True  # small responses must not wait for a delayed ACK
    server: _Server

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
                response = _message(413, "Request Too Long", "RequestTooLongException")
                self._send(response, request_id)
                return
            body = self.rfile.read(length) if length else b""
        if body is None:
            self.close_connection = True
            self._send(_message(413, "Request Too Long", "RequestTooLongException"), request_id)
            return
        request = _Request(
            method=self.command,
            path=path,
            query=parse_qsl(query, keep_blank_values=True),
            headers=list(self.headers.items()),
            body=body,
            source_ip=self.client_address[0],
            host=self.headers.get("Host")
            or f"{self.server.server_address[0]!s}:{self.server.server_address[1]}",
        )
        gateway = self.server.gateway
        try:
            response = gateway.handle(request, request_id, received_ms)
        except LocalStageError:
            response = _message(500, "Internal server error")
        except Exception:
            # A bug here must not cost the client its connection: answer as API Gateway does
            # for an internal failure and leave the traceback in the stage's log (stderr).
            traceback.print_exc()
            response = _message(500, "Internal server error")
        self._send(response, request_id)
        gateway.record(stage, self.command, response, (time.perf_counter() - started) * 1000)

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
