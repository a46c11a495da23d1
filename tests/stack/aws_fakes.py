"""What moto does not implement, answered in-process for the deploy tests.

moto 5.2 has no Lambda GetAccountSettings (it answers 404 "Not yet implemented"): the account's
concurrency limit is answered here through botocore's ``before-call`` hook on the session
``asyncbench deploy`` creates, so the rest of the call chain (STS, CloudFormation, SSM, Lambda's
GetFunctionConcurrency) still goes to moto.
"""

from __future__ import annotations

from typing import Any

import pytest
from botocore.awsrequest import AWSResponse

from stack import cli as stack_cli


def account_concurrency(monkeypatch: pytest.MonkeyPatch, limit: int, unreserved: int) -> None:
    """Sessions made by the stack commands answer GetAccountSettings with these limits."""
    real = stack_cli.aws_session

    def session_with_limits(region: str | None, profile: str | None) -> Any:
        session = real(region, profile)

        def answer(**_: Any) -> tuple[AWSResponse, dict[str, Any]]:
            parsed = {
                "AccountLimit": {
                    "ConcurrentExecutions": limit,
                    "UnreservedConcurrentExecutions": unreserved,
                },
                "AccountUsage": {"FunctionCount": 0},
            }
            return AWSResponse("https://lambda", 200, {}, None), parsed  # type: ignore[arg-type]

        session.events.register("before-call.lambda.GetAccountSettings", answer)
        return session

    monkeypatch.setattr(stack_cli, "aws_session", session_with_limits)
