"""The trial plan of a run: both variants, interleaved, in a randomized order per repetition.

Randomized multiple interleaved trials (DESIGN.md section 4): every repetition drives every
variant exactly once, in an order drawn from a seeded random generator, so drift of the machine
or the cloud over the run spreads over both variants instead of favouring one. The seed is
recorded in the manifest; the same seed gives the same plan.
"""

from __future__ import annotations

import random
import re
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass

from asyncbench.errors import RunError

__all__ = [
    "DEFAULT_VARIANTS",
    "PlannedTrial",
    "draw_seed",
    "make_run_id",
    "plan_configuration_trials",
    "plan_trials",
]

DEFAULT_VARIANTS = ("direct", "storage_first")


@dataclass(frozen=True)
class PlannedTrial:
    """One trial of the plan: which variant, in which repetition, at which place in the run."""

    trial: int
    """1-based position in run order."""
    repetition: int
    """1-based repetition the trial belongs to."""
    variant: str
    configuration: str | None = None
    """``asyncbench tune``: the label of the configuration applied before the trial."""


def draw_seed() -> int:
    """A fresh seed for a run that was not given one (recorded, so the run can be replayed)."""
    return secrets.randbelow(2**31)


def plan_trials(
    repetitions: int, seed: int, variants: Sequence[str] = DEFAULT_VARIANTS
) -> list[PlannedTrial]:
    """Trials in run order: per repetition, each variant once, order shuffled with ``seed``."""
    if repetitions < 1:
        raise RunError(f"repetitions must be at least 1, got {repetitions}")
    if not variants or len(set(variants)) != len(variants):
        raise RunError(f"variants must be distinct and not empty, got {list(variants)}")
    generator = random.Random(seed)
    plan: list[PlannedTrial] = []
    for repetition in range(1, repetitions + 1):
        order = list(variants)
        generator.shuffle(order)
        for variant in order:
            plan.append(PlannedTrial(len(plan) + 1, repetition, variant))
    return plan


def plan_configuration_trials(
    repetitions: int, seed: int, variant: str, configurations: Sequence[str]
) -> list[PlannedTrial]:
    """``asyncbench tune``: the configurations are the experiment's variants (each once per
    repetition, shuffled), all trials drive ``variant``."""
    plan = plan_trials(repetitions, seed, configurations)
    return [PlannedTrial(t.trial, t.repetition, variant, t.variant) for t in plan]


def make_run_id(scenario_name: str, *, now_s: float | None = None) -> str:
    """``20261128-142233-baseline-ab12``: UTC start time, scenario, a random suffix."""
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime(time.time() if now_s is None else now_s))
    slug = re.sub(r"[^a-z0-9]+", "-", scenario_name.lower()).strip("-") or "run"
    return f"{stamp}-{slug}-{secrets.token_hex(2)}"
