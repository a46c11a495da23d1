"""Renderer conformance: the local renderer against references it was not built from.

- Velocity mode against Apache Velocity 1.7 itself: ``data/velocity_cases.json`` holds each
  template and the output (or exception) Velocity 1.7 gave, regenerated with
  ``scripts/regenerate_velocity_cases.py`` (Debian's ``velocity`` package), so CI needs no Java
  Velocity. A case the local stage answers differently on purpose is listed in
  ``KEPT_DIFFERENT`` with the reason (and in the README's fidelity table).
- API Gateway mode against what AWS documents and recorded for API Gateway mapping templates
  (where API Gateway differs from stock Velocity); each case names its source.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pytest

from stack.local.apigateway.vtl import Context, Input, Template, TemplateSyntaxError, load_template
from stack.local.apigateway.vtl.render import TemplateRenderError

VELOCITY_CASES = json.loads(
    (Path(__file__).parent / "data" / "velocity_cases.json").read_text(encoding="utf-8")
)

KEPT_DIFFERENT = {
    "dollar_alone": (
        "Velocity 1.7 refuses a template that ends in a lone `$` (ParseErrorException); the "
        "local renderer prints the `$`, as Velocity does for a `$` anywhere else"
    ),
}


def _velocity_params() -> list[object]:
    params: list[object] = []
    for case in VELOCITY_CASES["cases"]:
        marks = []
        if case["name"] in KEPT_DIFFERENT:
            marks.append(pytest.mark.xfail(strict=True, reason=KEPT_DIFFERENT[case["name"]]))
        params.append(pytest.param(case, id=case["name"], marks=marks))
    return params


def test_velocity_cases_name_their_source():
    assert VELOCITY_CASES["source"].startswith("Apache Velocity 1.7")
    assert all("velocity" in case for case in VELOCITY_CASES["cases"])
    assert all(case["source"].startswith("Apache Velocity 1.7") for case in VELOCITY_CASES["cases"])


@pytest.mark.parametrize("case", _velocity_params())
def test_velocity_mode_renders_as_velocity_1_7(case: dict[str, object]):
    expected = case["velocity"]
    assert isinstance(expected, dict)
    template = str(case["template"])
    if "error" in expected:
        with pytest.raises((TemplateRenderError, TemplateSyntaxError)):
            Template(template).render({})
    else:
        assert Template(template).render({}) == expected["output"]


@dataclass(frozen=True)
class AwsCase:
    name: str
    template: str
    body: str
    expected: str | type[Exception]
    source: str


DOCS = (
    "AWS docs: API Gateway mapping template and access logging variable reference "
    "(developerguide/api-gateway-mapping-template-reference.html)"
)
RECORDED = (
    "AWS recording: API Gateway REST mapping templates as recorded against AWS in LocalStack's "
    "AWS-validated snapshot tests (the references issue 11 was checked with)"
)
EMPTY_BODY = (
    "AWS, as validated in localstack/localstack PR #12413: API Gateway replaces an empty body "
    "with {} for $input.body, whatever the content type"
)
LIST_FORMAT = (
    "AWS, as validated in localstack/localstack PR #12379: maps print as Java's {foo=bar}, a "
    'list from $input.path as JSON, also nested in a map ({list=[{"foo":"bar"}]})'
)
NO_MATCH = (
    "AWS, as checked in the AWS console for localstack/localstack PR #12774: $input.path and "
    "$input.json without a match, or on a body that is not JSON, give an empty string"
)
NULL_EMPTY = (
    "AWS, as reported in toqoz/api-gateway-mapping-template PR #4: API Gateway prints null "
    "objects as an empty string"
)

AWS_CASES = [
    AwsCase("null_reference_prints_empty", "a$undefined|$context.nope|b", "", "a||b", NULL_EMPTY),
    AwsCase("null_equals_empty_string", '#if($null == "")eq#else ne#end', "", "eq", RECORDED),
    AwsCase("input_body_of_empty_body", "$input.body", "", "{}", EMPTY_BODY),
    AwsCase(
        "path_list_prints_compact_json",
        "$input.path('$.list')",
        '{"list": [{"foo": "bar"}]}',
        '[{"foo":"bar"}]',
        LIST_FORMAT,
    ),
    AwsCase(
        "path_list_inside_map_prints_compact_json",
        "$input.path('$.m')",
        '{"m": {"l": [{"foo": "bar"}, 2]}}',
        '{l=[{"foo":"bar"},2]}',
        LIST_FORMAT,
    ),
    AwsCase("json_no_match", "[$input.json('$.missing')]", '{"a": 1}', "[]", NO_MATCH),
    AwsCase("path_no_match", "[$input.path('$.missing')]", '{"a": 1}', "[]", NO_MATCH),
    AwsCase("json_of_non_json_body", "[$input.json('$')]", "not json", "[]", NO_MATCH),
    AwsCase("path_of_non_json_body", "[$input.path('$.a')]", "not json", "[]", NO_MATCH),
    AwsCase(
        "method_exception_fails_the_request",
        "$input.body.substring(50)",
        "abc",
        TemplateRenderError,
        RECORDED,
    ),
    AwsCase("json_of_whole_body", "$input.json('$')", '{"a": "x"}', '{"a":"x"}', DOCS),
    AwsCase("json_of_string_is_quoted", "$input.json('$.a')", '{"a": "x"}', '"x"', DOCS),
    AwsCase("path_returns_object", "$input.path('$').a", '{"a": 1}', "1", DOCS),
    AwsCase(
        "escape_javascript_escapes_single_quotes",
        "$util.escapeJavaScript($input.path('$.s'))",
        '{"s": "it\'s \\"q\\""}',
        'it\\\'s \\"q\\"',
        DOCS,
    ),
    AwsCase(
        "params_searches_path_then_query_then_header",
        "$input.params('id')/$input.params('q')/$input.params('H')",
        "",
        "p/qv/hv",
        DOCS,
    ),
    AwsCase("url_encode", "$util.urlEncode('a b&c')", "", "a+b%26c", DOCS),
    AwsCase("base64_encode", "$util.base64Encode('hi')", "", "aGk=", DOCS),
    AwsCase("context_request_id", "$context.requestId", "", "rid-1", DOCS),
    AwsCase("parse_json_into_map", '$util.parseJson(\'{"k": "v"}\').k', "", "v", DOCS),
]


def _context() -> Context:
    return Context(
        request_id="rid-1",
        request_time_epoch_ms=0,
        request_time="01/Jan/1970:00:00:00 +0000",
        domain_name="abc.execute-api.eu-west-1.amazonaws.com",
        stage="storage-first",
        resource_path="/requests",
        path="/storage-first/requests",
        http_method="POST",
        source_ip="203.0.113.9",
    )


@pytest.mark.parametrize("case", [pytest.param(c, id=c.name) for c in AWS_CASES])
def test_api_gateway_mode_renders_as_aws_recorded(case: AwsCase):
    assert case.source in (DOCS, RECORDED, EMPTY_BODY, LIST_FORMAT, NO_MATCH, NULL_EMPTY)
    request_input = Input(
        body=case.body,
        path_params={"id": "p"},
        query_params={"id": "q", "q": "qv"},
        headers={"h": "hv"},
    )

    def render() -> str:
        return Template(case.template).render_api_gateway(
            input=request_input, context=_context(), stage_variables={}
        )

    if isinstance(case.expected, str):
        assert render() == case.expected
    else:
        with pytest.raises(case.expected):
            render()


def test_velocity_mode_keeps_velocitys_own_null_rules():
    """The API Gateway differences stay out of plain Velocity mode."""
    assert Template("a$undefined|b").render({}) == "a$undefined|b"
    assert Template('#if($null == "")eq#else ne#end').render({}) == " ne"


DEPLOYED = json.loads(
    (Path(__file__).parent / "data" / "deployed_template_cases.json").read_text(encoding="utf-8")
)


@pytest.mark.parametrize(
    "case",
    [
        pytest.param(case, id=f"{case['template']}-{number}")
        for number, case in enumerate(DEPLOYED["cases"])
    ],
)
def test_deployed_templates_render_as_velocity_1_7_renders_them(case: dict[str, str]):
    """The stack's own templates with hostile bodies, against Velocity 1.7 with API Gateway's
    escapeJavaScript (commons-lang 2): byte for byte."""
    assert DEPLOYED["source"].startswith("Apache Velocity 1.7")
    facts = DEPLOYED["context"]
    context = Context(
        request_id=facts["requestId"],
        request_time_epoch_ms=facts["requestTimeEpoch"],
        request_time="06/Dec/2025:00:00:00 +0000",
        domain_name=facts["domainName"],
        stage=facts["stage"],
        resource_path="/requests",
        path="/storage-first/requests",
        http_method="POST",
        source_ip="203.0.113.9",
    )
    request_input = Input(
        body=case["body"], path_params={"id": case["id"]}, headers={"X-Run-Id": case["run_id"]}
    )
    rendered = load_template(case["template"]).render_api_gateway(
        input=request_input, context=context, stage_variables=facts["stageVariables"]
    )
    assert rendered == case["velocity"]
