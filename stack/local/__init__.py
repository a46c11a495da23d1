"""The local stage: both variants of the system under test on this machine.

Modules: ``dynamodb_local`` (AWS's DynamoDB Local JVM), ``tables`` (the CDK app's tables),
``lambda_runtime`` + ``lambda_worker`` (execution environments as processes), ``metrics`` (the
CloudWatch-like metrics log), ``gateway`` (API Gateway), ``event_source_mapping`` (DynamoDB
Streams -> Lambda), ``settings`` and ``stage`` (composition, lock), ``cli`` (``asyncbench local``).
Nothing is imported here, so that an execution environment starts light.
"""
