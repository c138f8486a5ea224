"""The entry points behind ``tinyab search`` and ``tinyab ablate``: find, load, plan, run.

Both commands take the same options (:class:`RunRequest`) and go the same way: locate the file in the
catalog, pick the profile, load and validate the study, choose the run folder (new or resumed), print
the plan, and either stop there (``dry_run``, nothing written) or run it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tinyab.errors import UserError
from tinyab.io import check_output_dir
from tinyab.study import catalog
from tinyab.study.budget import ablation_budget, images_per_epoch, seed_plan
from tinyab.study.environment import visible_gpus
from tinyab.study.plan import search_plan, tune_plan
from tinyab.study.progress import plan_lines
from tinyab.study.ray_runtime import RayOptions
from tinyab.study.run import RunOptions, pick_run_dir, run_ablation, run_search
from tinyab.study.spec import AblationStudy, SearchStudy

Printer = Callable[[str], None]


@dataclass
class RunRequest:
    """What the user asked for on the command line (the same for searches and ablations)."""

    name: str
    profile: str = "auto"
    overrides: dict[str, Any] = field(default_factory=dict)
    data: str | None = None
    results: Path = Path("results")
    run: str | None = None
    resume: bool = False
    dry_run: bool = False
    address: str | None = None
    dashboard: bool = True
    dashboard_host: str = "127.0.0.1"
    budget_seconds: float | None = None
    verbose: bool = False
    mlflow: str | None = None


def choose_profile(requested: str, profiles: list[str]) -> tuple[str | None, str]:
    """The profile to run and a line saying why; ``auto`` takes ``full`` with a GPU, else ``smoke``."""
    if requested != "auto":
        return requested, f"profile: {requested}"
    if not profiles:
        return None, "profile: the study defines none; running it as written"
    gpu = bool(visible_gpus())
    chosen = "full" if gpu else "smoke"
    reason = "a GPU is visible" if gpu else "no GPU is visible"
    return chosen, f"profile: auto -> {chosen} ({reason}; choose with --profile smoke|full)"


def _prepare(kind: catalog.Kind, request: RunRequest, out: Printer) -> tuple[Any, str, str, Path, str | None]:
    """Load the study and pick its run folder and dataset: (study, profile, source, run_dir, data)."""
    check_output_dir(request.results, "--results")
    path = catalog.locate(kind, request.name)
    profile, why = choose_profile(request.profile, catalog.profiles_of(path))
    study = catalog.load(kind, path, profile, request.overrides)
    if request.run and (Path(request.run).is_absolute() or ".." in Path(request.run).parts):
        raise UserError(f"--run {request.run}: expected a folder name inside --results")
    noun = "study" if kind == "search" else "ablation"
    run_dir = pick_run_dir(
        request.results, study.name, profile or "default", request.run, request.resume, noun
    )
    data = request.data
    if data is None and not request.dry_run:
        from tinyab.data import ensure_dataset

        data = str(ensure_dataset(None))
    out(why)
    return study, profile or "default", str(path), run_dir, data


def _options(request: RunRequest, profile: str, source: str, data: str | None, out: Printer) -> RunOptions:
    ray = RayOptions(request.address, request.dashboard, request.dashboard_host, request.verbose)
    return RunOptions(
        profile, source, request.resume, data, request.budget_seconds, request.mlflow, ray, out=out
    )


def search(request: RunRequest, out: Printer = print) -> bool:
    """``tinyab search``: run (or resume, or only plan) a search study; True when it is complete."""
    study, profile, source, run_dir, data = _prepare("search", request, out)
    assert isinstance(study, SearchStudy)
    plan = search_plan(study, profile, source)
    per_epoch = images_per_epoch(plan, data)  # refuses, before Ray starts, a batch larger than the data
    if request.dry_run:
        slots = plan.slots()
        for line in plan_lines(plan, profile, slots, slots, per_epoch, run_dir):
            out(line)
        for line in seed_plan(plan, study, request.results / study.name, None):
            out(line)
        return True
    return run_search(study, run_dir, _options(request, profile, source, data, out)).complete


def ablate(request: RunRequest, out: Printer = print) -> bool:
    """``tinyab ablate``: run (or resume, or only plan) an ablation; True when it is complete."""
    study, profile, source, run_dir, data = _prepare("ablation", request, out)
    assert isinstance(study, AblationStudy)
    budget = ablation_budget(
        study, tune_plan(study, profile, source), profile, source, data, request.results / study.name, run_dir
    )
    for line in budget.lines():
        out(line)
    out(f"  results: {run_dir}" + (" (resuming)" if request.resume else ""))
    if request.dry_run:
        return True
    return run_ablation(study, run_dir, _options(request, profile, source, data, out)).complete
