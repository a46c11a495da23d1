"""The system under test: the CDK app, its config and the local stage."""

from stack.toolchain import prefer_supported_node

# Before anything imports aws_cdk: jsii starts its Node process on the first import.
prefer_supported_node()
