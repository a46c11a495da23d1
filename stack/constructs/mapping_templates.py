"""The API Gateway mapping templates, read verbatim from ``stack/templates/*.vtl``.

The local stage renders the very same files, so the CDK app must never edit or inline them.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["TEMPLATES_DIR", "read_template"]

TEMPLATES_DIR = Path(__file__).resolve().parent.parent / "templates"


def read_template(name: str) -> str:
    """The text of ``stack/templates/<name>`` exactly as stored (no newline normalisation)."""
    return (TEMPLATES_DIR / name).read_bytes().decode("utf-8")
