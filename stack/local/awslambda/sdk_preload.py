"""Imported once by the Lambda fork server: warms the SDK's DynamoDB model for every environment.

Creating the first DynamoDB client in a process loads botocore's JSON models (about 50 ms of
CPU). Forked environments inherit the default session's loader cache from here, so their own
client costs a few ms. On AWS that cost is part of every cold start; locally, ten environments
starting at once on two cores would pay it ten times over on shared CPUs and turn a burst of
cold starts into throttles that AWS (a CPU per environment) would not show. Local init times
are therefore lower than on AWS; the README's fidelity table says so.
"""

from __future__ import annotations

import boto3

__all__: list[str] = []

# Explicit dummy settings: nothing here may touch the network, the environment or credentials.
boto3.client(
    "dynamodb",
    region_name="us-east-1",
    endpoint_url="http://127.0.0.1:9",
    aws_access_key_id="preload",
    aws_secret_access_key="preload",
)
