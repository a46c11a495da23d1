"""Acknowledging cdk-nag findings: one place for the helper, the reasons stay at each resource."""

from __future__ import annotations

from aws_cdk import Acknowledgment, Validations
from constructs import IConstruct

__all__ = ["acknowledge"]


def acknowledge(scope: IConstruct, rule_id: str, reason: str) -> None:
    """Acknowledge cdk-nag rule ``rule_id`` on ``scope`` and everything under it."""
    Validations.of(scope).acknowledge(Acknowledgment(id=rule_id, reason=reason))
