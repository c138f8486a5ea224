"""Run an ablation on the search runner: a tuning phase, then the re-runs that enter the comparison.

There is one engine: each phase is handed to :func:`tinyab.study.runner.run_search` as a search study
(:class:`AblationPhase`) whose arms are the ablation's arms. The tuning phase gives every arm the same
number of Optuna trials (one Optuna study per arm, in ``tune/optuna.db``) on the tuning seed; the
re-run phase trains each arm's best configuration on the fresh seeds shared by all arms. Records:

    results/<study>/<profile>-<date>-<time>/tune/    trials.csv with arm, phase=tune, the nuisance values
    results/<study>/<profile>-<date>-<time>/rerun/   trials.csv with arm, phase=rerun (the comparison)

Both phases write the same ``study.yaml`` (``kind: ablation``), so ``tinyab report`` pools them as one
study and compares only the ``phase == rerun`` rows.
"""

from __future__ import annotations

import csv
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tinyab.errors import UserError
from tinyab.schema import to_dict
from tinyab.study.ablation import Ablation
from tinyab.study.ablation_design import BASELINE_ARM, Phase, best_nuisance
from tinyab.study.spec import ParamSpec, PrunerConfig, ResourcesConfig, SamplerConfig, StudySpec

Printer = Callable[[str], None]


class AblationPhase(StudySpec):
    """One phase of an ablation as the search study the runner executes.

    Its scientific parameters are ``arm`` and ``phase`` (so the records get those columns); in the
    tuning phase the ablation's nuisance parameters are sampled per arm by Optuna, in the re-run phase
    each arm's arm dict carries its best values instead.
    """

    def __init__(
        self, ablation: Ablation, phase: Phase, best: dict[str, dict[str, Any]] | None = None
    ) -> None:
        tuning = phase == "tune"
        self.ablation, self.phase, self.best = ablation, phase, best or {}
        self.arm_names = [a.name for a in ablation.arms if tuning or a.name in self.best]
        params = {
            "arm": ParamSpec("scientific", "grid", list(self.arm_names)),
            "phase": ParamSpec("scientific", "grid", [phase]),
        }
        for name, item in ablation.nuisance.items():
            chosen = list(dict.fromkeys(self.best[arm][name] for arm in self.arm_names)) if not tuning else []
            params[name] = item.param() if tuning else ParamSpec("scientific", "choice", chosen)
        settings = ablation.settings
        super().__init__(
            name=ablation.name,
            question=ablation.question,
            recipe=ablation.base,
            params=params,
            metric="val_top1",  # the runner's objective is the best epoch value: best_val_top1
            mode=ablation.mode,
            num_samples=ablation.trials_per_arm if tuning else 1,
            seeds=[ablation.tune_seed] if tuning else list(ablation.seeds),
            sampler=SamplerConfig(settings.sampler, seed=0),
            pruner=PrunerConfig("none"),
            resources=ResourcesConfig(
                settings.cpus_per_trial, settings.gpus_per_trial, settings.max_concurrent
            ),
        )

    def arms(self) -> list[dict[str, Any]]:
        return [{"arm": name, "phase": self.phase, **self.best.get(name, {})} for name in self.arm_names]

    def trial_recipe(self, values: dict[str, Any], seed: int) -> dict[str, Any]:
        arm = self.ablation.arm(values["arm"])
        nuisance = {name: values[name] for name in self.ablation.nuisance if name in values}
        return self.ablation.trial_mapping(arm, seed, nuisance)

    def resolved(self, profile: str, source: str) -> dict[str, Any]:
        return study_record(self.ablation)


def study_record(ablation: Ablation) -> dict[str, Any]:
    """``study.yaml`` of an ablation run (the same for both phases)."""
    from tinyab.config import load_recipe

    params: dict[str, Any] = {
        "arm": {"role": "scientific", "type": "grid", "values": [a.name for a in ablation.arms]}
    }
    for name, item in ablation.nuisance.items():
        spec = {k: v for k, v in to_dict(item.param()).items() if v is not None}
        params[name] = {**spec, "key": item.key or name, "key_when": dict(item.key_when)}
    return {
        "name": ablation.name,
        "question": ablation.question,
        "kind": "ablation",
        "profile": ablation.profile,
        "source": ablation.source,
        "metric": ablation.metric,
        "mode": ablation.mode,
        "design": ablation.design,
        "seeds": list(ablation.seeds),
        "tune_seed": ablation.tune_seed,
        "trials_per_arm": ablation.trials_per_arm,
        "params": params,
        "baseline_arm": BASELINE_ARM,
        "arms": {a.name: {"levels": dict(a.levels), "set": dict(a.overrides)} for a in ablation.arms},
        "components": {
            name: {"baseline": c.baseline, "alternatives": c.alternatives}
            for name, c in ablation.components.items()
        },
        "resolved_recipe": load_recipe(ablation.trial_mapping(ablation.arms[0], 0)).to_dict(),
    }


@dataclass
class AblationOutcome:
    """The run folder, the rows of both phases, the best nuisance values per arm, and completeness."""

    run_dir: Path
    tune: list[dict[str, Any]]
    rerun: list[dict[str, Any]]
    best: dict[str, dict[str, Any]]
    complete: bool


def _typed(value: str, item: Any) -> Any:
    """A nuisance value read back from ``trials.csv`` as the type Optuna sampled."""
    if item.type == "int":
        return int(float(value))
    if item.type in ("uniform", "loguniform"):
        return float(value)
    return next((v for v in item.values or [] if str(v) == value), value)


def read_phase(phase_dir: Path) -> list[dict[str, str]]:
    """The rows of a phase's ``trials.csv`` (none when the phase has not started)."""
    path = phase_dir / "trials.csv"
    if not path.is_file():
        return []
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def best_from_records(ablation: Ablation, rows: list[dict[str, str]]) -> dict[str, dict[str, Any]]:
    """Each arm's best nuisance values among its completed tuning trials, typed as sampled."""
    scored = [{**row, ablation.metric: float(row[ablation.metric] or "nan")} for row in rows]
    best = best_nuisance(scored, list(ablation.nuisance), ablation.metric, ablation.mode)
    return {
        arm: {name: _typed(str(v), ablation.nuisance[name]) for name, v in values.items()}
        for arm, values in best.items()
    }


def find_ablation_run(results: Path, ablation: Ablation) -> Path:
    """The newest run of this ablation and profile, for ``--resume``."""
    folder = results / ablation.name
    runs = sorted(p for p in folder.glob(f"{ablation.profile}-*") if p.is_dir()) if folder.is_dir() else []
    if not runs:
        raise UserError(
            f"--resume: no run of ablation {ablation.name} (profile {ablation.profile}) in {folder} to resume"
        )
    return runs[-1]


def new_ablation_run(results: Path, ablation: Ablation) -> Path:
    from tinyab.study.runner import new_run_dir

    return new_run_dir(results, AblationPhase(ablation, "tune"), ablation.profile)


def run_ablation(
    ablation: Ablation,
    *,
    run_dir: Path,
    data: str | Path | None = None,
    address: str | None = None,
    dashboard: bool = True,
    resume: bool = False,
    train_fn: Callable[..., Any] | None = None,
    out: Printer = print,
) -> AblationOutcome:
    """Tune every arm (when there is a nuisance section), then re-run each arm's best on the shared seeds.

    ``run_dir`` is ``results/<study>/<run>``; with ``resume`` each phase continues where it stopped.
    One Ray session serves both phases.
    """
    from tinyab.study.ray_runtime import ray_session
    from tinyab.study.runner import run_search

    results, run = run_dir.parent.parent, run_dir.name

    def phase(study: AblationPhase) -> list[dict[str, Any]]:
        out(f"--- {study.phase} phase ---")
        phase_dir = run_dir / study.phase
        outcome = run_search(
            study,
            profile=ablation.profile,
            source=ablation.source,
            results=results,
            data=data,
            address=address,
            dashboard=dashboard,
            resume=resume and (phase_dir / "study.yaml").is_file(),
            run=f"{run}/{study.phase}",
            train_fn=train_fn,
            out=out,
        )
        return outcome.trials if outcome.complete else []

    with ray_session(address, dashboard=dashboard) as ray_info:
        cpus, gpus = ray_info.resources.get("CPU", 0), ray_info.resources.get("GPU", 0)
        out(f"ray: {ray_info.address}, {cpus:g} CPU, {gpus:g} GPU (both phases)")
        for note in ray_info.notes:
            out(note)
        tune_rows: list[dict[str, Any]] = []
        if ablation.trials_per_arm:
            tune_rows = phase(AblationPhase(ablation, "tune"))
            if not tune_rows:
                out(f"tuning incomplete; continue with --resume ({run_dir})")
                return AblationOutcome(run_dir, [], [], {}, False)
            best = best_from_records(ablation, read_phase(run_dir / "tune"))
        else:
            best = {arm.name: {} for arm in ablation.arms}
        untuned = [a.name for a in ablation.arms if a.name not in best]
        if untuned:
            out(f"no completed tuning trial, left out of the re-runs: {', '.join(untuned)}")
        if BASELINE_ARM not in best:
            raise UserError(
                f"{run_dir / 'tune'}: the baseline arm has no completed tuning trial; nothing to compare"
            )
        for arm, values in best.items():
            if values:
                out(
                    f"best of {arm}: "
                    + ", ".join(
                        f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in values.items()
                    )
                )
        rerun_rows = phase(AblationPhase(ablation, "rerun", best))
    complete = bool(rerun_rows) and not untuned
    out(f"ablation records: {run_dir} (report: tinyab report {run_dir})")
    return AblationOutcome(run_dir, tune_rows, rerun_rows, best, complete)
