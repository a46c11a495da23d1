"""Render a parsed VTL template against a context of variables (Velocity 1.7 semantics).

Velocity mode: a reference that resolves to null prints as written (``$foo``) unless it is
quiet (``$!foo``); ``#if`` is false for null and false only; ``#set`` with a null value leaves
the variable as it was; a missing method yields null, but a method that throws (an index out of
range) fails the rendering with :class:`TemplateRenderError`, as Velocity's
MethodInvocationException does; ``#foreach`` over anything but a list or map renders nothing;
``+`` concatenates when either side is a string.

API Gateway mode (``api_gateway=True``) differs where AWS recorded API Gateway differing from
stock Velocity: a null or invalid reference prints as empty, and null equals "".
"""

from __future__ import annotations

import contextlib
from collections.abc import MutableMapping
from typing import Any

from asyncbench.errors import LocalStageError
from stack.local.apigateway.vtl import parser as p
from stack.local.apigateway.vtl.java import (
    MethodMissing,
    MethodThrew,
    call_method,
    get_property,
    java_equals,
    to_string,
)

__all__ = ["TemplateRenderError", "render_nodes"]


class TemplateRenderError(LocalStageError):
    """Raised when rendering fails as Velocity's would (a Java method threw); API Gateway
    answers such a request 500."""


class _Scope(dict[str, Any]):
    """The template's variables, and the mode they are rendered in."""

    api_gateway = False


class _Break(Exception):
    pass


class _StopRendering(Exception):
    pass


def render_nodes(
    nodes: tuple[Any, ...], variables: MutableMapping[str, Any], *, api_gateway: bool = False
) -> str:
    """Render nodes to text; ``variables`` is changed by #set as Velocity's context is."""
    if not isinstance(variables, _Scope):
        scope = _Scope(variables)
        scope.api_gateway = api_gateway
        variables = scope
    out: list[str] = []
    with contextlib.suppress(_StopRendering, _Break):
        _render(nodes, variables, out)
    return "".join(out)


def _api_gateway(variables: MutableMapping[str, Any]) -> bool:
    return isinstance(variables, _Scope) and variables.api_gateway


def _render(nodes: tuple[Any, ...], variables: MutableMapping[str, Any], out: list[str]) -> None:
    for node in nodes:
        kind = type(node)
        if kind is p.Text:
            out.append(node.text)
        elif kind is p.Reference:
            value = _resolve(node, variables)
            if value is None:
                if not node.quiet and not _api_gateway(variables):
                    out.append(node.source)
            else:
                out.append(to_string(value))
        elif kind is p.EscapedReference:
            value = _resolve(node.reference, variables)
            if value is None:
                out.append("\\" * node.backslashes + node.reference.source)
            else:
                out.append("\\" * (node.backslashes // 2))
                odd = node.backslashes % 2
                out.append(node.reference.source if odd else to_string(value))
        elif kind is p.Set:
            _assign(node.target, _evaluate(node.value, variables), variables)
        elif kind is p.If:
            for condition, body in node.branches:
                if condition is None or _truthy(_evaluate(condition, variables)):
                    _render(body, variables, out)
                    break
        elif kind is p.Foreach:
            _foreach(node, variables, out)
        elif kind is p.Stop:
            raise _Break() if node.kind == "break" else _StopRendering()


def _foreach(node: p.Foreach, variables: MutableMapping[str, Any], out: list[str]) -> None:
    iterable = _evaluate(node.iterable, variables)
    if isinstance(iterable, dict):
        items = list(iterable.values())
    elif isinstance(iterable, list | tuple):
        items = list(iterable)
    else:
        return  # Velocity cannot iterate a string, a number or null: it logs and skips

    saved = {key: variables.get(key) for key in (node.variable, "foreach", "velocityCount")}
    try:
        for index, item in enumerate(items):
            variables[node.variable] = item
            variables["velocityCount"] = index + 1
            variables["foreach"] = {
                "index": index,
                "count": index + 1,
                "hasNext": index + 1 < len(items),
                "first": index == 0,
                "last": index + 1 == len(items),
            }
            try:
                _render(node.body, variables, out)
            except _Break:
                break
    finally:
        for key, value in saved.items():
            if value is None:
                variables.pop(key, None)
            else:
                variables[key] = value


def _truthy(value: Any) -> bool:
    return value is not None and value is not False


def _resolve(ref: p.Reference, variables: MutableMapping[str, Any]) -> Any:
    value = variables.get(ref.name)
    for step in ref.steps:
        if value is None:
            return None
        value = _step(value, step, variables)
    return value


def _step(value: Any, step: p.Access, variables: MutableMapping[str, Any]) -> Any:
    try:
        if step.name is None:
            index = _evaluate(step.index, variables)
            if isinstance(value, dict):
                return value.get(index)
            return call_method(value, "get", [index])
        if step.args is None:
            return get_property(value, step.name)
        args = [_evaluate(arg, variables) for arg in step.args]
        return call_method(value, step.name, args)
    except MethodMissing:
        return None
    except MethodThrew as error:
        raise TemplateRenderError(
            f"mapping template: invocation of method '{step.name}' threw {error}"
        ) from None


def _assign(target: p.Reference, value: Any, variables: MutableMapping[str, Any]) -> None:
    if value is None:
        return  # Velocity 1.7 (directive.set.null.allowed=false) keeps the old value
    if not target.steps:
        variables[target.name] = value
        return
    owner = _resolve(p.Reference(target.name, target.steps[:-1], True, ""), variables)
    last = target.steps[-1]
    if owner is None or last.args is not None:
        return
    key = last.name if last.name is not None else _evaluate(last.index, variables)
    if isinstance(owner, dict):
        owner[key] = value
    elif hasattr(owner, "vtl_set"):
        owner.vtl_set(key, value)


def _evaluate(node: Any, variables: MutableMapping[str, Any]) -> Any:
    kind = type(node)
    if kind is p.Literal:
        return node.value
    if kind is p.Reference:
        return _resolve(node, variables)
    if kind is p.Interpolated:
        return render_nodes(node.nodes, variables)
    if kind is p.Binary:
        return _binary(node, variables)
    if kind is p.Not:
        return not _truthy(_evaluate(node.operand, variables))
    if kind is p.ListLiteral:
        return [_evaluate(item, variables) for item in node.items]
    if kind is p.MapLiteral:
        return {_evaluate(k, variables): _evaluate(v, variables) for k, v in node.items}
    if kind is p.Range:
        start, end = _evaluate(node.start, variables), _evaluate(node.end, variables)
        if not isinstance(start, int) or not isinstance(end, int):
            return None
        step = 1 if end >= start else -1
        return list(range(start, end + step, step))
    raise AssertionError(f"unknown node {node!r}")


def _binary(node: p.Binary, variables: MutableMapping[str, Any]) -> Any:
    op = node.op
    left = _evaluate(node.left, variables)
    if op == "&&":
        return _truthy(left) and _truthy(_evaluate(node.right, variables))
    if op == "||":
        return _truthy(left) or _truthy(_evaluate(node.right, variables))
    right = _evaluate(node.right, variables)
    if op in ("==", "!="):
        equal = java_equals(left, right)
        if not equal and _api_gateway(variables):
            # API Gateway renders null as "" and compares it so: `$null == ""` is true.
            equal = (left is None and right == "") or (left == "" and right is None)
        return equal if op == "==" else not equal
    numbers = (int, float)
    if op == "+" and (isinstance(left, str) or isinstance(right, str)):
        if left is None or right is None:
            return None
        return to_string(left) + to_string(right)
    if op in ("<", ">", "<=", ">="):
        if isinstance(left, numbers) and isinstance(right, numbers):
            return {"<": left < right, ">": left > right, "<=": left <= right, ">=": left >= right}[
                op
            ]
        return None
    if not isinstance(left, numbers) or not isinstance(right, numbers):
        return None
    if isinstance(left, bool) or isinstance(right, bool):
        return None
    if op == "+":
        return left + right
    if op == "-":
        return left - right
    if op == "*":
        return left * right
    if right == 0:
        return None  # Velocity logs a division by zero and yields null
    if isinstance(left, int) and isinstance(right, int):
        # Java integer division and remainder truncate toward zero.
        quotient = abs(left) // abs(right) * (1 if (left >= 0) == (right >= 0) else -1)
        return quotient if op == "/" else left - quotient * right
    return left / right if op == "/" else left % right
