"""The endpoints file: where the variants of a deployed or local stage answer (CONTRACT.md).

Written by ``asyncbench deploy`` (from the CloudFormation outputs) and ``asyncbench local up``;
read by ``asyncbench run``. A run cannot tell a local stage from AWS except through
``target``, which it records in its manifest.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from asyncbench.errors import EndpointsError
from asyncbench.paths import state_dir

__all__ = [
    "ENDPOINTS_SCHEMA_VERSION",
    "VARIANTS",
    "Endpoints",
    "VariantEndpoint",
    "default_endpoints_path",
    "read_endpoints",
    "write_endpoints",
]

ENDPOINTS_SCHEMA_VERSION = 1
VARIANTS = ("direct", "storage_first")
Target = Literal["local", "aws"]


@dataclass(frozen=True)
class VariantEndpoint:
    base_url: str
    """URL the variant's routes hang under, without a trailing slash."""
    table: str
    failure_destination: str | None = None
    """storage-first only: JSON-lines file (local) or SQS queue URL (aws)."""


@dataclass(frozen=True)
class Endpoints:
    target: Target
    region: str
    variants: dict[str, VariantEndpoint]
    dynamodb_endpoint: str | None = None
    """Local only: DynamoDB Local's URL; absent (None) on AWS."""
    extra: dict[str, Any] = field(default_factory=dict)
    """Optional extras a writer adds (for example the local stage's metrics log)."""

    def variant(self, name: str) -> VariantEndpoint:
        try:
            return self.variants[name]
        except KeyError:
            raise EndpointsError(
                f"endpoints file has no variant {name!r} (has: {', '.join(self.variants)})"
            ) from None

    @property
    def lambda_endpoint(self) -> str | None:
        """URL of a Lambda Invoke API for boto3's ``endpoint_url`` (the local stage serves
        one); None when the file names none (AWS: boto3's own endpoint)."""
        value = self.extra.get("lambda_endpoint")
        return str(value) if value else None

    def function_name(self, variant: str) -> str:
        """The Lambda function that processes ``variant``'s requests (extra ``functions``)."""
        functions = self.extra.get("functions")
        name = functions.get(variant) if isinstance(functions, dict) else None
        if not name:
            raise EndpointsError(
                f"endpoints file names no function for variant {variant!r}; "
                "bring the stage up (or deploy) again with this version of asyncbench"
            )
        return str(name)

    def to_dict(self) -> dict[str, Any]:
        variants: dict[str, Any] = {}
        for name, endpoint in self.variants.items():
            entry: dict[str, Any] = {"base_url": endpoint.base_url, "table": endpoint.table}
            if endpoint.failure_destination is not None:
                entry["failure_destination"] = endpoint.failure_destination
            variants[name] = entry
        data: dict[str, Any] = {
            "schema_version": ENDPOINTS_SCHEMA_VERSION,
            "target": self.target,
            "region": self.region,
            "variants": variants,
        }
        if self.dynamodb_endpoint is not None:
            data["dynamodb_endpoint"] = self.dynamodb_endpoint
        data.update(self.extra)
        return data

    @classmethod
    def from_dict(cls, data: Any, *, source: str = "endpoints file") -> Endpoints:
        if not isinstance(data, dict):
            raise EndpointsError(f"{source} must hold a JSON object")
        version = data.get("schema_version")
        if not isinstance(version, int):
            raise EndpointsError(f"{source} has no integer schema_version")
        if version > ENDPOINTS_SCHEMA_VERSION:
            raise EndpointsError(
                f"{source} has schema_version {version}, newer than this asyncbench understands "
                f"({ENDPOINTS_SCHEMA_VERSION}); upgrade asyncbench"
            )
        try:
            target = data["target"]
            if target not in ("local", "aws"):
                raise EndpointsError(f"{source}: target must be 'local' or 'aws', got {target!r}")
            variants = {
                name: VariantEndpoint(
                    base_url=str(entry["base_url"]).rstrip("/"),
                    table=str(entry["table"]),
                    failure_destination=entry.get("failure_destination"),
                )
                for name, entry in data["variants"].items()
            }
            known = {"schema_version", "target", "region", "variants", "dynamodb_endpoint"}
            return cls(
                target=target,
                region=str(data["region"]),
                variants=variants,
                dynamodb_endpoint=data.get("dynamodb_endpoint"),
                extra={key: value for key, value in data.items() if key not in known},
            )
        except (KeyError, TypeError, AttributeError) as error:
            raise EndpointsError(f"{source} is missing or has a malformed field: {error}") from None


def default_endpoints_path(target: Target = "local") -> Path:
    """``.asyncbench/endpoints-<target>.json`` in the checkout (or ASYNCBENCH_STATE_DIR)."""
    return state_dir() / f"endpoints-{target}.json"


def write_endpoints(endpoints: Endpoints, path: Path | None = None) -> Path:
    """Write atomically (a reader never sees half a file); returns the path written."""
    path = path or default_endpoints_path(endpoints.target)
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(
        "w", dir=path.parent, prefix=path.name, suffix=".tmp", delete=False, encoding="utf-8"
    ) as handle:
        json.dump(endpoints.to_dict(), handle, indent=2)
        handle.write("\n")
    os.replace(handle.name, path)
    return path


def read_endpoints(path: Path | None = None, *, target: Target = "local") -> Endpoints:
    path = path or default_endpoints_path(target)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        hint = "`asyncbench local up`" if target == "local" else "`asyncbench deploy`"
        raise EndpointsError(f"no endpoints file at {path}; run {hint} first") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        raise EndpointsError(f"endpoints file {path} is not valid JSON: {error}") from None
    return Endpoints.from_dict(data, source=f"endpoints file {path}")
