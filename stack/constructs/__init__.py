"""The small building blocks both variants are wired from: table, processor function, ingest API.

Each construct takes typed keyword arguments and exposes the resources it creates as attributes
(``self.table``, ``self.function``, ``self.api``), so a stack only wires them together.
"""

from stack.constructs.ingest_api import IngestApi
from stack.constructs.processor_function import ProcessorFunction
from stack.constructs.requests_table import RequestsTable

__all__ = ["IngestApi", "ProcessorFunction", "RequestsTable"]
