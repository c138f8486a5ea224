"""The plan of a study: which trials run (arms × nuisance configurations × seeds) and how each is built.

A :class:`StudyPlan` is what the runner executes, whatever the study's kind: a search study gives one
plan, an ablation one per phase (tuning, then the re-runs of each arm's best). A plan can **grow**:
:meth:`StudyPlan.grow` appends seeds or configurations as a new step, and trial ids are numbered step
by step, so a grown plan keeps every id of the plan it grew from (``t0000`` … in the order trials
start: configuration, then seed, then arm, so every arm reaches a seed at about the same time).
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from tinyab.config import Recipe, load_recipe
from tinyab.schema import flatten, to_dict
from tinyab.study.arms import BASELINE_ARM
from tinyab.study.spec import (
    AblationStudy,
    Distribution,
    PrunerConfig,
    ResourcesConfig,
    SamplerConfig,
    SearchStudy,
)

RecipeBuilder = Callable[[Mapping[str, Any], int], dict[str, Any]]


@dataclass(frozen=True)
class TrialSlot:
    """One training run of the plan: arm, configuration (a nuisance draw) and seed."""

    trial_id: str
    arm: int
    config: int
    seed: int


@dataclass(frozen=True)
class PlanArm:
    """An arm: its values in the records' parameter columns, and how a trial's recipe is built from
    the nuisance values Optuna draws and the seed."""

    label: dict[str, Any]
    build: RecipeBuilder

    def recipe(self, nuisance: Mapping[str, Any], seed: int) -> Recipe:
        return load_recipe(self.build(nuisance, seed))

    @property
    def name(self) -> str:
        return ", ".join(f"{key}={value}" for key, value in self.label.items()) or "all"


@dataclass(frozen=True)
class Step:
    """The plan after one growth step: configurations per arm and seeds, for every arm or for the
    arms listed (sequential seeds grow only the arms of comparisons still open)."""

    configs: int
    seeds: tuple[int, ...]
    arms: tuple[int, ...] | None = None


@dataclass(frozen=True)
class StudyPlan:
    """Everything the runner needs to execute (or resume, or grow) one run of a study."""

    name: str
    question: str
    arms: tuple[PlanArm, ...]
    nuisance: dict[str, Distribution]
    steps: tuple[Step, ...]
    metric: str
    mode: str
    sampler: SamplerConfig
    pruner: PrunerConfig
    resources: ResourcesConfig
    columns: tuple[str, ...]  # the parameter columns of trials.csv
    record: dict[str, Any]  # study.yaml
    factors: tuple[str, ...] = ()  # the label columns whose levels are compared
    baseline: int | None = None  # the arm every other arm is compared with (an ablation), else None

    @property
    def pruned_on(self) -> str:
        """The epoch metric the pruner judges: its own ``metric``, else the study's."""
        return self.pruner.metric or self.metric

    @property
    def seeds(self) -> list[int]:
        return list(self.steps[-1].seeds)

    @property
    def configs(self) -> int:
        return self.steps[-1].configs

    def slots(self) -> list[TrialSlot]:
        """Every trial, in the order they start; each step adds only the (configuration, seed, arm)
        trials that earlier steps did not have."""
        slots: list[TrialSlot] = []
        planned: set[tuple[int, int, int]] = set()
        for step in self.steps:
            arms = range(len(self.arms)) if step.arms is None else step.arms
            for config in range(step.configs):
                for seed in step.seeds:
                    for arm in arms:
                        if (config, seed, arm) not in planned:
                            planned.add((config, seed, arm))
                            slots.append(TrialSlot(f"t{len(slots):04d}", arm, config, seed))
        return slots

    @functools.cached_property
    def judged_by(self) -> dict[str, str]:
        """The trial whose pruning decides each trial's fate. With several configurations per arm the
        pruner chooses between configurations: it judges each by its first seed, and the other seeds
        share that seed's fate (they are never judged themselves, and are stopped or not run once it is
        pruned), so a configuration kept keeps all its seeds for the comparisons. With one
        configuration per arm there is nothing to choose between, and every trial is judged itself.
        Worked out once per plan (a grown plan is a new one)."""
        slots = self.slots()
        if self.configs == 1:
            return {slot.trial_id: slot.trial_id for slot in slots}
        first: dict[tuple[int, int], str] = {}
        return {s.trial_id: first.setdefault((s.arm, s.config), s.trial_id) for s in slots}

    def grow(
        self, seeds: list[int] | None = None, configs: int | None = None, arms: list[int] | None = None
    ) -> StudyPlan:
        """This plan with more seeds and/or configurations, for every arm or only ``arms``, appended as
        a new step (unchanged when the step adds no trial)."""
        last = self.steps[-1]
        grown = Step(
            max(configs or 0, last.configs),
            tuple(dict.fromkeys([*last.seeds, *(seeds or [])])),
            tuple(sorted(arms)) if arms is not None else None,
        )
        before = len(self.slots())
        plan = dataclasses.replace(self, steps=(*self.steps, grown))
        return plan if len(plan.slots()) > before else self

    def arm_seeds(self) -> dict[int, list[int]]:
        """The seeds each arm runs (in plan order)."""
        seeds: dict[int, list[int]] = {arm: [] for arm in range(len(self.arms))}
        for slot in self.slots():
            if slot.seed not in seeds[slot.arm]:
                seeds[slot.arm].append(slot.seed)
        return seeds


def search_plan(study: SearchStudy, profile: str, source: str) -> StudyPlan:
    """The plan of a search study: arms are the combinations of its scientific values."""
    arm_values = study.arms()

    def builder(arm: dict[str, Any]) -> RecipeBuilder:
        return lambda nuisance, seed: study.trial_recipe({**arm, **nuisance}, seed)

    return StudyPlan(
        name=study.name,
        question=study.question,
        arms=tuple(PlanArm(arm, builder(arm)) for arm in arm_values),
        nuisance={key: study.params[key] for key in study.nuisance_names()},
        steps=(Step(study.num_samples, tuple(study.seed_list)),),
        metric=study.metric,
        mode=study.mode,
        sampler=study.sampler,
        pruner=study.pruner,
        resources=study.resources,
        columns=tuple(study.params),
        record=_search_record(study, profile, source),
        factors=tuple(study.scientific),
    )


def _search_record(study: SearchStudy, profile: str, source: str) -> dict[str, Any]:
    """``study.yaml`` of a search: every default filled, fixed overrides listed as ``fixed`` params."""
    data = to_dict(study)
    params = {key: {"role": p.role, **p.record()} for key, p in study.params.items()}
    fixed = {key: {"role": "fixed", "value": value} for key, value in flatten(study.overrides).items()}
    skip = ("name", "question", "params", "seeds", "profiles")
    return {
        "name": study.name,
        "question": study.question,
        "kind": "search",
        "profile": profile,
        "source": source,
        **{k: v for k, v in data.items() if k not in skip},
        "seeds": study.seed_list,
        "params": {**params, **fixed},
        "arms": study.arms(),
        "resolved_recipe": load_recipe(study.base_recipe()).to_dict(),
    }


def tune_plan(ablation: AblationStudy, profile: str, source: str) -> StudyPlan:
    """The tuning phase: every arm gets ``num_samples`` Optuna configurations on the tuning seed."""
    arms = ablation.arms()

    def builder(index: int) -> RecipeBuilder:
        return lambda nuisance, seed: ablation.trial_recipe(arms[index], dict(nuisance), seed)

    return StudyPlan(
        name=ablation.name,
        question=ablation.question,
        arms=tuple(PlanArm({"arm": a.name, "phase": "tune"}, builder(i)) for i, a in enumerate(arms)),
        nuisance=dict(ablation.nuisance),
        steps=(Step(ablation.num_samples, (ablation.tune_seed,)),),
        metric=ablation.metric,
        mode=ablation.mode,
        sampler=ablation.sampler,
        pruner=ablation.pruner,
        resources=ablation.resources,
        columns=("arm", "phase", *ablation.nuisance),
        record=ablation_record(ablation, profile, source),
        factors=("arm",),
        baseline=0,
    )


def rerun_plan(
    ablation: AblationStudy, profile: str, source: str, best: Mapping[str, Mapping[str, Any]]
) -> StudyPlan:
    """The re-run phase: each tuned arm's best values on the shared seeds; nothing sampled or pruned.

    An arm missing from ``best`` (its tuning produced no completed trial) is left out, never re-run
    with some other arm's values.
    """
    arms = [a for a in ablation.arms() if a.name in best]

    def builder(index: int) -> RecipeBuilder:
        arm = arms[index]
        return lambda _, seed: ablation.trial_recipe(arm, dict(best[arm.name]), seed)

    return StudyPlan(
        name=ablation.name,
        question=ablation.question,
        arms=tuple(
            PlanArm({"arm": a.name, "phase": "rerun", **best[a.name]}, builder(i)) for i, a in enumerate(arms)
        ),
        nuisance={},
        steps=(Step(1, tuple(ablation.seed_list)),),
        metric=ablation.metric,
        mode=ablation.mode,
        sampler=SamplerConfig("random", ablation.sampler.seed),
        pruner=PrunerConfig("none"),
        resources=ablation.resources,
        columns=("arm", "phase", *ablation.nuisance),
        record=ablation_record(ablation, profile, source),
        factors=("arm",),
        baseline=0,
    )


def ablation_record(ablation: AblationStudy, profile: str, source: str) -> dict[str, Any]:
    """``study.yaml`` of an ablation run (the same in both phases: the report pools them)."""
    arms = ablation.arms()
    params: dict[str, Any] = {"arm": {"role": "scientific", "type": "grid", "values": [a.name for a in arms]}}
    for name, item in ablation.nuisance.items():
        params[name] = {"role": "nuisance", **item.record(), "key": item.key or name}
    return {
        "name": ablation.name,
        "question": ablation.question,
        "kind": "ablation",
        "profile": profile,
        "source": source,
        "metric": ablation.metric,
        "mode": ablation.mode,
        "margin": ablation.margin,
        "alpha": ablation.alpha,
        "power": ablation.power,
        "sequential": to_dict(ablation.sequential) if ablation.sequential else None,
        "max_failures": ablation.max_failures,
        "design": ablation.design_name,
        "seeds": ablation.seed_list,
        "tune_seed": ablation.tune_seed,
        "num_samples": ablation.num_samples,
        "sampler": to_dict(ablation.sampler),
        "pruner": to_dict(ablation.pruner),
        "resources": to_dict(ablation.resources),
        "params": params,
        "baseline_arm": BASELINE_ARM,
        "arms": {a.name: {"levels": dict(a.levels), "set": dict(a.overrides)} for a in arms},
        "components": {
            name: {"baseline": c.baseline, "alternatives": c.alternatives}
            for name, c in ablation.components.items()
        },
        "resolved_recipe": load_recipe(ablation.trial_recipe(arms[0], {}, 0)).to_dict(),
    }
