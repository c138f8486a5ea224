"""Run a study: run folders, resume checks, and the one run loop every kind of study goes through.

:func:`run_study` executes a :class:`~tinyab.study.plan.StudyPlan` in a run folder on a Ray session it
is given (it never opens one): it writes or reopens the records, reconciles Optuna with them, runs
what is left through the Tune backend and prints the summary. :func:`run_search` opens one Ray session
for a search study; :func:`run_ablation` opens one for both phases of an ablation (tune, then re-run
each arm's best on the shared seeds), each phase a :func:`run_study` call with its own plan.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tinyab.errors import UserError
from tinyab.records import RecordsWriter, TrialRecord, write_yaml
from tinyab.records.lock import refuse_if_held, run_lock
from tinyab.records.reader import read_study
from tinyab.study.arms import BASELINE_ARM
from tinyab.study.driver import Driver, Monitor
from tinyab.study.environment import environment
from tinyab.study.growth import SeedGrowth
from tinyab.study.plan import Step, StudyPlan, rerun_plan, search_plan, tune_plan
from tinyab.study.progress import Progress, plan_lines, summary_table
from tinyab.study.ray_runtime import RayInfo, RayOptions, ray_session
from tinyab.study.spec import AblationStudy, SearchStudy

Printer = Callable[[str], None]


@dataclass(frozen=True)
class RunOptions:
    """How to run a study: the same for every phase and kind.

    ``train_fn`` defaults to :func:`tinyab.train.engine.train` (same signature); tests inject training
    functions with fixed learning curves. ``data`` is passed to it as ``data=``.
    """

    profile: str
    source: str
    resume: bool = False
    data: str | None = None
    budget_seconds: float | None = None
    mlflow: str | None = None  # an MLflow tracking URI: one MLflow run per trial
    ray: RayOptions = field(default_factory=RayOptions)
    train_fn: Callable[..., Any] | None = None
    out: Printer = print

    def __post_init__(self) -> None:
        if self.data is not None:  # workers have other working directories
            object.__setattr__(self, "data", str(Path(self.data).expanduser().resolve()))


@dataclass
class StudyOutcome:
    """What a run left: its folder, every recorded trial (all sessions) and whether it finished."""

    run_dir: Path
    records: list[TrialRecord]
    complete: bool


@dataclass
class AblationOutcome:
    """An ablation run: its folder and whether both phases finished."""

    run_dir: Path
    complete: bool


# Run folders


def new_run_dir(results: Path, name: str, profile: str) -> Path:
    """``results/<study>/<profile>-<date>-<time>`` (with a suffix if that exists)."""
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    run_dir = results / name / f"{profile}-{stamp}"
    suffix = 1
    while run_dir.exists():
        suffix += 1
        run_dir = results / name / f"{profile}-{stamp}-{suffix}"
    return run_dir


def find_run_dir(results: Path, name: str, profile: str, run: str | None, noun: str = "study") -> Path:
    """The run to resume: ``run`` if given, else the newest run of this study and profile."""
    folder = results / name
    if run:
        if not (folder / run).is_dir():
            raise UserError(f"--run: no run '{run}' of {noun} {name} in {folder}")
        return folder / run
    runs = sorted(p for p in folder.glob(f"{profile}-*") if p.is_dir()) if folder.is_dir() else []
    if not runs:
        raise UserError(f"--resume: no run of {noun} {name} (profile {profile}) in {folder} to resume")
    return runs[-1]


def pick_run_dir(results: Path, name: str, profile: str, run: str | None, resume: bool, noun: str) -> Path:
    """The run folder of a new run (``run`` or a fresh stamp) or of the run to resume."""
    if resume:
        return find_run_dir(results, name, profile, run, noun)
    run_dir = results / name / run if run else new_run_dir(results, name, profile)
    if run_dir.exists():
        raise UserError(f"--run: {run_dir} already exists; pass --resume to continue it")
    return run_dir


GROWABLE = ("seeds", "grown_seeds")  # study.yaml fields a resume may extend


def _same(a: Any, b: Any) -> bool:
    return json.dumps(a, sort_keys=True, default=str) == json.dumps(b, sort_keys=True, default=str)


def resumed_plan(run_dir: Path, plan: StudyPlan) -> StudyPlan:
    """The plan of the run to resume: the stored seeds (and the batches added since), grown by any
    seeds the study asks for now; any other difference from the stored study is refused.

    Added seeds get new trial ids after the existing ones (nothing is re-run); ``study.yaml`` records
    them as a batch in ``grown_seeds`` so that a later resume rebuilds the same ids.
    """
    path = run_dir / "study.yaml"
    stored = read_study(run_dir)
    for key in sorted(set(stored) | set(plan.record)):
        if key != "source" and key not in GROWABLE and not _same(stored.get(key), plan.record.get(key)):
            raise UserError(
                f"{path}: field '{key}' differs from the study given now; resume with the same study "
                "file, profile and --set values (only more seeds may be added)"
            )
    batches = [list(stored["seeds"]), *stored.get("grown_seeds", [])]
    have = [seed for batch in batches for seed in batch]
    extra = [seed for seed in plan.seeds if seed not in have]
    if extra and plan.record.get("sequential"):
        raise UserError(f"{path}: a sequential run adds its own seeds; resume it without changing seeds")
    if extra:
        batches.append(extra)
        write_yaml(path, {**stored, "grown_seeds": batches[1:]})
    grown = dataclasses.replace(plan, steps=(Step(plan.configs, tuple(batches[0])),), record=stored)
    for batch in batches[1:]:
        grown = grown.grow(seeds=batch)
    return grown


def _check_fits(plan: StudyPlan, info: RayInfo) -> None:
    """A trial that asks for more than the cluster has would wait forever: refuse it before starting."""
    res = plan.resources
    for name, asked, key in (("cpus", res.cpus, "CPU"), ("gpus", res.gpus, "GPU")):
        have = info.resources.get(key, 0)
        if asked > have:
            raise UserError(
                f"{plan.name}: resources.{name}: a trial asks for {asked:g} {key}, the Ray cluster has "
                f"{have:g} (pick another --profile or --set resources.{name}=...)"
            )


def announce(info: RayInfo, out: Printer) -> None:
    cpus, gpus = info.resources.get("CPU", 0), info.resources.get("GPU", 0)
    where = "local Ray" if info.local else f"Ray at {info.address}"
    out(f"ray: {where}, {cpus:g} CPU, {gpus:g} GPU")
    for note in info.notes:
        out(note)


# The run loop


def seed_growth(plan: StudyPlan, options: RunOptions) -> SeedGrowth | None:
    """The sequential-seeds policy of a plan whose study asks for one (never for a tuning phase)."""
    settings = plan.record.get("sequential")
    if not settings or plan.nuisance:
        return None
    alpha, margin = plan.record.get("alpha", 0.05), plan.record.get("margin")
    return SeedGrowth(plan, settings["step"], settings["max_seeds"], alpha, margin, options.budget_seconds)


def replay_growth(plan: StudyPlan, growth: SeedGrowth, records: list[TrialRecord]) -> StudyPlan:
    """Grow ``plan`` as the batches already recorded decided (every trial of a batch recorded)."""
    recorded = {r.trial_id for r in records}
    while all(s.trial_id in recorded for s in plan.slots()):
        grown = growth.grow(plan, growth.look(plan, records, plan.slots()))
        if grown is None:
            return plan
        plan = grown
    return plan


def live_views(plan: StudyPlan, run_dir: Path, options: RunOptions) -> list[Monitor]:
    """TensorBoard event files always; MLflow runs when ``--mlflow URI`` is given."""
    from tinyab.study.monitors import MlflowMonitor, TensorBoardMonitor

    views: list[Monitor] = [TensorBoardMonitor(run_dir)]
    if options.mlflow:
        name = f"{run_dir.parent.name}/{run_dir.name}"
        views.append(MlflowMonitor(options.mlflow, plan.name, name, plan.record))
    return views


def most_trials(plan: StudyPlan) -> int:
    """An upper bound on the trials the plan can reach (it can grow up to ``max_seeds`` seeds)."""
    settings = plan.record.get("sequential") or {}
    seeds = max(settings.get("max_seeds", 0), len(plan.seeds))
    return len(plan.arms) * plan.configs * seeds


def run_study(
    plan: StudyPlan, run_dir: Path, session: RayInfo, options: RunOptions, resume: bool | None = None
) -> StudyOutcome:
    """Run (or resume) ``plan`` in ``run_dir`` on the connected Ray ``session``
    (``resume`` defaults to ``options.resume``). The run folder is locked for the whole run."""
    resume = options.resume if resume is None else resume
    _check_fits(plan, session)
    env = environment({"address": session.address, "resources": session.resources})
    records = RecordsWriter(run_dir, list(plan.columns), plan.metric)
    if not resume:
        records.create(plan.record, env)
    with run_lock(run_dir, options.out):
        finished: dict[str, TrialRecord] = {}
        if resume:
            plan = resumed_plan(run_dir, plan)
            finished = records.reopen()
            records.write_environment(env)
        try:
            return _execute(plan, run_dir, records, finished, options)
        except KeyboardInterrupt:  # Tune handles Ctrl-C only while trials run; before, it lands here
            options.out(f"interrupted; continue with --resume (records: {run_dir})")
            raise


def _execute(
    plan: StudyPlan,
    run_dir: Path,
    records: RecordsWriter,
    finished: dict[str, TrialRecord],
    options: RunOptions,
) -> StudyOutcome:
    """The run loop: replay growth, print the plan, run what is left on Tune, summarise."""
    from tinyab.study.budget import images_per_epoch
    from tinyab.study.optuna_bridge import OptunaBridge
    from tinyab.study.tune_backend import fit

    out, data = options.out, options.data
    growth = seed_growth(plan, options)
    if growth is not None:  # replay the batches already run: the same decisions, the same new seeds
        plan = replay_growth(plan, growth, list(finished.values()))
    slots = plan.slots()
    todo = [s for s in slots if s.trial_id not in finished]
    for line in plan_lines(plan, options.profile, slots, todo, images_per_epoch(plan, data), run_dir):
        out(line)
    bridge = OptunaBridge(plan, run_dir / "optuna.db")
    bridge.reconcile(finished)
    progress = Progress(len(slots), plan.metric, plan.mode)
    for record in finished.values():
        progress.seen(record)
    monitors = live_views(plan, run_dir, options)
    driver = Driver(plan, list(finished.values()), bridge, records, progress, out, growth, monitors)
    try:
        if todo:
            fit(driver, run_dir, most_trials(plan) - len(finished), options.train_fn, data)
    finally:
        records.close()
        for monitor in monitors:
            monitor.close()
    plan, slots = driver.plan, driver.plan.slots()
    done = [*finished.values(), *driver.recorded]
    complete = len(done) == len(slots)
    for line in ["", *summary_table(done, plan, slots)]:
        out(line)
    arm_of = {s.trial_id: s.arm for s in slots}
    for record in done:
        if record.status in ("failed", "diverged"):
            why = record.error or "diverged"
            arm = plan.arms[arm_of[record.trial_id]].name
            out(f"{record.status}: {record.trial_id} ({arm}, seed {record.seed}): {why}")
    if not complete:
        out(f"incomplete: {len(slots) - len(done)} trial(s) not run; continue with --resume")
    out(f"records: {run_dir}")
    for line in progress.finished(run_dir):
        out(line)
    return StudyOutcome(run_dir, done, complete)


@contextmanager
def connected(options: RunOptions) -> Iterator[RayInfo]:
    """One Ray session for a whole run (announced once)."""
    ray = options.ray
    with ray_session(
        ray.address, dashboard=ray.dashboard, dashboard_host=ray.dashboard_host, verbose=ray.verbose
    ) as session:
        announce(session, options.out)
        yield session


def run_search(study: SearchStudy, run_dir: Path, options: RunOptions) -> StudyOutcome:
    """Run (or resume) a search study in ``run_dir`` on one Ray session."""
    if options.resume:
        refuse_if_held(run_dir)  # before Ray starts; the lock itself is taken when the run starts
    with connected(options) as session:
        return run_study(search_plan(study, options.profile, options.source), run_dir, session, options)


def best_configs(plan: StudyPlan, records: list[TrialRecord]) -> dict[str, dict[str, Any]]:
    """Each arm's best nuisance values among its completed tuning trials (first trial wins ties)."""
    sign = 1.0 if plan.mode == "max" else -1.0
    best: dict[str, tuple[float, dict[str, Any]]] = {}
    for record in records:
        if record.status != "completed" or record.objective is None:
            continue
        arm = str(record.values["arm"])
        score = sign * record.objective
        if arm not in best or score > best[arm][0]:
            best[arm] = (score, {name: record.values[name] for name in plan.nuisance})
    return {arm: values for arm, (_, values) in best.items()}


def _typed(plan: StudyPlan, values: dict[str, Any]) -> dict[str, Any]:
    """Nuisance values read back from ``trials.csv`` (text) as the type Optuna sampled."""
    typed = {}
    for name, value in values.items():
        param = plan.nuisance[name]
        if param.type == "int":
            typed[name] = int(float(value))
        elif param.type in ("uniform", "loguniform"):
            typed[name] = float(value)
        else:
            typed[name] = next((v for v in param.values or [] if str(v) == str(value)), value)
    return typed


TUNE, RERUN = "tune", "rerun"  # an ablation's phase folders inside its run folder
PHASES = (TUNE, RERUN)


def run_ablation(ablation: AblationStudy, run_dir: Path, options: RunOptions) -> AblationOutcome:
    """Tune every arm (when there is a nuisance section), then re-run each arm's best on the shared seeds.

    Both phases run on one Ray session, each in its own folder (``<run>/tune``, ``<run>/rerun``) with
    the same ``study.yaml``; with ``resume`` each phase continues where it stopped.
    """
    out, profile, source = options.out, options.profile, options.source
    arms = [a.name for a in ablation.arms()]
    for name in PHASES if options.resume else ():
        refuse_if_held(run_dir / name)  # before Ray starts, as for a search
    with connected(options) as session:

        def phase(plan: StudyPlan, name: str) -> StudyOutcome:
            out(f"--- {name} phase ---")
            folder = run_dir / name
            return run_study(
                plan, folder, session, options, options.resume and (folder / "study.yaml").is_file()
            )

        if ablation.nuisance:
            plan = tune_plan(ablation, profile, source)
            tune = phase(plan, TUNE)
            if not tune.complete:
                out(f"tuning incomplete; continue with --resume ({run_dir})")
                return AblationOutcome(run_dir, False)
            best = {arm: _typed(plan, values) for arm, values in best_configs(plan, tune.records).items()}
        else:
            best = {arm: {} for arm in arms}
        untuned = [arm for arm in arms if arm not in best]
        if untuned:
            out(f"no completed tuning trial, left out of the re-runs: {', '.join(untuned)}")
        if BASELINE_ARM not in best:
            raise UserError(
                f"{run_dir / 'tune'}: the baseline arm has no completed tuning trial; nothing to compare"
            )
        for arm, values in best.items():
            if values:
                shown = ", ".join(
                    f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in values.items()
                )
                out(f"best of {arm}: {shown}")
        rerun = phase(rerun_plan(ablation, profile, source, best), RERUN)
    complete = rerun.complete and not untuned
    out(f"ablation records: {run_dir} (report: tinyab report {run_dir})")
    return AblationOutcome(run_dir, complete)
