"""Per-request accounting: every request the client meant to send ends in exactly one class.

A request is one slot of the schedule: its attempts share (variant, trial, worker,
intended_at_ms), because a client retry keeps the first attempt's intended time. Its class
comes from its last attempt and, where one was stored, its item:

storage_first
    succeeded / failed: the item is SUCCEEDED / FAILED (error recorded on it);
    parked: the item is on the failure destination and not terminal (data in the table,
    processing abandoned); unresolved: the item was still PENDING, or not read, when collection
    hit its deadline (the trial's ``unfinished`` count); lost: answered 202 and gone once
    collection had settled; rejected: a non-2xx answer (by status in ``rejected_by_status``);
    no_answer: a timeout or connection error with no item to match; dropped: never sent.
direct
    succeeded: a 200 (or a stored item); rejected_permanently: 4xx other than 429, the client
    was told and nothing was stored (poison, invalid body); failed_transiently: 5xx or 429
    (502 outage, 500/429 throttle), nothing stored; no_answer: timeout or connection error;
    dropped: never sent.

The headline ``lost`` keeps the seed's sense, the data never reached the table: for
storage_first lost + rejected + no_answer, for direct every class but succeeded and dropped.
``dropped`` is NaN when no trial of the variant counted its dropped sends.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from analysis.lag import TERMINAL

__all__ = ["CLASSES", "REQUEST_KEY", "accounting", "class_counts", "request_classes"]

REQUEST_KEY = ["variant", "trial", "worker", "intended_at_ms"]
CLASSES = {
    "storage_first": (
        "succeeded", "failed", "parked", "unresolved", "lost", "rejected", "no_answer", "dropped",
    ),
    "direct": (
        "succeeded", "rejected_permanently", "failed_transiently", "no_answer", "dropped",
    ),
}  # fmt: skip
_NO_ANSWER = ("timeout", "connection_error")
_REFUSED = ("rejected", "rejected_permanently", "failed_transiently")


def _ids_in(values: pd.Series, candidates: pd.Series | np.ndarray) -> np.ndarray:
    """``values.isin(candidates)`` for id strings, done by Arrow (pandas' isin is slow here)."""
    wanted = pa.array(np.asarray(candidates, dtype=object), type=pa.string(), from_pandas=True)
    found = pc.is_in(pa.array(values, type=pa.string(), from_pandas=True), value_set=wanted)
    return np.asarray(found.fill_null(False).to_numpy(zero_copy_only=False), dtype=bool)


def _last_attempts(client: pd.DataFrame) -> tuple[pd.DataFrame, pd.Series]:
    """One row per request (its last attempt) and the number of attempts of each."""
    columns = [*REQUEST_KEY, "outcome", "status_code", "request_id"]
    frame = client[columns].copy()
    frame["worker"] = frame["worker"].fillna("")
    frame["attempt"] = client["attempt"].fillna(1).astype(int) if "attempt" in client else 1
    frame = frame.sort_values([*REQUEST_KEY, "attempt"], kind="stable")
    last = frame.drop_duplicates(REQUEST_KEY, keep="last")
    return last.reset_index(drop=True), last["attempt"].reset_index(drop=True)


def request_classes(
    client: pd.DataFrame, server: pd.DataFrame, parked: pd.DataFrame, trials: pd.DataFrame
) -> pd.DataFrame:
    """One row per sent request: REQUEST_KEY, request_id, status_code, attempts, class."""
    last, attempts = _last_attempts(client)
    last["attempts"] = attempts.to_numpy()
    klass = np.full(len(last), "", dtype=object)
    outcome = last["outcome"].to_numpy()
    code = last["status_code"].fillna(0).to_numpy()
    ids = last["request_id"]
    unfinished_trials: set[tuple[str, int]] = set()
    if len(trials) and "unfinished" in trials:
        open_rows = trials.loc[trials["unfinished"].fillna(0) > 0, ["variant", "trial"]]
        unfinished_trials = {(str(v), int(t)) for v, t in open_rows.itertuples(index=False)}
    for variant in last["variant"].dropna().unique():
        mine = (last["variant"] == variant).to_numpy()
        items = server.loc[server["variant"] == variant, ["request_id", "status"]]
        items = items.drop_duplicates("request_id", keep="last")
        status = pd.Series(items["status"].to_numpy(), index=items["request_id"].to_numpy())
        item_status = ids.map(status).to_numpy(dtype=object)
        has_item = mine & pd.notna(item_status)
        no_answer = mine & np.isin(outcome, _NO_ANSWER)
        if variant == "storage_first":
            parked_ids = parked.loc[parked["variant"] == variant, "request_id"].dropna().unique()
            is_parked = _ids_in(ids, parked_ids)
            answered = mine & (outcome == "accepted")
            open_trials = [trial for name, trial in unfinished_trials if name == variant]
            in_open_trial = last["trial"].isin(open_trials).to_numpy()
            klass[mine & ~answered] = "rejected"
            klass[no_answer & ~has_item] = "no_answer"
            settled = (mine & has_item) | answered
            klass[settled & (item_status == "SUCCEEDED")] = "succeeded"
            klass[settled & (item_status == "FAILED")] = "failed"
            not_terminal = settled & ~np.isin(item_status, TERMINAL)
            klass[not_terminal & is_parked] = "parked"
            pending = not_terminal & ~is_parked
            klass[pending & has_item] = "unresolved"
            klass[pending & ~has_item & in_open_trial] = "unresolved"
            klass[pending & ~has_item & ~in_open_trial] = "lost"
        else:
            klass[mine & ((outcome == "succeeded") | has_item)] = "succeeded"
            transient = (outcome == "server_error") | (outcome == "throttled") | (code >= 500)
            klass[mine & (klass == "") & transient] = "failed_transiently"
            klass[mine & (klass == "") & (outcome == "rejected")] = "rejected_permanently"
            klass[mine & (klass == "") & no_answer] = "no_answer"
            klass[mine & (klass == "")] = "failed_transiently"
    last["class"] = klass
    return last[[*REQUEST_KEY, "request_id", "outcome", "status_code", "attempts", "class"]]


def _dropped(trials: pd.DataFrame, variant: str) -> float:
    if trials.empty or "dropped_sends" not in trials:
        return math.nan
    counted = trials.loc[trials["variant"] == variant, "dropped_sends"].dropna()
    return float(counted.sum()) if len(counted) else math.nan


def class_counts(classes: pd.DataFrame, trials: pd.DataFrame, variant: str) -> dict[str, int]:
    """``{class: count}`` of one variant, summing to ``sent`` (dropped: 0 when not counted)."""
    counts = classes.loc[classes["variant"] == variant, "class"].value_counts()
    dropped = _dropped(trials, variant)
    result = {name: int(counts.get(name, 0)) for name in CLASSES.get(variant, ())}
    result["dropped"] = 0 if math.isnan(dropped) else int(dropped)
    return result


def accounting(
    client: pd.DataFrame,
    server: pd.DataFrame,
    parked: pd.DataFrame,
    trials: pd.DataFrame,
    redriven: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Per variant: sent (requests meant, dropped included), recorded, attempts, retried, the
    classes of CLASSES, accepted, client_errors, pending, duplicates, lost (the headline, see
    the module docstring; NaN when no item of the variant was collected), redriven (requests a
    re-drive processed again), redriven_succeeded, items_collected, dropped_counted,
    rejected_by_status ("502: 3, 400: 1")."""
    classes = request_classes(client, server, parked, trials)
    rows = []
    for variant, mine in classes.groupby("variant", observed=True):
        variant = str(variant)
        items = server.loc[server["variant"] == variant].drop_duplicates("request_id")
        counts = class_counts(classes, trials, variant)
        dropped = _dropped(trials, variant)
        variant_rows = client.loc[client["variant"] == variant]
        if variant == "storage_first":
            never_stored = counts["lost"] + counts["rejected"] + counts["no_answer"]
        else:
            never_stored = sum(
                counts[name] for name in ("rejected_permanently", "failed_transiently", "no_answer")
            )
        again = (
            redriven.loc[redriven["variant"] == variant]
            if redriven is not None and len(redriven)
            else pd.DataFrame(columns=["request_id", "status_after"])
        )
        again = again.drop_duplicates("request_id", keep="last")
        answered_ok = variant_rows["outcome"].isin(("accepted", "succeeded"))
        refused = mine.loc[mine["class"].isin(_REFUSED), "status_code"]
        by_status = refused.fillna(0).astype(int).value_counts().sort_index()
        rows.append(
            {
                "variant": variant,
                "sent": len(mine) + counts["dropped"],
                "recorded": len(mine),
                "attempts": len(variant_rows),
                "retried": int((mine["attempts"] > 1).sum()),
                **counts,
                "accepted": int(mine["outcome"].isin(("accepted", "succeeded")).sum()),
                "client_errors": int((~answered_ok).sum()),
                "pending": int((items["status"] == "PENDING").sum()),
                "duplicates": int(items["duplicates"].fillna(0).sum()),
                "lost": never_stored if len(items) else math.nan,
                "redriven": len(again),
                "redriven_succeeded": int((again["status_after"] == "SUCCEEDED").sum()),
                "items_collected": len(items),
                "dropped_counted": not math.isnan(dropped),
                "rejected_by_status": ", ".join(f"{code}: {n}" for code, n in by_status.items()),
            }
        )
    return pd.DataFrame(rows)
