"""asyncbench: measures the direct Lambda API against the storage-first DynamoDB Streams API."""

__version__ = "0.1.0"
__all__ = ["__version__"]
