"""Item 6 of the AWS review: ListStreams, the account-level role's one owner, the direct timeout
against API Gateway's 29 s, GET's own error message, the source-address resource policy."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from aws_cdk.assertions import Capture, Match, Template

from asyncbench.errors import ConfigError
from stack.app import build_app
from stack.config import API_GATEWAY_TIMEOUT_S, StackConfig
from stack.constructs.mapping_templates import read_template


def _template(synthesized: Any, variant: str) -> Template:
    return Template.from_json(synthesized.templates[variant])


def test_list_streams_is_granted_on_star_alone_and_acknowledged(synthesized: Any) -> None:
    template = _template(synthesized, "storage_first")
    statements = Capture()
    template.has_resource_properties(
        "AWS::IAM::Policy",
        {
            "PolicyDocument": {"Statement": statements, "Version": Match.any_value()},
            "Roles": [{"Ref": Match.string_like_regexp("ProcessorRole")}],
        },
    )
    listing = [s for s in statements.as_array() if "dynamodb:ListStreams" in json.dumps(s)]
    # Alone in its statement: the wildcard widens nothing but ListStreams.
    assert listing == [{"Action": "dynamodb:ListStreams", "Effect": "Allow", "Resource": "*"}]
    scoped = [s for s in statements.as_array() if "dynamodb:GetRecords" in json.dumps(s)]
    assert scoped[0]["Resource"]["Fn::GetAtt"][1] == "StreamArn"
    # cdk-nag's wildcard finding (AwsSolutions-IAM5) is acknowledged: synthesis passed clean.
    report = json.loads((synthesized.outdir / "validation-report.json").read_text("utf-8"))
    assert all(plugin["conclusion"] == "success" for plugin in report["pluginReports"])


def test_only_the_direct_stack_owns_the_account_level_api_gateway_role(synthesized: Any) -> None:
    direct = _template(synthesized, "direct")
    storage_first = _template(synthesized, "storage_first")
    direct.resource_count_is("AWS::ApiGateway::Account", 1)
    storage_first.resource_count_is("AWS::ApiGateway::Account", 0)
    role = Capture()
    direct.has_resource_properties("AWS::ApiGateway::Account", {"CloudWatchRoleArn": role})
    # Retained on destroy: other REST APIs of the account log through it.
    direct.has_resource(
        "AWS::IAM::Role",
        {
            "Properties": Match.object_like(
                {"ManagedPolicyArns": [Match.object_like({"Fn::Join": Match.any_value()})]}
            ),
            "DeletionPolicy": "Retain",
        },
    )
    assert direct.find_outputs("ApiGatewayAccountRoleArn")
    # The storage-first stage logs through that role: its stack deploys after the direct one.
    manifest = json.loads((synthesized.outdir / "manifest.json").read_text("utf-8"))
    assert "abtest-direct" in manifest["artifacts"]["abtest-storage-first"]["dependencies"]


def test_direct_timeout_must_stay_below_api_gateways_29_s() -> None:
    assert StackConfig().timeout_s < API_GATEWAY_TIMEOUT_S
    StackConfig(timeout_s=28)
    with pytest.raises(ConfigError, match=r"timeout_s.*below API Gateway's 29 s"):
        StackConfig(timeout_s=29)


def test_get_errors_have_their_own_message() -> None:
    get_error = read_template("get_error_response.vtl")
    assert "request could not be read" in get_error
    assert "request not stored" not in get_error
    assert "request not stored" in read_template("put_error_response.vtl")


def test_without_allowed_cidrs_the_apis_have_no_resource_policy(synthesized: Any) -> None:
    for variant in ("direct", "storage_first"):
        _template(synthesized, variant).has_resource_properties(
            "AWS::ApiGateway::RestApi", {"Policy": Match.absent()}
        )


def test_allowed_cidrs_become_a_deny_unless_source_ip_resource_policy(tmp_path: Path) -> None:
    cidrs = ("203.0.113.7/32", "198.51.100.0/24")
    built = build_app(StackConfig(name_prefix="cidr", allowed_cidrs=cidrs), tmp_path)
    for stack in (built.direct, built.storage_first):
        statements = Capture()
        Template.from_stack(stack).has_resource_properties(
            "AWS::ApiGateway::RestApi",
            {"Policy": {"Statement": statements, "Version": "2012-10-17"}},
        )
        allow, deny = statements.as_array()
        assert allow["Effect"] == "Allow" and allow["Action"] == "execute-api:Invoke"
        assert deny["Effect"] == "Deny" and deny["Action"] == "execute-api:Invoke"
        assert deny["Condition"] == {"NotIpAddress": {"aws:SourceIp": list(cidrs)}}
        assert allow["Resource"] == deny["Resource"] == "execute-api:/*"


def test_allowed_cidrs_are_validated() -> None:
    with pytest.raises(ConfigError, match="allowed_cidrs"):
        StackConfig(allowed_cidrs=("not-an-address",))
    with pytest.raises(ConfigError, match="allowed_cidrs"):
        StackConfig(allowed_cidrs=("203.0.113.7",))  # a CIDR names its prefix length
    assert StackConfig(allowed_cidrs=["10.0.0.0/8"]).allowed_cidrs == ("10.0.0.0/8",)  # type: ignore[arg-type]
