"""Template properties of both variants, driven by the non-default TEST_CONFIG (conftest)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from aws_cdk.assertions import Capture, Match, Template

from stack.app import build_app
from stack.config import STREAM_FILTER_PATTERN, StackConfig
from stack.constructs.mapping_templates import read_template
from stack.outputs import OUTPUT_KEYS

JSON = "application/json"


def _template(synthesized: Any, variant: str) -> Template:
    return Template.from_json(synthesized.templates[variant])


def _logical_id(template: Template, resource_type: str) -> str:
    resources = template.find_resources(resource_type)
    assert len(resources) == 1, f"expected one {resource_type}, found {list(resources)}"
    return next(iter(resources))


@pytest.fixture(scope="module")
def storage_first(synthesized: Any) -> Template:
    return _template(synthesized, "storage_first")


@pytest.fixture(scope="module")
def direct(synthesized: Any) -> Template:
    return _template(synthesized, "direct")


# --- storage-first: table, stream, mapping -------------------------------------------------


def test_storage_first_table_has_new_image_stream_ttl_and_pitr(storage_first: Template) -> None:
    storage_first.has_resource_properties(
        "AWS::DynamoDB::Table",
        {
            "KeySchema": [{"AttributeName": "id", "KeyType": "HASH"}],
            "AttributeDefinitions": [{"AttributeName": "id", "AttributeType": "S"}],
            "BillingMode": "PAY_PER_REQUEST",
            "StreamSpecification": {"StreamViewType": "NEW_IMAGE"},
            "TimeToLiveSpecification": {"AttributeName": "ttl", "Enabled": True},
            "PointInTimeRecoverySpecification": {"PointInTimeRecoveryEnabled": True},
        },
    )


def test_direct_table_has_same_schema_and_no_stream(direct: Template) -> None:
    direct.has_resource_properties(
        "AWS::DynamoDB::Table",
        {
            "KeySchema": [{"AttributeName": "id", "KeyType": "HASH"}],
            "BillingMode": "PAY_PER_REQUEST",
            "TimeToLiveSpecification": {"AttributeName": "ttl", "Enabled": True},
            "StreamSpecification": Match.absent(),
        },
    )


def test_event_source_mapping_uses_the_config_and_safe_settings(
    storage_first: Template, test_config: StackConfig
) -> None:
    table_id = _logical_id(storage_first, "AWS::DynamoDB::Table")
    queue_id = _logical_id(storage_first, "AWS::SQS::Queue")
    function_id = _logical_id(storage_first, "AWS::Lambda::Function")
    storage_first.has_resource_properties(
        "AWS::Lambda::EventSourceMapping",
        {
            "EventSourceArn": {"Fn::GetAtt": [table_id, "StreamArn"]},
            "FunctionName": {"Ref": function_id},
            "StartingPosition": "TRIM_HORIZON",
            "BatchSize": test_config.batch_size,
            "MaximumBatchingWindowInSeconds": test_config.batching_window_s,
            "BisectBatchOnFunctionError": test_config.bisect_on_error,
            "MaximumRetryAttempts": test_config.retry_attempts,
            "MaximumRecordAgeInSeconds": test_config.max_record_age_s,
            "ParallelizationFactor": test_config.parallelization_factor,
            "FunctionResponseTypes": ["ReportBatchItemFailures"],
            "DestinationConfig": {"OnFailure": {"Destination": {"Fn::GetAtt": [queue_id, "Arn"]}}},
        },
    )


def test_event_source_mapping_filters_to_insert_only(storage_first: Template) -> None:
    pattern = Capture()
    storage_first.has_resource_properties(
        "AWS::Lambda::EventSourceMapping",
        {"FilterCriteria": {"Filters": [{"Pattern": pattern}]}},
    )
    assert json.loads(pattern.as_string()) == STREAM_FILTER_PATTERN == {"eventName": ["INSERT"]}


def test_failure_destination_queue_is_encrypted_and_retained(storage_first: Template) -> None:
    storage_first.has_resource_properties(
        "AWS::SQS::Queue",
        {"SqsManagedSseEnabled": True, "MessageRetentionPeriod": 14 * 24 * 3600},
    )
    # enforce_ssl: a queue policy denying non-TLS access.
    storage_first.has_resource_properties(
        "AWS::SQS::QueuePolicy",
        {
            "PolicyDocument": {
                "Statement": Match.array_with(
                    [
                        Match.object_like(
                            {
                                "Effect": "Deny",
                                "Condition": {"Bool": {"aws:SecureTransport": "false"}},
                            }
                        )
                    ]
                )
            }
        },
    )


# --- processor functions --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("variant", "handler"),
    [("direct", "processor.direct.handler"), ("storage_first", "processor.stream.handler")],
)
def test_function_settings_come_from_the_config(
    synthesized: Any, test_config: StackConfig, variant: str, handler: str
) -> None:
    template = _template(synthesized, variant)
    table_id = _logical_id(template, "AWS::DynamoDB::Table")
    environment = {key: value for key, value in test_config.processor_environment("TABLE").items()}
    environment["TABLE_NAME"] = {"Ref": table_id}  # type: ignore[assignment]
    log_group = Capture()
    template.has_resource_properties(
        "AWS::Lambda::Function",
        {
            "Handler": handler,
            "Runtime": "python3.12",
            "Architectures": ["x86_64"],
            "MemorySize": test_config.memory_mb,
            "Timeout": test_config.timeout_s,
            "ReservedConcurrentExecutions": test_config.reserved_concurrency,
            "Environment": Match.exact({"Variables": environment}),
            "LoggingConfig": {"LogGroup": {"Ref": log_group}},
        },
    )
    log_group_properties = template.to_json()["Resources"][log_group.as_string()]["Properties"]
    assert log_group_properties["RetentionInDays"] == test_config.log_retention_days


def test_asset_holds_the_processor_package_at_its_root(synthesized: Any) -> None:
    assets = [path for path in synthesized.outdir.glob("asset.*") if path.is_dir()]
    assert len(assets) == 1, "both functions share one code asset"
    package = assets[0] / "processor"
    assert (package / "direct.py").is_file()
    assert (package / "stream.py").is_file()
    assert sorted(path.name for path in assets[0].iterdir()) == ["processor"]
    assert not list(package.rglob("__pycache__"))


# --- IAM: exact actions on exact resources --------------------------------------------------


def _statements_of_role(template: Template, role_fragment: str) -> list[dict[str, Any]]:
    statements: list[dict[str, Any]] = []
    for policy in template.find_resources("AWS::IAM::Policy").values():
        roles = [role["Ref"] for role in policy["Properties"]["Roles"]]
        if any(role_fragment in role for role in roles):
            statements += policy["Properties"]["PolicyDocument"]["Statement"]
    return statements


def _grants(statements: list[dict[str, Any]]) -> dict[str, set[str]]:
    """action -> set of resource descriptions ("Table.Arn", "Queue.Arn", ...)."""
    result: dict[str, set[str]] = {}
    for statement in statements:
        assert statement["Effect"] == "Allow"
        actions = statement["Action"]
        resources = statement["Resource"]
        for action in [actions] if isinstance(actions, str) else actions:
            for resource in resources if isinstance(resources, list) else [resources]:
                if resource == "*":  # only ListStreams (test_list_streams_is_granted_on_star)
                    result.setdefault(action, set()).add("*")
                    continue
                getatt = resource["Fn::GetAtt"]  # else only attributes of our own resources
                result.setdefault(action, set()).add(f"{getatt[0]}.{getatt[1]}")
    return result


def _id_prefix(template: Template, resource_type: str) -> str:
    return _logical_id(template, resource_type)


def test_storage_first_processor_role_is_least_privilege(storage_first: Template) -> None:
    table = _id_prefix(storage_first, "AWS::DynamoDB::Table")
    queue = _id_prefix(storage_first, "AWS::SQS::Queue")
    logs = _function_log_group(storage_first)
    assert _grants(_statements_of_role(storage_first, "ProcessorRole")) == {
        "logs:CreateLogStream": {f"{logs}.Arn"},
        "logs:PutLogEvents": {f"{logs}.Arn"},
        "dynamodb:BatchGetItem": {f"{table}.Arn"},
        "dynamodb:GetItem": {f"{table}.Arn"},
        "dynamodb:UpdateItem": {f"{table}.Arn"},
        "dynamodb:DescribeStream": {f"{table}.StreamArn"},
        "dynamodb:GetRecords": {f"{table}.StreamArn"},
        "dynamodb:GetShardIterator": {f"{table}.StreamArn"},
        "dynamodb:ListStreams": {"*"},
        "sqs:SendMessage": {f"{queue}.Arn"},
        "sqs:GetQueueAttributes": {f"{queue}.Arn"},
        "sqs:GetQueueUrl": {f"{queue}.Arn"},
    }


def test_direct_processor_role_is_least_privilege(direct: Template) -> None:
    table = _id_prefix(direct, "AWS::DynamoDB::Table")
    logs = _function_log_group(direct)
    assert _grants(_statements_of_role(direct, "ProcessorRole")) == {
        "logs:CreateLogStream": {f"{logs}.Arn"},
        "logs:PutLogEvents": {f"{logs}.Arn"},
        "dynamodb:PutItem": {f"{table}.Arn"},
        "dynamodb:UpdateItem": {f"{table}.Arn"},
    }


@pytest.mark.parametrize(
    ("variant", "actions"),
    [("direct", {"dynamodb:GetItem"}), ("storage_first", {"dynamodb:GetItem", "dynamodb:PutItem"})],
)
def test_api_integration_role_reads_and_writes_only_its_table(
    synthesized: Any, variant: str, actions: set[str]
) -> None:
    template = _template(synthesized, variant)
    table = _id_prefix(template, "AWS::DynamoDB::Table")
    assert _grants(_statements_of_role(template, "IntegrationRole")) == {
        action: {f"{table}.Arn"} for action in actions
    }


@pytest.mark.parametrize("variant", ["direct", "storage_first"])
def test_no_wildcard_resource_and_no_managed_policy_on_our_roles(
    synthesized: Any, variant: str
) -> None:
    template = synthesized.templates[variant]
    for resource in template["Resources"].values():
        if resource["Type"] == "AWS::IAM::Policy":
            statements = resource["Properties"]["PolicyDocument"]["Statement"]
            # The one exception AWS requires: ListStreams has no resource-level permissions.
            others = [s for s in statements if s["Action"] != "dynamodb:ListStreams"]
            assert "*" not in json.dumps(others)
    roles = {
        logical_id: resource
        for logical_id, resource in template["Resources"].items()
        if resource["Type"] == "AWS::IAM::Role"
    }
    for logical_id, role in roles.items():
        if "CloudWatchRole" in logical_id:
            continue  # API Gateway's account logging role: acknowledged (AwsSolutions-IAM4)
        assert "ManagedPolicyArns" not in role["Properties"], logical_id


def _function_log_group(template: Template) -> str:
    function = next(iter(template.find_resources("AWS::Lambda::Function").values()))
    return str(function["Properties"]["LoggingConfig"]["LogGroup"]["Ref"])


# --- API --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("variant", "stage"), [("direct", "direct"), ("storage_first", "storage-first")]
)
def test_stage_name_variables_and_logging(synthesized: Any, variant: str, stage: str) -> None:
    template = _template(synthesized, variant)
    table = _logical_id(template, "AWS::DynamoDB::Table")
    template.has_resource_properties(
        "AWS::ApiGateway::Stage",
        {
            "StageName": stage,
            "Variables": {"tableName": {"Ref": table}, "scheme": "https"},
            "AccessLogSetting": Match.object_like({"DestinationArn": Match.any_value()}),
            "MethodSettings": [
                Match.object_like(
                    {"HttpMethod": "*", "ResourcePath": "/*", "LoggingLevel": "ERROR"}
                )
            ],
        },
    )
    template.has_resource_properties(
        "AWS::ApiGateway::RestApi",
        {"Name": f"abtest-{stage}", "EndpointConfiguration": {"Types": ["REGIONAL"]}},
    )


def test_put_item_integration_renders_the_template_files(storage_first: Template) -> None:
    uri = Capture()
    credentials = Capture()
    storage_first.has_resource_properties(
        "AWS::ApiGateway::Method",
        {
            "HttpMethod": "POST",
            "Integration": {
                "Type": "AWS",
                "IntegrationHttpMethod": "POST",
                "Uri": uri,
                "Credentials": credentials,
                "PassthroughBehavior": "NEVER",
                "RequestTemplates": {JSON: read_template("put_request.vtl")},
                "IntegrationResponses": [
                    {
                        "StatusCode": "202",
                        "ResponseTemplates": {JSON: read_template("put_response.vtl")},
                    },
                    {
                        "StatusCode": "400",
                        "SelectionPattern": r"4\d{2}",
                        "ResponseTemplates": {JSON: read_template("put_error_response.vtl")},
                    },
                    {
                        "StatusCode": "500",
                        "SelectionPattern": r"5\d{2}",
                        "ResponseTemplates": {JSON: read_template("put_error_response.vtl")},
                    },
                ],
            },
            "MethodResponses": [{"StatusCode": code} for code in ("202", "400", "429", "500")],
        },
    )
    assert ":dynamodb:action/PutItem" in json.dumps(uri.as_object())
    assert "IntegrationRole" in credentials.as_object()["Fn::GetAtt"][0]


@pytest.mark.parametrize("variant", ["direct", "storage_first"])
def test_get_request_by_id_is_a_get_item_integration(synthesized: Any, variant: str) -> None:
    template = _template(synthesized, variant)
    uri = Capture()
    template.has_resource_properties(
        "AWS::ApiGateway::Method",
        {
            "HttpMethod": "GET",
            "RequestParameters": {"method.request.path.id": True},
            "Integration": Match.object_like(
                {
                    "Type": "AWS",
                    "Uri": uri,
                    "PassthroughBehavior": "NEVER",
                    "RequestTemplates": {JSON: read_template("get_request.vtl")},
                    "IntegrationResponses": [
                        {
                            "StatusCode": "200",
                            "ResponseTemplates": {JSON: read_template("get_response.vtl")},
                        },
                        # A failed read says so: not "request not stored" (the POST's words).
                        {
                            "StatusCode": "400",
                            "SelectionPattern": r"4\d{2}",
                            "ResponseTemplates": {JSON: read_template("get_error_response.vtl")},
                        },
                        {
                            "StatusCode": "500",
                            "SelectionPattern": r"5\d{2}",
                            "ResponseTemplates": {JSON: read_template("get_error_response.vtl")},
                        },
                    ],
                }
            ),
        },
    )
    assert ":dynamodb:action/GetItem" in json.dumps(uri.as_object())


def test_direct_post_is_a_lambda_proxy_integration(direct: Template) -> None:
    function = _logical_id(direct, "AWS::Lambda::Function")
    uri = Capture()
    direct.has_resource_properties(
        "AWS::ApiGateway::Method",
        {"HttpMethod": "POST", "Integration": Match.object_like({"Type": "AWS_PROXY", "Uri": uri})},
    )
    assert f'"{function}", "Arn"' in json.dumps(uri.as_object())
    # Only the deployed stage may invoke it (no console test-invoke permission).
    direct.resource_count_is("AWS::Lambda::Permission", 1)


@pytest.mark.parametrize("variant", ["direct", "storage_first"])
def test_outputs_hold_what_the_endpoints_file_needs(synthesized: Any, variant: str) -> None:
    # (RestApi adds its own "...Endpoint..." output too; deploy reads only these keys.)
    outputs = set(synthesized.templates[variant]["Outputs"])
    common = {
        "base_url", "table", "region", "function_name", "log_group", "api_id", "api_name", "stage",
    }  # fmt: skip
    expected = common | (
        {"failure_queue_url", "failure_queue_arn", "event_source_mapping_id"}
        if variant == "storage_first"
        else {"account_role_arn"}
    )
    assert {OUTPUT_KEYS[key] for key in expected} <= outputs
    assert not {OUTPUT_KEYS[key] for key in set(OUTPUT_KEYS) - expected} & outputs


def test_defaults_unreserved_concurrency_and_arm64(tmp_path: Path) -> None:
    # A second, warm synthesis in this process (jsii is already up): well under a second of CPU.
    built = build_app(StackConfig(name_prefix="defaults", reserved_concurrency=None), tmp_path)
    template = Template.from_stack(built.storage_first)
    template.has_resource_properties(
        "AWS::Lambda::Function",
        {"Architectures": ["arm64"], "ReservedConcurrentExecutions": Match.absent()},
    )
    template.has_resource_properties(
        "AWS::Lambda::EventSourceMapping",
        {"BisectBatchOnFunctionError": True, "MaximumRetryAttempts": StackConfig().retry_attempts},
    )
