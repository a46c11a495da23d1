"""The DynamoDB Streams -> Lambda event source mapping, locally.

``mapping`` (one mapping: shard discovery and lineage), ``shard_consumer`` (poll, batch,
invoke, retry, checkpoint per shard), ``stream_reader`` (the Streams API client and the
record Lambda delivers), ``event_filter`` (FilterCriteria), ``batch_outcome`` (what an
invocation's result means for the batch), ``failure_destination`` (the on-failure record),
``settings`` (the mapping's knobs from the stack config).
"""
