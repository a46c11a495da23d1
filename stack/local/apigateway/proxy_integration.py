"""API Gateway's Lambda proxy integration: a REST proxy event to the function, its answer (or
its failure) to the client, and the integration timeout."""

from __future__ import annotations

import concurrent.futures
import time
from typing import Any

from stack.local.apigateway.messages import (
    INTERNAL_ERROR_BODY,
    JSON,
    GatewayRequest,
    GatewayResponse,
    error_response,
)
from stack.local.apigateway.proxy_event import build_proxy_event, parse_proxy_response
from stack.local.apigateway.vtl import Context
from stack.local.awslambda.runtime import Invocation, LocalFunction

__all__ = ["INTEGRATION_TIMEOUT_S", "LambdaProxyIntegration"]

# API Gateway's default integration timeout: 29 s (developerguide/limits.html).
INTEGRATION_TIMEOUT_S = 29.0


class LambdaProxyIntegration:
    def __init__(
        self,
        function: LocalFunction,
        invoker: concurrent.futures.Executor,
        *,
        timeout_s: float = INTEGRATION_TIMEOUT_S,
    ) -> None:
        self._function = function
        self._invoker = invoker
        self._timeout_s = timeout_s

    def invoke(
        self,
        request: GatewayRequest,
        context: Context,
        stage_variables: dict[str, str],
        *,
        resource: str,
        path_parameters: dict[str, str],
    ) -> GatewayResponse:
        event = build_proxy_event(
            resource=resource,
            path=resource,
            http_method=request.method,
            headers=request.headers,
            query=request.query,
            path_parameters=path_parameters,
            stage_variables=stage_variables,
            body=request.body,
            request_context=proxy_request_context(context),
        )
        started = time.perf_counter()
        future = self._invoker.submit(self._function.invoke, event)
        try:
            invocation = future.result(timeout=self._timeout_s)
        except concurrent.futures.TimeoutError:
            # API Gateway stops waiting after its integration timeout (29 s by default) and
            # answers 504 while the function runs on (developerguide/limits.html,
            # "Integration timeout"; gateway response INTEGRATION_TIMEOUT).
            response = error_response(504, "Endpoint request timed out", "IntegrationTimeout")
            response.integration_latency_ms = (time.perf_counter() - started) * 1000
            return response
        response = from_invocation(invocation)
        response.integration_latency_ms = (time.perf_counter() - started) * 1000
        return response


def from_invocation(invocation: Invocation) -> GatewayResponse:
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
                headers = [("Content-Type", JSON), *headers]
            return GatewayResponse(proxy.status, proxy.body, headers)
        return GatewayResponse(502, INTERNAL_ERROR_BODY, [("Content-Type", JSON)])
    if invocation.status == "throttled":
        return GatewayResponse(500, INTERNAL_ERROR_BODY, [("Content-Type", JSON)])
    return GatewayResponse(502, INTERNAL_ERROR_BODY, [("Content-Type", JSON)])


def proxy_request_context(context: Context) -> dict[str, Any]:
    """The proxy event's ``requestContext`` from the request's ``$context``."""
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
