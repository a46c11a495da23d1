"""Behavioural checks of a running stage, the same for the local stage and AWS.

Each check sends real requests through the endpoints file's URLs (and, for the redelivery
check, invokes the stream function through Lambda's Invoke API) and compares what comes back
with the contract (CONTRACT.md). A check is one :class:`Check` row: passed, failed, or skipped
with the reason (a skip is not a mismatch).
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from stack.endpoints import Endpoints

__all__ = ["HOSTILE_BODIES", "Check", "StageClient", "behaviour_checks"]

HOSTILE_BODIES = {
    "quotes and backslashes": '{"payload": "it\'s \\"quoted\\" and C:\\\\path\\\\"}',
    "non-ASCII and emoji": '{"payload": "Grüße, 東京, 😀, \\u00e9"}',
    "attribute injection": (
        '{"payload": "\\", \\"status\\": {\\"S\\": \\"SUCCEEDED\\"}, \\"x\\": \\""}'
    ),
    "template syntax": '{"payload": "$context.requestId #set($x = 1) ${x} \\\\$y ##"}',
    "markup and slashes": '{"payload": "</script><b>&amp;</b> // \\/ \\t"}',
    "whitespace layout": '{\n  "work_ms": 0,\n\t"payload": "  lines  "\n}\n',
}
OVERSIZE_BYTES = 10 * 1024 * 1024 + 1  # one byte over API Gateway's 10 MB payload quota
OVER_ITEM_BYTES = 420 * 1024  # over DynamoDB's 400 KB item size, well under 10 MB
OUTAGE_MS = 3000


@dataclass(frozen=True)
class Check:
    name: str
    passed: bool | None
    """None: skipped (``detail`` says why)."""
    detail: str = ""


@dataclass(frozen=True)
class Answer:
    status: int
    body: bytes

    def json(self) -> Any:
        try:
            return json.loads(self.body)
        except ValueError:
            return None


class StageClient:
    """Plain HTTP to both variants' routes (no retries: every status is an observation)."""

    def __init__(self, endpoints: Endpoints, *, timeout_s: float = 35.0) -> None:
        self.endpoints = endpoints
        self._timeout_s = timeout_s

    def post(self, variant: str, body: bytes, *, content_type: str = "application/json") -> Answer:
        url = f"{self.endpoints.variant(variant).base_url}/requests"
        headers = {"Content-Type": content_type, "X-Run-Id": "verify"}
        return self._send(urllib.request.Request(url, data=body, headers=headers, method="POST"))

    def get(self, variant: str, request_id: str) -> Answer:
        url = f"{self.endpoints.variant(variant).base_url}/requests/{request_id}"
        return self._send(urllib.request.Request(url, method="GET"))

    def _send(self, request: urllib.request.Request) -> Answer:
        try:
            with urllib.request.urlopen(request, timeout=self._timeout_s) as response:
                return Answer(response.status, response.read())
        except urllib.error.HTTPError as error:
            return Answer(error.code, error.read())
        except (urllib.error.URLError, ConnectionError) as error:
            # The server may close the connection after answering 413 mid-upload.
            reason = getattr(error, "reason", error)
            return Answer(0, str(reason).encode())

    def wait_for(
        self,
        variant: str,
        request_id: str,
        done: Callable[[Mapping[str, Any]], bool],
        *,
        timeout_s: float,
    ) -> Mapping[str, Any] | None:
        """Poll ``GET`` until ``done(item)``; the last item seen (None when never found)."""
        deadline = time.monotonic() + timeout_s
        item: Mapping[str, Any] | None = None
        while True:
            answer = self.get(variant, request_id)
            if answer.status == 200:
                item = answer.json()
                if item is not None and done(item):
                    return item
            if time.monotonic() > deadline:
                return item
            time.sleep(0.25)


def _status(client: StageClient, variant: str, body: bytes, expected: set[int], **kw: Any) -> Check:
    answer = client.post(variant, body, **kw)
    return Check("", answer.status in expected, f"HTTP {answer.status}")


def _terminal(item: Mapping[str, Any]) -> bool:
    return item.get("status") in ("SUCCEEDED", "FAILED")


def behaviour_checks(
    client: StageClient,
    *,
    stream_invoker: Callable[[dict[str, Any]], Any] | None,
    timeout_s: float = 60.0,
) -> list[Check]:
    """Every behavioural check, in order; ``stream_invoker`` invokes the stream function with
    an event (None: the redelivery check is skipped)."""
    checks: list[Check] = []

    def add(name: str, check: Check) -> None:
        checks.append(Check(name, check.passed, check.detail))

    # --- round trips (storage-first), posted first so the stream works while we go on
    sent: dict[str, tuple[str, str]] = {}
    refused: list[str] = []
    for label, body in HOSTILE_BODIES.items():
        answer = client.post("storage_first", body.encode("utf-8"))
        accepted = answer.json() if answer.status == 202 else None
        if isinstance(accepted, dict) and accepted.get("requestId"):
            sent[label] = (str(accepted["requestId"]), body)
        else:
            refused.append(f"{label}: HTTP {answer.status}")

    valid = b'{"work_ms": 0, "payload": "verify"}'
    direct_valid = client.post("direct", valid)
    storage_valid = client.post("storage_first", valid)
    poison = b'{"fail": "always"}'
    direct_poison = client.post("direct", poison)
    storage_poison = client.post("storage_first", poison)
    invalid = b"this is not JSON"
    direct_invalid = client.post("direct", invalid)
    storage_invalid = client.post("storage_first", invalid)
    now_ms = int(time.time() * 1000)
    outage = json.dumps({"outages": [[now_ms - 1000, now_ms + OUTAGE_MS]]}).encode()
    storage_outage = client.post("storage_first", outage)
    direct_outage = client.post("direct", outage)

    add(
        "direct: valid body -> 200 SUCCEEDED",
        Check(
            "",
            direct_valid.status == 200 and (direct_valid.json() or {}).get("status") == "SUCCEEDED",
            f"HTTP {direct_valid.status}",
        ),
    )
    add(
        "storage-first: valid body -> 202 PENDING",
        Check("", storage_valid.status == 202, f"HTTP {storage_valid.status}"),
    )
    add(
        "direct: poison -> 400",
        Check("", direct_poison.status == 400, f"HTTP {direct_poison.status}"),
    )
    add(
        "direct: invalid body -> 400",
        Check("", direct_invalid.status == 400, f"HTTP {direct_invalid.status}"),
    )
    add(
        "direct: during an outage -> 502",
        Check("", direct_outage.status == 502, f"HTTP {direct_outage.status}"),
    )
    for variant in ("direct", "storage_first"):
        unknown = client.get(variant, f"verify-unknown-{uuid.uuid4()}")
        add(
            f"{_label(variant)}: unknown id -> 404",
            Check("", unknown.status == 404, f"HTTP {unknown.status}"),
        )
    oversize = b'{"payload": "' + b"x" * OVERSIZE_BYTES + b'"}'
    for variant in ("direct", "storage_first"):
        add(f"{_label(variant)}: body over 10 MB -> 413", _status(client, variant, oversize, {413}))
    over_item = b'{"payload": "' + b"y" * OVER_ITEM_BYTES + b'"}'
    add(
        "storage-first: item over 400 KB -> 400",
        _status(client, "storage_first", over_item, {400, 413}),
    )
    add(
        "storage-first: text/plain body -> 415",
        _status(client, "storage_first", valid, {415}, content_type="text/plain"),
    )

    # --- outcomes the stream produces
    mismatched = list(refused)
    for label, (request_id, body) in sent.items():
        item = client.wait_for("storage_first", request_id, lambda item: True, timeout_s=10)
        if item is None or item.get("request") != body:
            got = None if item is None else item.get("request")
            mismatched.append(f"{label}: stored {got!r}")
    add(
        f"storage-first: {len(HOSTILE_BODIES)} hostile bodies round-trip byte for byte",
        Check("", not mismatched, "; ".join(mismatched) or "all identical"),
    )
    add(
        "storage-first: poison -> 202, then FAILED with its error",
        _ends(client, storage_poison, "FAILED", timeout_s, need_error=True),
    )
    add(
        "storage-first: invalid body -> 202, then FAILED with its error",
        _ends(client, storage_invalid, "FAILED", timeout_s, need_error=True),
    )
    add(
        f"storage-first: rides out a {OUTAGE_MS // 1000} s outage -> SUCCEEDED",
        _ends(client, storage_outage, "SUCCEEDED", timeout_s, min_attempts=2),
    )
    add(
        "storage-first: a redelivered record is not processed twice",
        _redelivery(client, storage_valid, stream_invoker, timeout_s),
    )
    return checks


def _label(variant: str) -> str:
    return "storage-first" if variant == "storage_first" else variant


def _request_id(answer: Answer) -> str | None:
    body = answer.json()
    return str(body["requestId"]) if isinstance(body, dict) and body.get("requestId") else None


def _ends(
    client: StageClient,
    accepted: Answer,
    status: str,
    timeout_s: float,
    *,
    need_error: bool = False,
    min_attempts: int = 0,
) -> Check:
    request_id = _request_id(accepted)
    if accepted.status != 202 or request_id is None:
        return Check("", False, f"not accepted: HTTP {accepted.status}")
    item = client.wait_for("storage_first", request_id, _terminal, timeout_s=timeout_s)
    if item is None:
        return Check("", False, f"{request_id} never readable")
    detail = f"{item.get('status')}, attempts {item.get('attempts')}"
    if item.get("error"):
        detail += f", error {str(item['error'])[:60]!r}"
    passed = (
        item.get("status") == status
        and (not need_error or bool(item.get("error")))
        and int(item.get("attempts") or 0) >= min_attempts
    )
    return Check("", passed, detail)


def _redelivery(
    client: StageClient,
    accepted: Answer,
    stream_invoker: Callable[[dict[str, Any]], Any] | None,
    timeout_s: float,
) -> Check:
    if stream_invoker is None:
        return Check("", None, "skipped: the endpoints file names no stream function")
    request_id = _request_id(accepted)
    if request_id is None:
        return Check("", False, f"not accepted: HTTP {accepted.status}")
    before = client.wait_for("storage_first", request_id, _terminal, timeout_s=timeout_s)
    if before is None or before.get("status") != "SUCCEEDED":
        return Check("", False, f"the request did not succeed first: {before}")
    # The INSERT record the stream delivered for this request, delivered once more (as a
    # mapping does after a retried batch), twice.
    record = {
        "eventID": uuid.uuid4().hex,
        "eventName": "INSERT",
        "eventVersion": "1.1",
        "eventSource": "aws:dynamodb",
        "dynamodb": {
            "Keys": {"id": {"S": request_id}},
            "SequenceNumber": "1",
            "StreamViewType": "NEW_IMAGE",
        },
    }
    for _ in range(2):
        result = stream_invoker({"Records": [record]})
        if result != {"batchItemFailures": []}:
            return Check("", False, f"the stream function answered {result!r}")
    after = client.get("storage_first", request_id).json() or {}
    same = all(after.get(key) == before.get(key) for key in ("status", "attempts", "processedAtMs"))
    processed = (
        "unchanged" if after.get("processedAtMs") == before.get("processedAtMs") else "changed"
    )
    return Check(
        "",
        same,
        f"attempts {before.get('attempts')} -> {after.get('attempts')}, processedAtMs {processed}",
    )
