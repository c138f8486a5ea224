"""The trials of a study, fixed before anything runs: arms x configurations x seeds.

Every trial has a stable id (``t0007``) derived from its place in the plan, so a resumed run knows
which trials it already has. Arms interleave (configuration, seed, arm), so all arms progress together
and the same seed reaches every arm at about the same time.
"""

from __future__ import annotations

from dataclasses import dataclass

from tinyab.study.spec import StudySpec


@dataclass(frozen=True)
class TrialSlot:
    """One training run of the plan: arm (scientific values), configuration (nuisance draw) and seed."""

    trial_id: str
    arm: int
    config: int
    seed: int


def plan_trials(study: StudySpec) -> list[TrialSlot]:
    """Every trial of the study, in the order they are started."""
    slots = []
    arms = len(study.arms())
    for config in range(study.num_samples):
        for seed in study.seed_list:
            for arm in range(arms):
                slots.append(TrialSlot(f"t{len(slots):04d}", arm, config, seed))
    return slots
