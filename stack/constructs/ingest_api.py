"""The REST API of a variant: ``POST /requests`` (wired by the stack) and ``GET /requests/{id}``.

Both variants answer ``GET /requests/{id}`` the same way, straight from their table with a
DynamoDB GetItem service integration (no Lambda in the read path). The stage is named after the
variant's path segment ("direct" or "storage-first") and carries the stage variables the mapping
templates read: ``tableName`` and ``scheme``.
"""

from __future__ import annotations

from collections.abc import Sequence

from aws_cdk import RemovalPolicy
from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Construct

from stack.constructs.mapping_templates import read_template
from stack.constructs.nag import acknowledge
from stack.constructs.processor_function import retention_days
from stack.variants import (
    ERROR_RESPONSES,
    GET_ERROR_RESPONSES,
    GET_ITEM_INTEGRATION,
    PUT_ITEM_INTEGRATION,
    IntegrationResponse,
)

__all__ = ["ACCESS_LOG_FIELDS", "IngestApi"]

JSON = "application/json"

# One JSON object per request in the access log; the server-side view of each request
# (integration latency vs. total latency) for whoever debugs a surprising percentile.
ACCESS_LOG_FIELDS = {
    "requestId": "$context.requestId",
    "requestTimeEpoch": "$context.requestTimeEpoch",
    "httpMethod": "$context.httpMethod",
    "resourcePath": "$context.resourcePath",
    "status": "$context.status",
    "responseLatency": "$context.responseLatency",
    "integrationLatency": "$context.integrationLatency",
    "integrationStatus": "$context.integration.status",
    "errorMessage": "$context.error.message",
    "sourceIp": "$context.identity.sourceIp",
    "responseLength": "$context.responseLength",
}


def _access_log_format() -> apigw.AccessLogFormat:
    fields = ", ".join(f'"{key}": "{value}"' for key, value in ACCESS_LOG_FIELDS.items())
    return apigw.AccessLogFormat.custom("{" + fields + "}")


def _error_responses(
    responses: Sequence[IntegrationResponse] = ERROR_RESPONSES,
) -> list[apigw.IntegrationResponse]:
    """DynamoDB's 4xx -> 400 and 5xx -> 500 (the templates turn throttling into 429)."""
    return [
        apigw.IntegrationResponse(
            status_code=str(response.status),
            selection_pattern=response.selection_pattern,
            response_templates={JSON: read_template(response.template)},
        )
        for response in responses
    ]


def source_ip_policy(cidrs: Sequence[str]) -> iam.PolicyDocument | None:
    """A resource policy accepting requests only from ``cidrs`` (None: no policy, open API).

    API Gateway's documented pattern: allow Invoke on every method, then deny it where the
    source address is not one of the blocks (an explicit deny wins).
    """
    if not cidrs:
        return None
    principal = iam.AnyPrincipal()
    methods = ["execute-api:/*"]
    return iam.PolicyDocument(
        statements=[
            iam.PolicyStatement(
                actions=["execute-api:Invoke"], principals=[principal], resources=methods
            ),
            iam.PolicyStatement(
                effect=iam.Effect.DENY,
                actions=["execute-api:Invoke"],
                principals=[principal],
                resources=methods,
                conditions={"NotIpAddress": {"aws:SourceIp": list(cidrs)}},
            ),
        ]
    )


def _method_responses(*status_codes: str) -> list[apigw.MethodResponse]:
    return [apigw.MethodResponse(status_code=code) for code in status_codes]


class IngestApi(Construct):
    """A regional REST API with access and error logging, and the shared read route.

    ``self.api`` is the RestApi, ``self.requests`` the ``/requests`` resource the stack adds
    ``POST`` to (with :meth:`add_post_to_function` or :meth:`add_post_to_table`), and
    ``self.integration_role`` the role API Gateway assumes for DynamoDB (GetItem on ``table``
    only, plus PutItem when the POST goes to the table).

    ``owns_account_role``: this API creates the region's account-level CloudWatch role
    (``AWS::ApiGateway::Account``, one per account and region). Exactly one of the app's APIs
    owns it; the other stack depends on the owner's, or two stacks would overwrite each other's
    setting. CDK retains the role on destroy (deleting it would break logging for every other
    REST API of the account). ``allowed_cidrs``: see :func:`source_ip_policy`.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        api_name: str,
        stage_name: str,
        table: dynamodb.ITable,
        log_retention_days: int,
        description: str,
        owns_account_role: bool,
        allowed_cidrs: Sequence[str] = (),
    ) -> None:
        super().__init__(scope, construct_id)
        self.table = table
        self.access_logs = logs.LogGroup(
            self,
            "AccessLogs",
            retention=retention_days(log_retention_days),
            removal_policy=RemovalPolicy.DESTROY,
        )
        self.api = apigw.RestApi(
            self,
            "Api",
            # Named per variant: CloudWatch's API Gateway metrics are keyed by ApiName.
            rest_api_name=api_name,
            description=description,
            # REGIONAL: an edge-optimised API would add a CloudFront hop to every measured
            # request, which is not part of either architecture.
            endpoint_types=[apigw.EndpointType.REGIONAL],
            # Access and execution logging need the account-level CloudWatch role: one owner.
            cloud_watch_role=owns_account_role,
            cloud_watch_role_removal_policy=RemovalPolicy.RETAIN if owns_account_role else None,
            policy=source_ip_policy(allowed_cidrs),
            deploy_options=apigw.StageOptions(
                stage_name=stage_name,
                variables={"tableName": table.table_name, "scheme": "https"},
                access_log_destination=apigw.LogGroupLogDestination(self.access_logs),
                access_log_format=_access_log_format(),
                # ERROR only: INFO/data tracing would log every body and cost latency.
                logging_level=apigw.MethodLoggingLevel.ERROR,
                data_trace_enabled=False,
            ),
        )
        self.integration_role = iam.Role(
            self,
            "IntegrationRole",
            assumed_by=iam.ServicePrincipal("apigateway.amazonaws.com"),
            description="API Gateway's role for the DynamoDB service integrations",
        )
        table.grant(self.integration_role, "dynamodb:GetItem")
        self.requests = self.api.root.add_resource("requests")
        self.request_by_id = self.requests.add_resource("{id}")
        self.get_method = self.request_by_id.add_method(
            "GET",
            self._dynamodb_integration(
                action=GET_ITEM_INTEGRATION.action,
                request_template=read_template(GET_ITEM_INTEGRATION.request_template),
                # get_response.vtl overrides the status to 404 when there is no item.
                success=apigw.IntegrationResponse(
                    status_code=str(GET_ITEM_INTEGRATION.responses[0].status),
                    response_templates={
                        JSON: read_template(GET_ITEM_INTEGRATION.responses[0].template)
                    },
                ),
                errors=_error_responses(GET_ERROR_RESPONSES),
            ),
            request_parameters={"method.request.path.id": True},
            method_responses=_method_responses(*map(str, GET_ITEM_INTEGRATION.method_statuses)),
        )
        self.post_method: apigw.Method | None = None
        self.account_role: iam.IRole | None = None
        if owns_account_role:
            role = self.api.node.find_child("CloudWatchRole")
            assert isinstance(role, iam.Role)
            self.account_role = role
        self._acknowledge_nag_findings()

    def _acknowledge_nag_findings(self) -> None:
        acknowledge(
            self,
            "AwsSolutions-APIG2",
            "No request validation on purpose: an invalid body must be accepted and recorded as "
            "a permanent failure (CONTRACT.md), which is one of the behaviours measured; "
            "rejecting it at the gateway would change what is benchmarked.",
        )
        acknowledge(
            self,
            "AwsSolutions-APIG3",
            "No WAF: a short-lived benchmark endpoint; a web ACL adds per-request latency and "
            "cost to exactly the path being measured. Teardown with `asyncbench destroy`.",
        )
        acknowledge(
            self,
            "AwsSolutions-APIG4",
            "No authorizer: the load generator sends plain HTTP per the contract, and an "
            "authorizer would add its own latency to both variants. The API holds only "
            "synthetic benchmark requests and is destroyed after the runs.",
        )
        acknowledge(
            self,
            "AwsSolutions-COG4",
            "No Cognito authorizer, for the same reason as AwsSolutions-APIG4.",
        )
        acknowledge(
            self,
            "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/"
            "AmazonAPIGatewayPushToCloudWatchLogs]",
            "The account-level role API Gateway needs to write access and execution logs "
            "(AwsSolutions-APIG1/APIG6); this AWS managed policy is the documented one and is "
            "scoped to CloudWatch Logs.",
        )

    def _dynamodb_integration(
        self,
        *,
        action: str,
        request_template: str,
        success: apigw.IntegrationResponse,
        errors: list[apigw.IntegrationResponse] | None = None,
    ) -> apigw.AwsIntegration:
        return apigw.AwsIntegration(
            service="dynamodb",
            action=action,
            options=apigw.IntegrationOptions(
                credentials_role=self.integration_role,
                request_templates={JSON: request_template},
                # NEVER: a body of another content type must not reach DynamoDB untransformed
                # (a raw PutItem body would let a client write any item). API Gateway answers
                # 415 instead; a request without Content-Type uses the application/json template.
                passthrough_behavior=apigw.PassthroughBehavior.NEVER,
                integration_responses=[
                    success,
                    *(errors if errors is not None else _error_responses()),
                ],
            ),
        )

    def add_post_to_function(self, function: lambda_.IFunction) -> apigw.Method:
        """``POST /requests`` -> Lambda proxy integration (direct variant)."""
        self.post_method = self.requests.add_method(
            # allow_test_invoke=False: no extra invoke permission for the console's test button.
            "POST",
            apigw.LambdaIntegration(function, proxy=True, allow_test_invoke=False),
        )
        return self.post_method

    def add_post_to_table(self) -> apigw.Method:
        """``POST /requests`` -> DynamoDB PutItem of the request (storage-first variant)."""
        self.table.grant(self.integration_role, "dynamodb:PutItem")
        self.post_method = self.requests.add_method(
            "POST",
            self._dynamodb_integration(
                action=PUT_ITEM_INTEGRATION.action,
                request_template=read_template(PUT_ITEM_INTEGRATION.request_template),
                # The default response (no selection pattern): DynamoDB answers 200, 4xx or 5xx
                # and the two error patterns take the latter, so this only ever sees 200.
                success=apigw.IntegrationResponse(
                    status_code=str(PUT_ITEM_INTEGRATION.responses[0].status),
                    response_templates={
                        JSON: read_template(PUT_ITEM_INTEGRATION.responses[0].template)
                    },
                ),
            ),
            method_responses=_method_responses(*map(str, PUT_ITEM_INTEGRATION.method_statuses)),
        )
        return self.post_method
