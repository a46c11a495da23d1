"""A Velocity Template Language renderer faithful to API Gateway's mapping templates."""

from __future__ import annotations

from stack.local.apigateway.vtl.apigateway import Context, Input, Util, escape_javascript, json_path
from stack.local.apigateway.vtl.parser import TemplateSyntaxError, parse
from stack.local.apigateway.vtl.template import TEMPLATES_DIR, Template, load_template

__all__ = [
    "TEMPLATES_DIR",
    "Context",
    "Input",
    "Template",
    "TemplateSyntaxError",
    "Util",
    "escape_javascript",
    "json_path",
    "load_template",
    "parse",
]
