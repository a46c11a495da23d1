"""API Gateway's AWS service integration with DynamoDB: request template, the call, and the
integration response selected by DynamoDB's HTTP status (the routes' definitions are in
:mod:`stack.variants`, shared with the CDK app)."""

from __future__ import annotations

import time

from stack.local.apigateway.messages import JSON, GatewayResponse, error_response, is_json
from stack.local.apigateway.vtl import Context, Input, Template, load_template
from stack.local.dynamodb.http_client import DynamoDbHttp
from stack.variants import ServiceIntegration

__all__ = ["DynamoDbIntegration"]


class DynamoDbIntegration:
    """One route's integration; its templates are loaded once."""

    def __init__(self, integration: ServiceIntegration, dynamodb: DynamoDbHttp) -> None:
        self._integration = integration
        self._dynamodb = dynamodb
        self._request_template = load_template(integration.request_template)
        self._response_templates: dict[str, Template] = {
            response.template: load_template(response.template)
            for response in integration.responses
        }

    def invoke(
        self, request_input: Input, context: Context, stage_variables: dict[str, str]
    ) -> GatewayResponse:
        if not is_json(request_input.headers):
            # The stack maps only application/json with passthrough behaviour NEVER, so
            # API Gateway refuses any other body type (a request without one counts as JSON).
            return error_response(415, "Unsupported Media Type", "UnsupportedMediaTypeException")
        payload = self._request_template.render_api_gateway(
            input=request_input, context=context, stage_variables=stage_variables
        )
        started = time.perf_counter()
        status, answer = self._dynamodb.call(self._integration.action, payload.encode("utf-8"))
        integration_ms = (time.perf_counter() - started) * 1000
        selected = self._integration.select(status)
        response_context = Context(
            **{**context.__dict__, "response_override": {"status": None, "header": {}}}
        )
        response_input = Input(
            body=answer.decode("utf-8", "replace"),
            path_params=request_input.path_params,
            query_params=request_input.query_params,
            headers=request_input.headers,
        )
        body = self._response_templates[selected.template].render_api_gateway(
            input=response_input, context=response_context, stage_variables=stage_variables
        )
        headers = [("Content-Type", JSON), *response_context.header_overrides.items()]
        return GatewayResponse(
            response_context.status_override or selected.status,
            body.encode("utf-8"),
            headers,
            integration_ms,
        )
