"""The local stage: both variants of the system under test on this machine.

Grouped by the AWS service each part stands in for: ``apigateway/`` (the REST API, its
integrations and the Velocity renderer), ``awslambda/`` (execution environments, the Invoke
API), ``event_source_mapping/`` (DynamoDB Streams -> Lambda), ``dynamodb/`` (DynamoDB Local,
its HTTP client, the tables). At the top: ``stage`` (composition, lock), ``settings``, ``metrics``
(the CloudWatch-like metrics log), ``cli`` (``asyncbench local``). Nothing is imported here, so
that an execution environment starts light.
"""
