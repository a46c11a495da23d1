"""moto's server mode for the deploy rehearsal, with the three moto gaps that block it bridged.

1. moto 5.2.5's CloudFormation has no ``AWS::ApiGateway::Stage``: the stage is then missing,
   and so are the stack's outputs (``api.url`` refers to it), which deploy reads. Here a Stage
   resource creates the stage through moto's own API Gateway backend.
2. It creates a Stage's Deployment while resolving the Stage's ``Ref`` to it, before the
   Deployment's ``DependsOn`` (the API's methods) exist, and CreateDeployment then refuses an
   API without methods. AWS honours ``DependsOn``. Here that check is skipped.
3. A stack created through a change set (what the CDK CLI does) keeps the outputs of its empty
   REVIEW_IN_PROGRESS template after ExecuteChangeSet. Here they are rebuilt from the change
   set's template.

Everything else is moto as it is (it skips ``AWS::ApiGateway::Account``,
``AWS::SQS::QueuePolicy`` and ``AWS::S3::BucketPolicy``, which it does not model).

Run as ``python rehearsal_moto_server.py -H localhost -p PORT``.
"""

from __future__ import annotations

import sys
from typing import Any

from moto.apigateway import models
from moto.cloudformation import models as cloudformation_models
from moto.core.common_models import CloudFormationModel
from moto.server import main


def _create_deployment(
    self: Any, function_id: str, name: str, description: str = "", stage_variables: Any = None
) -> Any:
    api = self.get_rest_api(function_id)
    return api.create_deployment(name, description, stage_variables or {})


models.APIGatewayBackend.create_deployment = _create_deployment  # type: ignore[method-assign]

_apply = cloudformation_models.ChangeSet.apply


def _apply_with_outputs(self: Any) -> None:
    _apply(self)
    self.stack.template = self.template
    self.stack._parse_template()
    self.stack.output_map = self.stack._create_output_map()


cloudformation_models.ChangeSet.apply = _apply_with_outputs  # type: ignore[method-assign]


class RehearsalStage(CloudFormationModel):
    """``AWS::ApiGateway::Stage`` for moto's CloudFormation; ``Ref`` is the stage name."""

    # moto's model registry files a model under its service, read from the module path.
    __module__ = "moto.apigateway.rehearsal"

    def __init__(self, name: str) -> None:
        self.name = name

    @property
    def physical_resource_id(self) -> str:
        return self.name

    @staticmethod
    def cloudformation_name_type() -> str:
        return "StageName"

    @staticmethod
    def cloudformation_type() -> str:
        return "AWS::ApiGateway::Stage"

    @classmethod
    def has_cfn_attr(cls, attr: str) -> bool:
        return False

    @classmethod
    def create_from_cloudformation_json(  # type: ignore[override]
        cls,
        resource_name: str,
        cloudformation_json: dict[str, Any],
        account_id: str,
        region_name: str,
        **kwargs: Any,
    ) -> RehearsalStage:
        properties = cloudformation_json["Properties"]
        models.apigateway_backends[account_id][region_name].create_stage(
            properties["RestApiId"],
            properties["StageName"],
            properties["DeploymentId"],
            variables=properties.get("Variables"),
        )
        return cls(properties["StageName"])


if __name__ == "__main__":
    main(sys.argv[1:])
