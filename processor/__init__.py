"""The Lambda handlers of both variants and the business logic they share.

This package is the Lambda asset: it imports nothing from the rest of asyncbench (stdlib and
boto3 only), and its module paths are the same on AWS and on the local stage.

- ``logic``: the one business-logic simulation (request body -> success, PermanentFailure,
  TransientFailure); pure, clock and sleep injected.
- ``direct``: ``processor.direct.handler``, the direct variant (API Gateway REST proxy event).
- ``stream``: ``processor.stream.handler``, the storage-first variant (DynamoDB stream batch,
  partial batch responses).
- ``retry``: the stream handler's back-off and give-up ceiling, as pure functions.
- ``items``: low-level DynamoDB attribute values of the stored request item.
- ``settings``: the environment variables a function reads (documented there).
- ``runtime``: one execution environment's state (settings, client, clock, cold start).

Each handler module builds its :class:`~processor.runtime.Runtime` once per execution
environment. A host that runs several environments in one process (not one per process) calls
``handle(event, context, runtime)`` with one ``Runtime.from_environment(env)`` per environment.
"""
