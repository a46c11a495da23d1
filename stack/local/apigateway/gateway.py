"""The local API Gateway: both variants' REST routes on one HTTP server on 127.0.0.1.

- ``POST /storage-first/requests``: put_request.vtl -> DynamoDB PutItem (JSON protocol) ->
  integration response by DynamoDB's status: 2xx -> 202 + put_response.vtl; 4xx -> 400 and
  5xx -> 500 + put_error_response.vtl (which may override the status, e.g. 429 on throttling).
- ``GET /{stage}/requests/{id}`` on both stages: get_request.vtl -> GetItem -> get_response.vtl
  (which overrides to 404 when there is no item); 4xx -> 400 and 5xx -> 500 +
  get_error_response.vtl ("request could not be read").
- ``POST /direct/requests``: a REST proxy event -> the direct function -> its proxy response.
- ``POST /2015-03-31/functions/{name}/invocations``: Lambda's Invoke API for the stage's
  functions (:mod:`stack.local.awslambda.invoke_api`), so boto3's ``lambda`` client can call them.
- Anything else: 403 ``{"message":"Missing Authentication Token"}``, as API Gateway answers.

This module routes; the integrations are :mod:`.service_integration` and
:mod:`.proxy_integration`, the HTTP layer :mod:`.http_server`. Each client connection is served
on its own thread (HTTP/1.1 keep-alive) with its own keep-alive connection to DynamoDB Local, so
an accept is one render plus one round trip.
"""

from __future__ import annotations

import concurrent.futures
import threading
from collections.abc import Mapping
from urllib.parse import unquote

from asyncbench.errors import LocalStageError
from stack.local.apigateway.http_server import API_GATEWAY_MAX_BODY_BYTES, GatewayServer
from stack.local.apigateway.messages import (
    GatewayRequest,
    GatewayResponse,
    error_response,
    header,
    request_time,
)
from stack.local.apigateway.proxy_integration import INTEGRATION_TIMEOUT_S, LambdaProxyIntegration
from stack.local.apigateway.service_integration import DynamoDbIntegration
from stack.local.apigateway.vtl import Context, Input
from stack.local.awslambda.control_api import ControlApi, is_control_path
from stack.local.awslambda.invoke_api import InvokeApi, is_invoke_path
from stack.local.awslambda.runtime import LocalFunction
from stack.local.dynamodb.http_client import DynamoDbHttp
from stack.local.metrics import MetricsLog
from stack.variants import GET_ITEM_INTEGRATION, PUT_ITEM_INTEGRATION, VARIANT_BY_STAGE

__all__ = [
    "API_GATEWAY_MAX_BODY_BYTES",
    "INTEGRATION_TIMEOUT_S",
    "STAGES",
    "Gateway",
    "GatewayResponse",
]

STAGES = VARIANT_BY_STAGE
"""API stage name (the first path segment) -> variant key of the endpoints file."""


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
        self._metrics = metrics
        self._host = host
        self._port = port
        self._dynamodb = DynamoDbHttp(dynamodb_endpoint, region=region, access_key_id=access_key_id)
        self._put_item = DynamoDbIntegration(PUT_ITEM_INTEGRATION, self._dynamodb)
        self._get_item = DynamoDbIntegration(GET_ITEM_INTEGRATION, self._dynamodb)
        self._invoker = concurrent.futures.ThreadPoolExecutor(
            max_workers=256, thread_name_prefix="gateway-invoke"
        )
        self._direct = LambdaProxyIntegration(
            direct_function, self._invoker, timeout_s=integration_timeout_s
        )
        self._invoke_api = InvokeApi(
            functions if functions is not None else {"direct": direct_function}, self._invoker
        )
        self._server: GatewayServer | None = None
        self._thread: threading.Thread | None = None
        self.control: ControlApi | None = None
        """Lambda's control-plane calls on the running stage (set by the stage)."""

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        """Listen and serve in background threads; returns once the socket is listening."""
        if self._server is not None:
            return
        try:
            server = GatewayServer((self._host, self._port), self)
        except OSError as error:
            raise LocalStageError(
                f"the local API gateway cannot listen on {self._host}:{self._port} ({error}); "
                "choose another port or stop what uses it"
            ) from error
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
    def handle(self, request: GatewayRequest, request_id: str, received_ms: int) -> GatewayResponse:
        """Route one request (the HTTP layer is in :mod:`.http_server`)."""
        if self.control is not None and is_control_path(request.path):
            answer = self.control.handle(
                request.method, request.path, dict(request.query), request.body
            )
            return GatewayResponse(answer.status, answer.body, answer.headers, api_gateway=False)
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
                    context = self._context(request, stage, "/requests", request_id, received_ms)
                    if variant == "storage_first":
                        body = request.body.decode("utf-8", "replace")
                        request_input = Input(
                            body=body,
                            query_params=dict(request.query),
                            headers=dict(request.headers),
                        )
                        return self._put_item.invoke(
                            request_input, context, self._stage_variables(stage)
                        )
                    return self._direct.invoke(
                        request,
                        context,
                        self._stage_variables(stage),
                        resource="/requests",
                        path_parameters={},
                    )
                if len(segments) == 4 and request.method == "GET" and segments[3]:
                    context = self._context(
                        request, stage, "/requests/{id}", request_id, received_ms
                    )
                    request_input = Input(
                        body="",
                        path_params={"id": unquote(segments[3])},
                        query_params=dict(request.query),
                        headers=dict(request.headers),
                    )
                    return self._get_item.invoke(
                        request_input, context, self._stage_variables(stage)
                    )
        return error_response(
            403, "Missing Authentication Token", "MissingAuthenticationTokenException"
        )

    def _context(
        self, request: GatewayRequest, stage: str, resource: str, request_id: str, received_ms: int
    ) -> Context:
        return Context(
            request_id=request_id,
            request_time_epoch_ms=received_ms,
            request_time=request_time(received_ms),
            domain_name=request.host,
            stage=stage,
            resource_path=resource,
            path=request.path,
            http_method=request.method,
            source_ip=request.source_ip,
            user_agent=header(request.headers, "User-Agent"),
        )

    def _stage_variables(self, stage: str) -> dict[str, str]:
        return {"tableName": self._tables[STAGES[stage]], "scheme": "http"}

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
