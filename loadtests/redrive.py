"""``asyncbench redrive``: process parked and long-PENDING requests again, idempotently.

With partial batch responses the event source mapping's retry budget is per batch: in an
outage longer than the budget, the records queued behind a failing head are parked on the
failure destination while their items are still PENDING. Their data is in the table (the
storage-first promise), so they can be processed again: re-drive builds a stream-shaped event
(an INSERT record with the item as NEW_IMAGE) and invokes the deployed stream function with
boto3's ``lambda`` client, the same code path on both targets (AWS: Lambda itself; local: the
stage's Invoke API at ``Endpoints.lambda_endpoint``). The handler runs its usual logic.

Idempotent: each item is read (consistently) before it is invoked, and a terminal one is left
alone; the handler's own conditional writes make a concurrent delivery count as a duplicate,
never a second outcome.

With a RUN_DIR, the candidates are the run's parked rows (``data/parked``) and its items still
PENDING; the re-driven requests are written to ``data/redriven`` and the run's server rows
(``data/server``) are refreshed so a new report shows them. Without one, it works on the
stage's table and failure destination directly.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from asyncbench.errors import EndpointsError, RunFolderError
from loadtests.collect_dynamodb import plain, resolve_parked_record, scan_run_items
from reports.schema import PARKED, REDRIVEN, SERVER, read_manifest, read_table, write_table
from stack.endpoints import Endpoints, read_endpoints

__all__ = [
    "DEFAULT_PENDING_CUTOFF_S",
    "Candidate",
    "RedriveOutcome",
    "Redriver",
    "redrive_run",
    "register",
    "stream_event",
]

# An item PENDING for longer than this is re-driven (the mapping has long given up on it).
DEFAULT_PENDING_CUTOFF_S = 300.0
VARIANT = "storage_first"
TERMINAL = frozenset({"SUCCEEDED", "FAILED"})
# DynamoDB Local and the local Invoke API accept any credentials; boto3 needs some to sign.
_LOCAL_CREDENTIALS = {
    "aws_access_key_id": "asyncbench",
    "aws_secret_access_key": "asyncbench",
    "region_name": "us-east-1",
}


@dataclass(frozen=True)
class Candidate:
    request_id: str
    source: str
    """'parked' (named by a failure-destination record) or 'pending' (past the cut-off)."""
    trial: int | None = None


@dataclass(frozen=True)
class RedriveOutcome:
    rows: list[dict[str, Any]]
    """REDRIVEN rows (without run_id/trial) of the requests processed again."""
    already_terminal: int
    missing: int
    still_open: list[str]


def stream_event(item: Mapping[str, Any], stream_arn: str, region: str) -> dict[str, Any]:
    """A DynamoDB stream batch of one INSERT record carrying ``item`` (DynamoDB JSON)."""
    request_id = item["id"]["S"]
    accepted_ms = int(item.get("accepted_at_ms", {}).get("N", "0") or 0)
    return {
        "Records": [
            {
                "eventID": f"redrive-{request_id}",
                "eventName": "INSERT",
                "eventVersion": "1.1",
                "eventSource": "aws:dynamodb",
                "awsRegion": region,
                "dynamodb": {
                    "ApproximateCreationDateTime": accepted_ms // 1000,
                    "Keys": {"id": {"S": request_id}},
                    "NewImage": dict(item),
                    # Not a real position on the shard: the handler only echoes it back as the
                    # item identifier of a failure, which a direct invocation has no use for.
                    "SequenceNumber": f"0{accepted_ms:020d}",
                    "SizeBytes": len(json.dumps(item)),
                    "StreamViewType": "NEW_IMAGE",
                },
                "eventSourceARN": stream_arn,
            }
        ]
    }


class Redriver:
    """Reads, invokes and re-reads items of the storage-first table (clients passed in)."""

    def __init__(
        self, *, dynamodb: Any, lambda_client: Any, table: str, function: str, region: str
    ) -> None:
        self.dynamodb = dynamodb
        self.lambda_client = lambda_client
        self.table = table
        self.function = function
        self.region = region
        described = dynamodb.describe_table(TableName=table)["Table"]
        self.stream_arn = str(described.get("LatestStreamArn", ""))

    def _item(self, request_id: str) -> dict[str, Any] | None:
        answer = self.dynamodb.get_item(
            TableName=self.table, Key={"id": {"S": request_id}}, ConsistentRead=True
        )
        item = answer.get("Item")
        return dict(item) if item else None

    def redrive(self, candidates: Iterable[Candidate]) -> RedriveOutcome:
        rows: list[dict[str, Any]] = []
        terminal = missing = 0
        seen: set[str] = set()
        for candidate in candidates:
            if candidate.request_id in seen:
                continue
            seen.add(candidate.request_id)
            item = self._item(candidate.request_id)
            if item is None:
                missing += 1
                continue
            before = item.get("status", {}).get("S", "PENDING")
            if before in TERMINAL:
                terminal += 1  # already processed: never twice
                continue
            redriven_at_ms = time.time() * 1000.0
            error = self._invoke(item)
            after_item = self._item(candidate.request_id) or {}
            rows.append(
                {
                    "request_id": candidate.request_id,
                    "trial": candidate.trial,
                    "variant": VARIANT,
                    "source": candidate.source,
                    "redriven_at_ms": redriven_at_ms,
                    "status_before": before,
                    "status_after": after_item.get("status", {}).get("S", "PENDING"),
                    "error": error,
                }
            )
        still_open = [row["request_id"] for row in rows if row["status_after"] not in TERMINAL]
        return RedriveOutcome(rows, terminal, missing, still_open)

    def _invoke(self, item: Mapping[str, Any]) -> str | None:
        """Invoke the stream function synchronously; the function's error, if it raised."""
        event = stream_event(item, self.stream_arn, self.region)
        answer = self.lambda_client.invoke(
            FunctionName=self.function,
            InvocationType="RequestResponse",
            Payload=json.dumps(event).encode("utf-8"),
        )
        payload = answer["Payload"].read()
        if answer.get("FunctionError"):
            try:
                detail = json.loads(payload)
                return f"{detail.get('errorType')}: {detail.get('errorMessage')}"
            except (json.JSONDecodeError, AttributeError):
                return f"function error: {payload[:200]!r}"
        return None


def pending_candidates(
    items: Iterable[Mapping[str, Any]], *, cutoff_ms: float, trials: Mapping[str, int]
) -> list[Candidate]:
    """Items still PENDING that were accepted before the cut-off."""
    found = []
    for item in items:
        accepted = item.get("accepted_at_ms")
        if item.get("status", "PENDING") in TERMINAL:
            continue
        if isinstance(accepted, int | float) and accepted > cutoff_ms:
            continue  # young: the mapping may still be on it
        request_id = str(item["id"])
        found.append(Candidate(request_id, "pending", trials.get(request_id)))
    return found


def _clients(endpoints: Endpoints) -> tuple[Any, Any, str]:
    """DynamoDB and Lambda clients for the endpoints' stage, and its region."""
    import boto3

    if endpoints.target == "local":
        from loadtests.collect_local import local_clients

        if not endpoints.lambda_endpoint:
            raise EndpointsError(
                "the local endpoints file names no lambda_endpoint; restart the stage with "
                "`asyncbench local down && asyncbench local up --detach`"
            )
        dynamodb, _ = local_clients(str(endpoints.dynamodb_endpoint))
        lambda_client = boto3.client(
            "lambda", endpoint_url=endpoints.lambda_endpoint, **_LOCAL_CREDENTIALS
        )
        return dynamodb, lambda_client, "us-east-1"
    session = boto3.Session(region_name=endpoints.region)
    return session.client("dynamodb"), session.client("lambda"), endpoints.region


def _streams_client(endpoints: Endpoints) -> Any:
    import boto3

    if endpoints.target == "local":
        from loadtests.collect_local import local_clients

        return local_clients(str(endpoints.dynamodb_endpoint))[1]
    return boto3.Session(region_name=endpoints.region).client("dynamodbstreams")


def redriver_for(endpoints: Endpoints) -> Redriver:
    dynamodb, lambda_client, region = _clients(endpoints)
    return Redriver(
        dynamodb=dynamodb,
        lambda_client=lambda_client,
        table=endpoints.variant(VARIANT).table,
        function=endpoints.function_name(VARIANT),
        region=region,
    )


def redrive_run(
    run_dir: Path, endpoints: Endpoints, *, cutoff_s: float = DEFAULT_PENDING_CUTOFF_S
) -> RedriveOutcome:
    """Re-drive a run's parked and long-PENDING requests; write REDRIVEN, refresh SERVER."""
    manifest = read_manifest(run_dir)
    run_id = str(manifest["run_id"])
    if manifest.get("target") not in (None, endpoints.target):
        raise RunFolderError(
            f"run {run_id} was made on target {manifest.get('target')}, not {endpoints.target}; "
            f"pass --target {manifest.get('target')}"
        )
    server = read_table(run_dir, SERVER)
    server = server[server["variant"] == VARIANT]
    trials = dict(zip(server["request_id"].astype(str), server["trial"].astype(int), strict=True))
    parked = read_table(run_dir, PARKED).dropna(subset=["request_id"])
    redriver = redriver_for(endpoints)
    candidates = [
        Candidate(str(row.request_id), "parked", int(row.trial))
        for row in parked.itertuples(index=False)
    ]
    items = scan_run_items(redriver.dynamodb, redriver.table, run_id)
    cutoff_ms = time.time() * 1000.0 - cutoff_s * 1000.0
    candidates += pending_candidates(items, cutoff_ms=cutoff_ms, trials=trials)
    outcome = redriver.redrive(candidates)
    if outcome.rows:
        frame = pd.DataFrame(outcome.rows)
        frame.insert(0, "run_id", run_id)
        frame["trial"] = frame["trial"].fillna(0).astype(int)
        stamp = int(time.time() * 1000)
        write_table(run_dir, REDRIVEN, frame, part=f"redrive-{stamp}")
        _refresh_server(run_dir, redriver, {row["request_id"] for row in outcome.rows})
    return outcome


def _refresh_server(run_dir: Path, redriver: Redriver, request_ids: set[str]) -> None:
    """Rewrite the run's SERVER parts with the re-driven items' current state."""
    import pyarrow.parquet as pq
    from boto3.dynamodb.types import TypeDeserializer

    deserializer = TypeDeserializer()
    fresh: dict[str, dict[str, Any]] = {}
    for request_id in request_ids:
        raw = redriver._item(request_id)
        if raw is not None:
            fresh[request_id] = {k: plain(deserializer.deserialize(v)) for k, v in raw.items()}
    collected_at_ms = time.time() * 1000.0
    columns = ("status", "attempts", "duplicates", "started_at_ms", "processed_at_ms", "error")
    for path in sorted((run_dir / SERVER.location).glob("*.parquet")):
        frame = pq.read_table(path).to_pandas()
        hits = frame["request_id"].isin(fresh.keys()) & (frame["variant"] == VARIANT)
        if not hits.any():
            continue
        for index in frame.index[hits]:
            item = fresh[str(frame.at[index, "request_id"])]
            for column in (*columns, "cold_start", "ttl"):
                if column in frame.columns:
                    frame.at[index, column] = item.get(column)
            frame.at[index, "collected_at_ms"] = collected_at_ms
        write_table(run_dir, SERVER, frame, part=path.stem)


def redrive_stage(
    endpoints: Endpoints, *, cutoff_s: float = DEFAULT_PENDING_CUTOFF_S
) -> RedriveOutcome:
    """Without a run folder: every parked record on the destination, every old PENDING item."""
    redriver = redriver_for(endpoints)
    candidates = [
        Candidate(request_id, "parked")
        for record in _destination_records(endpoints)
        for request_id in resolve_parked_record(_streams_client(endpoints), record)
    ]
    items = _scan_all(redriver.dynamodb, redriver.table)
    cutoff_ms = time.time() * 1000.0 - cutoff_s * 1000.0
    candidates += pending_candidates(items, cutoff_ms=cutoff_ms, trials={})
    return redriver.redrive(candidates)


def _scan_all(dynamodb: Any, table: str) -> list[dict[str, Any]]:
    from boto3.dynamodb.types import TypeDeserializer

    deserializer = TypeDeserializer()
    items: list[dict[str, Any]] = []
    arguments: dict[str, Any] = {"TableName": table, "ConsistentRead": True}
    while True:
        page = dynamodb.scan(**arguments)
        items += [
            {k: plain(deserializer.deserialize(v)) for k, v in raw.items()}
            for raw in page.get("Items", [])
        ]
        if not page.get("LastEvaluatedKey"):
            return items
        arguments["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def _destination_records(endpoints: Endpoints) -> list[dict[str, Any]]:
    """Every record on the failure destination (read, never deleted: re-drive is idempotent)."""
    destination = endpoints.variant(VARIANT).failure_destination
    if not destination:
        return []
    if endpoints.target == "local":
        from loadtests.collect_local import JsonLinesTail

        return JsonLinesTail(Path(destination)).read_new()
    import boto3

    sqs = boto3.Session(region_name=endpoints.region).client("sqs")
    records: list[dict[str, Any]] = []
    while True:
        # Long polling; a short visibility timeout so the messages stay for the next reader.
        answer = sqs.receive_message(
            QueueUrl=destination, MaxNumberOfMessages=10, WaitTimeSeconds=5, VisibilityTimeout=60
        )
        messages = answer.get("Messages", [])
        if not messages:
            return records
        for message in messages:
            try:
                body = json.loads(message["Body"])
            except json.JSONDecodeError:
                continue
            if isinstance(body, dict):
                records.append(body)


def _summary(outcome: RedriveOutcome) -> list[str]:
    after: dict[str, int] = {}
    for row in outcome.rows:
        after[row["status_after"]] = after.get(row["status_after"], 0) + 1
    sources: dict[str, int] = {}
    for row in outcome.rows:
        sources[row["source"]] = sources.get(row["source"], 0) + 1
    described = ", ".join(f"{count} {status}" for status, count in sorted(after.items()))
    lines = [
        f"re-drove {len(outcome.rows)} request(s) "
        f"({', '.join(f'{n} {s}' for s, n in sorted(sources.items())) or 'none'})"
        + (f": now {described}" if described else ""),
        f"left alone: {outcome.already_terminal} already terminal, "
        f"{outcome.missing} not in the table",
    ]
    if outcome.still_open:
        shown = ", ".join(outcome.still_open[:10])
        more = f" and {len(outcome.still_open) - 10} more" if len(outcome.still_open) > 10 else ""
        lines.append(f"still open (PENDING): {len(outcome.still_open)}: {shown}{more}")
    else:
        lines.append("still open (PENDING): 0")
    return lines


def _command(args: argparse.Namespace) -> int:
    endpoints = read_endpoints(Path(args.endpoints) if args.endpoints else None, target=args.target)
    if args.run_dir:
        run_dir = Path(args.run_dir)
        outcome = redrive_run(run_dir, endpoints, cutoff_s=args.pending_older_than)
    else:
        outcome = redrive_stage(endpoints, cutoff_s=args.pending_older_than)
    for line in _summary(outcome):
        print(line)
    if args.run_dir:
        print(run_dir)
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "redrive",
        help="process parked and long-PENDING requests again, idempotently",
        description=(
            "Invoke the deployed (or local) stream function again for every parked request and "
            "every item PENDING longer than the cut-off, with a stream-shaped event built from "
            "the item; a request already terminal is left alone. With RUN_DIR, the run's parked "
            "and pending requests; the re-driven ones are written to the run folder (its path "
            "is the last line) for the report."
        ),
    )
    parser.add_argument("--target", choices=("local", "aws"), default="local")
    parser.add_argument("run_dir", nargs="?", metavar="RUN_DIR", help="a run folder")
    parser.add_argument("--endpoints", help="endpoints file (default: the target's)")
    parser.add_argument(
        "--pending-older-than",
        type=float,
        default=DEFAULT_PENDING_CUTOFF_S,
        metavar="S",
        help="re-drive items PENDING for longer than S seconds "
        f"(default {DEFAULT_PENDING_CUTOFF_S:.0f})",
    )
    parser.set_defaults(handler=_command)
