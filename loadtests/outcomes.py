"""What a client outcome or an item's status means for the run: stated once, imported by all.

``reports.schema`` lists the outcomes and statuses; this module says which of them count as
"the server took the request" and "processing is over". No Locust here (collection imports it).
"""

from __future__ import annotations

__all__ = ["ACCEPTED_OUTCOMES", "TERMINAL_STATUSES"]

ACCEPTED_OUTCOMES = frozenset({"accepted", "succeeded"})
"""Client outcomes that mean the server took the request: it must end up as an item."""
TERMINAL_STATUSES = frozenset({"SUCCEEDED", "FAILED"})
"""Item statuses after which the processor will not touch the item again."""
