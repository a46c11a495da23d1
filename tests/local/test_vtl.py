"""The VTL renderer against Velocity 1.7 and API Gateway semantics (no server needed)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from stack.local.apigateway.vtl import (
    Context,
    Input,
    Template,
    TemplateSyntaxError,
    Util,
    escape_javascript,
    load_template,
)


def context(**overrides: Any) -> Context:
    values: dict[str, Any] = {
        "request_id": "c0ffee00-0000-4000-8000-000000000001",
        "request_time_epoch_ms": 1_764_333_245_123,
        "request_time": "28/Nov/2025:12:34:05 +0000",
        "domain_name": "abc.execute-api.eu-west-1.amazonaws.com",
        "stage": "storage-first",
        "resource_path": "/requests",
        "path": "/storage-first/requests",
        "http_method": "POST",
        "source_ip": "203.0.113.9",
    }
    return Context(**{**values, **overrides})


def render(source: str, body: str = "{}", **kwargs: Any) -> str:
    ctx = kwargs.pop("ctx", None) or context()
    return Template(source).render_api_gateway(
        input=Input(body=body, **kwargs), context=ctx, stage_variables={"tableName": "t"}
    )


# commons-lang 2.6 StringEscapeUtils.escapeJavaScript, case by case.
@pytest.mark.parametrize(
    ("raw", "escaped"),
    [
        ("plain text 123", "plain text 123"),
        ("it's", "it\\'s"),
        ('say "hi"', 'say \\"hi\\"'),
        ("back\\slash", "back\\\\slash"),
        ("a/b</script>", "a\\/b<\\/script>"),
        ("\b\t\n\f\r", "\\b\\t\\n\\f\\r"),
        ("\x00\x01\x0b\x0e\x1f", "\\u0000\\u0001\\u000B\\u000E\\u001F"),
        ("\x7f", "\x7f"),  # DEL is below the > 0x7f rule: left as it is
        ("\x80\xe9\xff", "\\u0080\\u00E9\\u00FF"),
        ("Ā東", "\\u0100\\u6771"),
        ("😀", "\\uD83D\\uDE00"),  # Java strings are UTF-16: one escape per surrogate
        ("", ""),
    ],
)
def test_escape_javascript_matches_commons_lang(raw: str, escaped: str) -> None:
    assert escape_javascript(raw) == escaped


def test_escape_javascript_null_stays_null() -> None:
    assert escape_javascript(None) is None
    # ...and a null reference prints as empty in API Gateway (AWS recorded), as written in
    # plain Velocity.
    assert render("[$util.escapeJavaScript($nothing)][$!util.escapeJavaScript($nothing)]") == (
        "[][]"
    )
    assert Template("[$util.escapeJavaScript($nothing)]").render({"util": Util()}) == (
        "[$util.escapeJavaScript($nothing)]"
    )


def test_replace_all_takes_a_java_regex_from_a_velocity_literal() -> None:
    # "\\'" in a Velocity literal is three characters; as a Java regex: a backslash, then '.
    source = """$util.escapeJavaScript($input.body).replaceAll("\\\\'", "'")"""
    assert render(source, body='it\'s "x"') == 'it\'s \\"x\\"'


def test_input_path_json_and_body() -> None:
    body = json.dumps({"a": {"b": [10, {"c": "it's"}]}, "n": 1.5, "t": True})
    assert render("$input.path('$.a.b[1].c')", body) == "it's"
    assert render("$input.path('$.a.b[0]')", body) == "10"
    assert render("$input.path('$.n')", body) == "1.5"
    assert render("$input.path('$.t')", body) == "true"
    assert render("$input.path('$.a.b').size()", body) == "2"
    assert render("$input.json('$.a.b')", body) == '[10,{"c":"it\'s"}]'
    assert render("$input.json('$.a.b[1].c')", body) == '"it\'s"'
    # A map prints as Java's Map.toString, the arrays API Gateway parsed as compact JSON.
    assert render("$input.path('$.a')", body) == '{b=[10,{"c":"it\'s"}]}'
    assert render("[$!input.path('$.missing')]", body) == "[]"
    assert render("$input.body", body) == body


def test_input_params_search_path_then_query_then_header() -> None:
    kwargs: dict[str, Any] = {
        "path_params": {"id": "from-path"},
        "query_params": {"id": "from-query", "q": "1"},
        "headers": {"X-Run-Id": "run-7", "id": "from-header"},
    }
    assert render("$input.params('id')", **kwargs) == "from-path"
    assert render("$input.params('q')", **kwargs) == "1"
    assert render("$input.params('x-run-id')", **kwargs) == "run-7"
    assert render("[$input.params('absent')]", **kwargs) == "[]"
    assert render("$input.params().path.id $input.params().header.get('X-Run-Id')", **kwargs) == (
        "from-path run-7"
    )


def test_if_elseif_else_and_comparisons() -> None:
    source = (
        "#foreach($n in [1, 2, 3, 4])"
        "#if($n == 1)one#elseif($n < 3 && $n != 1)two#elseif($n >= 4 || false)four"
        "#else other#end;#end"
    )
    assert render(source) == "one;two; other;four;"
    assert render('#if("$!nothing" == "")empty#end') == "empty"
    assert render("#if($nothing)yes#else no#end") == " no"
    assert render('#if("")empty strings are true#end') == "empty strings are true"
    assert render("#if(!$nothing and not false)both#end") == "both"


def test_set_foreach_and_velocity_whitespace() -> None:
    source = (
        "## a comment line disappears with its newline\n"
        "#set($items = $input.path('$.items'))\n"
        "[\n"
        "#foreach($item in $items)\n"
        '  {"name": "$item.name", "index": $foreach.index}#if($foreach.hasNext),#end\n'
        "#end\n"
        "]\n"
    )
    body = json.dumps({"items": [{"name": "a"}, {"name": "b"}]})
    # Velocity 1.7's #end takes the newline after it, even after inline text.
    assert render(source, body) == ('[\n  {"name": "a", "index": 0},  {"name": "b", "index": 1}]\n')
    assert json.loads(render(source, body))[1]["name"] == "b"


def test_set_arithmetic_maps_and_strings() -> None:
    assert render("#set($x = 7 / 2)#set($y = -7 % 3)$x $y") == "3 -1"
    assert render("#set($m = {'k': 'v'})$m.k $m.get('k') $m.size()") == "v v 1"
    assert render('#set($s = "a-$context.stage")$s.length() $s.toUpperCase()') == (
        "15 A-STORAGE-FIRST"
    )
    assert render("#set($e = '😀x')$e.length() $e.substring(2)") == "3 x"
    assert render("#set($p = 'a,b,,')$p.split(',').size()") == "2"
    assert render("$x.y", "{}") == ""  # API Gateway prints an undefined reference as empty
    assert Template("$x.y").render({}) == "$x.y"  # plain Velocity prints it as written


def test_response_override_status_and_header() -> None:
    ctx = context()
    out = render(
        "#set($context.responseOverride.status = 429)"
        "#set($context.responseOverride.header.Retry-After = '1')ok",
        ctx=ctx,
    )
    assert out == "ok"
    assert ctx.status_override == 429
    assert ctx.header_overrides == {"Retry-After": "1"}


def test_context_variables() -> None:
    source = (
        "$context.requestId $context.requestTimeEpoch $context.stage $context.resourcePath "
        "$context.httpMethod $context.identity.sourceIp $context.domainName"
    )
    assert render(source) == (
        "c0ffee00-0000-4000-8000-000000000001 1764333245123 storage-first /requests POST "
        "203.0.113.9 abc.execute-api.eu-west-1.amazonaws.com"
    )


def test_util_helpers() -> None:
    assert render("$util.urlEncode('a b/é*~')") == "a+b%2F%C3%A9*%7E"
    assert render("$util.urlDecode('a+b%2F%C3%A9')") == "a b/é"
    assert render("$util.base64Encode('hé')") == "aMOp"
    assert render("$util.base64Decode('aMOp')") == "hé"
    assert render("$util.parseJson('{\"a\": [1, 2]}').a.get(1)") == "2"


def test_syntax_errors_name_the_line() -> None:
    with pytest.raises(TemplateSyntaxError, match="line 2"):
        Template("ok\n#if($x")
    with pytest.raises(TemplateSyntaxError):
        Template("#foreach($x in [1])no end")
    with pytest.raises(TemplateSyntaxError, match="#include is not available"):
        Template("#include('other.vtl')")
    assert render("#notadirective #1 C#") == "#notadirective #1 C#"


def test_put_request_template_cannot_be_escaped_from() -> None:
    body = '"}, "status": {"S": "SUCCEEDED"}, "x": {"S": "\\\\\' 😀 \u2028'
    out = load_template("put_request.vtl").render_api_gateway(
        input=Input(body=body, headers={"X-Run-Id": 'r"1'}),
        context=context(),
        stage_variables={"tableName": "requests"},
    )
    document = json.loads(out)
    assert document["Item"]["request"] == {"S": body}
    assert document["Item"]["status"] == {"S": "PENDING"}
    assert document["Item"]["run_id"] == {"S": 'r"1'}
    assert document["Item"]["accepted_at_ms"] == {"N": "1764333245123"}
    assert document["TableName"] == "requests"


def test_get_response_template_found_and_not_found() -> None:
    item = {
        "id": {"S": "r1"},
        "status": {"S": "FAILED"},
        "attempts": {"N": "3"},
        "accepted_at_ms": {"N": "10"},
        "processed_at_ms": {"N": "20"},
        "error": {"S": 'poison: it\'s "bad"'},
        "request": {"S": "{'a': 1}"},
    }
    template = load_template("get_response.vtl")
    ctx = context()
    out = template.render_api_gateway(
        input=Input(body=json.dumps({"Item": item}), path_params={"id": "r1"}),
        context=ctx,
        stage_variables={},
    )
    assert json.loads(out) == {
        "requestId": "r1",
        "status": "FAILED",
        "attempts": 3,
        "acceptedAtMs": 10,
        "processedAtMs": 20,
        "error": 'poison: it\'s "bad"',
        "request": "{'a': 1}",
    }
    assert ctx.status_override is None
    missing = context()
    out = template.render_api_gateway(
        input=Input(body="{}", path_params={"id": "r'2"}), context=missing, stage_variables={}
    )
    assert json.loads(out) == {"error": "no such request", "requestId": "r'2"}
    assert missing.status_override == 404


def test_put_error_response_template_maps_throttling_to_429() -> None:
    template = load_template("put_error_response.vtl")
    throttled = context()
    body = json.dumps(
        {
            "__type": "com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException",
            "message": "The level of configured provisioned throughput for the table was exceeded",
        }
    )
    answer = json.loads(
        template.render_api_gateway(input=Input(body=body), context=throttled, stage_variables={})
    )
    assert throttled.status_override == 429
    assert answer["type"].endswith("ProvisionedThroughputExceededException")
    invalid = context()
    body = json.dumps({"__type": "x#ValidationException", "message": "Item size has exceeded"})
    answer = json.loads(
        template.render_api_gateway(input=Input(body=body), context=invalid, stage_variables={})
    )
    assert invalid.status_override is None
    assert answer["error"] == "request not stored: Item size has exceeded"
