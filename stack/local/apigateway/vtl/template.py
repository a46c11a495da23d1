"""A parsed mapping template, and the stack's own templates loaded once by file name."""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any

from stack.local.apigateway.vtl.apigateway import Context, Input, Util
from stack.local.apigateway.vtl.parser import parse
from stack.local.apigateway.vtl.render import render_nodes

__all__ = ["TEMPLATES_DIR", "Template", "load_template"]

TEMPLATES_DIR = Path(__file__).resolve().parents[3] / "templates"

_UTIL = Util()


class Template:
    """A VTL template parsed once and rendered many times (thread-safe: rendering is pure)."""

    def __init__(self, source: str, name: str = "<template>") -> None:
        self.name = name
        self.source = source
        self._nodes = parse(source)

    def render(self, variables: Mapping[str, Any], *, api_gateway: bool = False) -> str:
        """Render with arbitrary top-level variables (a copy is changed by #set); plain
        Velocity 1.7 unless ``api_gateway`` (API Gateway's differences from it)."""
        return render_nodes(self._nodes, dict(variables), api_gateway=api_gateway)

    def render_api_gateway(
        self,
        *,
        input: Input,
        context: Context,
        stage_variables: Mapping[str, str],
    ) -> str:
        """Render as API Gateway does, with $input, $context, $util and $stageVariables."""
        return self.render(
            {
                "input": input,
                "context": context,
                "util": _UTIL,
                "stageVariables": dict(stage_variables),
            },
            api_gateway=True,
        )


@cache
def load_template(file_name: str) -> Template:
    """One of stack/templates/*.vtl (the files the CDK app deploys), parsed once."""
    path = TEMPLATES_DIR / file_name
    return Template(path.read_text(encoding="utf-8"), name=file_name)
