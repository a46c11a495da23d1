"""What each variant is, in one place for the CDK app and the local stage alike.

- its API stage name, which is also the first path segment of its base URL (CONTRACT.md);
- its Lambda handler;
- the DynamoDB service integrations of its routes: action, request template and the
  integration responses API Gateway selects by DynamoDB's HTTP status.

Plain data (no CDK import), so the command line and the local stage read it without jsii.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = [
    "ERROR_RESPONSES",
    "GET_ERROR_RESPONSES",
    "GET_ITEM_INTEGRATION",
    "HANDLERS",
    "PUT_ITEM_INTEGRATION",
    "STAGE_NAMES",
    "VARIANT_BY_STAGE",
    "IntegrationResponse",
    "ServiceIntegration",
]

STAGE_NAMES = {"direct": "direct", "storage_first": "storage-first"}
"""Variant key (endpoints file) -> API stage name and path segment."""

VARIANT_BY_STAGE = {stage: variant for variant, stage in STAGE_NAMES.items()}

HANDLERS = {"direct": "processor.direct.handler", "storage_first": "processor.stream.handler"}
"""Variant key -> the handler of the function that processes its requests."""


@dataclass(frozen=True)
class IntegrationResponse:
    """One integration response: the method status and response template it gives when its
    selection pattern (a regular expression on the integration's HTTP status, matched whole)
    matches; the one without a pattern is the default."""

    status: int
    template: str
    selection_pattern: str | None = None

    def selects(self, integration_status: int) -> bool:
        return self.selection_pattern is not None and bool(
            re.fullmatch(self.selection_pattern, str(integration_status))
        )


@dataclass(frozen=True)
class ServiceIntegration:
    """A route's DynamoDB service integration."""

    action: str
    request_template: str
    responses: tuple[IntegrationResponse, ...]
    method_statuses: tuple[int, ...]

    def select(self, integration_status: int) -> IntegrationResponse:
        """The response API Gateway picks: the first pattern that matches, else the default."""
        for response in self.responses:
            if response.selects(integration_status):
                return response
        return next(response for response in self.responses if response.selection_pattern is None)


# DynamoDB's 4xx -> 400 and 5xx -> 500 (put_error_response.vtl turns throttling into 429).
ERROR_RESPONSES = (
    IntegrationResponse(400, "put_error_response.vtl", r"4\d{2}"),
    IntegrationResponse(500, "put_error_response.vtl", r"5\d{2}"),
)
# The same for GetItem, answered with the read's own message: the request may well be stored.
GET_ERROR_RESPONSES = (
    IntegrationResponse(400, "get_error_response.vtl", r"4\d{2}"),
    IntegrationResponse(500, "get_error_response.vtl", r"5\d{2}"),
)

PUT_ITEM_INTEGRATION = ServiceIntegration(
    action="PutItem",
    request_template="put_request.vtl",
    # The default response: DynamoDB answers 200, 4xx or 5xx and the error patterns take the
    # latter, so it only ever sees 200.
    responses=(IntegrationResponse(202, "put_response.vtl"), *ERROR_RESPONSES),
    method_statuses=(202, 400, 429, 500),
)

GET_ITEM_INTEGRATION = ServiceIntegration(
    action="GetItem",
    request_template="get_request.vtl",
    # get_response.vtl overrides the status to 404 when there is no item.
    responses=(IntegrationResponse(200, "get_response.vtl"), *GET_ERROR_RESPONSES),
    method_statuses=(200, 400, 404, 500),
)
