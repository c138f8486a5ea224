"""Sequential seeds: after each batch, more seeds for the arms of comparisons that are not yet decisive.

The family of comparisons is the one the report makes: every pair of levels of each scientific factor
(pooled over the other factors, paired by seed and their levels), or every arm against the baseline
of an ablation. After each batch every comparison is replayed look by look with the group-sequential
design of :mod:`tinyab.sequential` (the same replay the report makes from the records); a comparison
is decided at its first decisive look. Arms of open comparisons get the next ``step`` seeds (all arms
of a comparison the same seeds, so pairing holds) until every comparison is decided, ``max_seeds`` is
reached or the wall-time budget is spent. Decisions are a function of the records, so a resumed run
replays the same growth and continues the same sequence.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from tinyab import stats
from tinyab.records import TrialRecord
from tinyab.sequential import Decision, Sequential, replay
from tinyab.study.plan import StudyPlan, TrialSlot


@dataclass(frozen=True)
class Member:
    """One comparison of the family: the arms on each side and the factors that pair them."""

    name: str
    a: tuple[int, ...]
    b: tuple[int, ...]
    others: tuple[str, ...]  # the other factors: a trial's twin has the same seed and the same levels

    @property
    def arms(self) -> set[int]:
        return {*self.a, *self.b}


def family(plan: StudyPlan) -> list[Member]:
    """The comparisons of the plan's arms (the family the error rate is controlled over)."""
    labels = [arm.label for arm in plan.arms]
    if plan.baseline is not None:
        base = plan.baseline
        key = plan.factors[0]
        return [
            Member(f"{labels[i][key]} vs {labels[base][key]}", (i,), (base,), ())
            for i in range(len(labels))
            if i != base
        ]
    levels = {f: list(dict.fromkeys(label[f] for label in labels)) for f in plan.factors}
    members = []
    for key, x, y in stats.factor_pairs(levels):
        a = tuple(i for i, label in enumerate(labels) if label[key] == x)
        b = tuple(i for i, label in enumerate(labels) if label[key] == y)
        members.append(Member(f"{key}: {x} vs {y}", a, b, tuple(f for f in plan.factors if f != key)))
    return members


def differences(plan: StudyPlan, member: Member, values: Mapping[tuple[int, int], float]) -> list[np.ndarray]:
    """A − B per seed (seed order), from the objective of each (arm, seed)."""
    labels = [arm.label for arm in plan.arms]

    def side(arms: Sequence[int]) -> tuple[list[tuple], list[float]]:
        keys, vals = [], []
        for (arm, seed), value in values.items():
            if arm in arms:
                keys.append((seed, *(labels[arm][f] for f in member.others)))
                vals.append(value)
        return keys, vals

    keys_a, values_a = side(member.a)
    keys_b, values_b = side(member.b)
    return stats.per_seed_differences(keys_a, values_a, keys_b, values_b)


@dataclass(frozen=True)
class Look:
    """The state of the family after a batch: each comparison's decision so far."""

    seeds: int
    decisions: list[tuple[Member, Decision]]

    @property
    def open(self) -> list[Member]:
        return [m for m, d in self.decisions if d.verdict == "inconclusive"]

    def line(self) -> str:
        shown = "; ".join(m.name for m in self.open) or "none"
        decided = len(self.decisions) - len(self.open)
        total = len(self.decisions)
        return f"look at {self.seeds} seeds: {decided} of {total} comparisons decided; open: {shown}"


class SeedGrowth:
    """Grows a plan batch by batch while comparisons stay open (see the module docstring)."""

    def __init__(
        self,
        plan: StudyPlan,
        step: int,
        max_seeds: int,
        alpha: float,
        margin: float | None,
        budget_seconds: float | None = None,
    ) -> None:
        self.members = family(plan)
        self.design = Sequential(alpha, max(len(self.members), 1), len(plan.seeds), step, max_seeds)
        self.margin = margin
        self.deadline = time.monotonic() + budget_seconds if budget_seconds else None
        self.sign = 1.0 if plan.mode == "max" else -1.0

    def look(self, plan: StudyPlan, records: Sequence[TrialRecord], slots: Sequence[TrialSlot]) -> Look:
        """Replay every comparison on the records so far."""
        arm_of = {s.trial_id: s.arm for s in slots}
        values: dict[tuple[int, int], Any] = {
            (arm_of[r.trial_id], r.seed): self.sign * r.objective
            for r in records
            if r.status == "completed" and r.objective is not None and r.trial_id in arm_of
        }
        decisions = [
            (m, replay(differences(plan, m, values), self.design, self.margin)) for m in self.members
        ]
        return Look(len(plan.seeds), decisions)

    def grow(self, plan: StudyPlan, look: Look) -> StudyPlan | None:
        """The plan with the next batch of seeds for the open comparisons' arms; None when done."""
        later = [n for n in self.design.looks if n > len(plan.seeds)]
        if not look.open or not later:
            return None
        if self.deadline is not None and time.monotonic() > self.deadline:
            return None
        start = max(plan.seeds) + 1
        seeds = list(range(start, start + later[0] - len(plan.seeds)))
        arms = sorted(set().union(*(m.arms for m in look.open)))
        return plan.grow(seeds=seeds, arms=arms)
