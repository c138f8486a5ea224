"""Learning-rate schedules as pure functions of the global iteration, plus a driver for an optimiser.

Every schedule is ``learning_rate(cfg, peak_lr, step, steps_per_epoch, total_steps)`` with ``step`` the
0-based iteration about to run. Being a pure function of ``step`` makes the schedule trivially
resumable (the only state is the step count) and testable against independent references.
"""

from __future__ import annotations

import math

import torch

from tinyab.config import ScheduleConfig

ONE_CYCLE_DIV_FACTOR = 25.0  # start lr = peak / 25, as torch.optim.lr_scheduler.OneCycleLR
ONE_CYCLE_FINAL_DIV_FACTOR = 1e4  # final lr = start / 1e4


def _whole_iterations(x: float) -> int:
    """Round half up (Python's ``round`` is half-to-even: 2.5 -> 2 would surprise a user)."""
    return math.floor(x + 0.5)


def clr_step_iterations(cfg: ScheduleConfig, steps_per_epoch: int) -> int:
    """The CLR half-cycle ``s`` in iterations (fractional epochs rounded half up, at least 1)."""
    size = cfg.step_size * steps_per_epoch if cfg.step_unit == "epochs" else cfg.step_size
    return max(1, _whole_iterations(size))


def cyclical_lr(cfg: ScheduleConfig, step: int, steps_per_epoch: int) -> float:
    """Smith (2017), "Cyclical Learning Rates for Training Neural Networks", as in Keras CLR::

        cycle = floor(1 + it / (2 s));  x = |it / s - 2 cycle + 1|
        lr = base + (max - base) * max(0, 1 - x) * f

    with f = 1 (triangular), 1 / 2^(cycle - 1) (triangular2) or gamma^it (exp_range).
    """
    s = clr_step_iterations(cfg, steps_per_epoch)
    cycle = math.floor(1 + step / (2 * s))
    x = abs(step / s - 2 * cycle + 1)
    if cfg.mode == "triangular":
        scale = 1.0
    elif cfg.mode == "triangular2":
        scale = 1.0 / 2 ** (cycle - 1)
    else:
        scale = cfg.gamma**step
    return cfg.base_lr + (cfg.max_lr - cfg.base_lr) * max(0.0, 1.0 - x) * scale


def _cos_anneal(start: float, end: float, pct: float) -> float:
    """``start`` at pct = 0 to ``end`` at pct = 1 along half a cosine."""
    return end + (start - end) / 2.0 * (math.cos(math.pi * pct) + 1.0)


def one_cycle_lr(peak_lr: float, pct_start: float, step: int, total_steps: int) -> float:
    """torch's OneCycleLR (two phases, cosine), closed form; lr only, momentum is not cycled.

    Phase 1 rises from peak/25 to peak until iteration ``pct_start * T - 1``; phase 2 falls to
    peak/25/1e4 at iteration ``T - 1``. Past ``T - 1`` the final lr holds (torch would raise).
    """
    initial = peak_lr / ONE_CYCLE_DIV_FACTOR
    final = initial / ONE_CYCLE_FINAL_DIV_FACTOR
    step = min(step, total_steps - 1)
    rise_end = pct_start * total_steps - 1
    fall_end = total_steps - 1
    if step <= rise_end:
        return _cos_anneal(initial, peak_lr, step / rise_end if rise_end > 0 else 1.0)
    span = fall_end - rise_end
    return _cos_anneal(peak_lr, final, (step - rise_end) / span if span > 0 else 1.0)


def warmup_steps(cfg: ScheduleConfig, steps_per_epoch: int) -> int:
    """Iterations of linear warm-up: ``warmup_epochs`` rounded half up to whole iterations."""
    return _whole_iterations(cfg.warmup_epochs * steps_per_epoch)


def learning_rate(
    cfg: ScheduleConfig, peak_lr: float, step: int, steps_per_epoch: int, total_steps: int
) -> float:
    """The learning rate for 0-based iteration ``step`` of a run of ``total_steps`` iterations.

    - ``clr``: :func:`cyclical_lr` between ``cfg.base_lr`` and ``cfg.max_lr`` (``peak_lr`` unused).
    - ``one_cycle``: :func:`one_cycle_lr` with maximum ``peak_lr``.
    - ``cosine``: warm-up ``peak * (step + 1) / W`` for ``step < W``, then
      ``peak * (1 + cos(pi * (step - W) / (T - W))) / 2`` (reaching 0 at ``T``).
    - ``step``: ``peak * step_gamma ** (milestones <= epoch)``, epoch = ``step // steps_per_epoch``.
    - ``constant``: ``peak``.
    ``step`` and ``constant`` are multiplied by the same warm-up ramp; clr and one_cycle ignore
    ``warmup_epochs`` (both already start low).
    """
    if step < 0 or steps_per_epoch < 1 or total_steps < 1:
        raise ValueError(
            f"need step >= 0, steps_per_epoch >= 1, total_steps >= 1; got {step}, "
            f"{steps_per_epoch}, {total_steps}"
        )
    if cfg.name == "clr":
        return cyclical_lr(cfg, step, steps_per_epoch)
    if cfg.name == "one_cycle":
        return one_cycle_lr(peak_lr, cfg.pct_start, step, total_steps)
    warm = min(warmup_steps(cfg, steps_per_epoch), total_steps)
    ramp = (step + 1) / warm if step < warm else 1.0
    if cfg.name == "cosine":
        if step < warm:
            return peak_lr * ramp
        progress = min(1.0, (step - warm) / max(1, total_steps - warm))
        return peak_lr * 0.5 * (1.0 + math.cos(math.pi * progress))
    if cfg.name == "step":
        passed = sum(1 for m in cfg.milestones if m <= step // steps_per_epoch)
        return peak_lr * cfg.step_gamma**passed * ramp
    return peak_lr * ramp


def length_dependence(cfg: ScheduleConfig, epochs: int, other: int) -> str | None:
    """Why runs of ``epochs`` and of ``other`` epochs take different learning rates at some iteration
    both run, or None: what a resumed run may change its ``epochs`` by. ``cosine`` and ``one_cycle``
    are scaled to the total; the warm-up of ``constant`` and ``step`` is cut to the run's length; a
    ``clr`` cycle and ``step``'s milestones are counted from the start (in absolute epochs)."""
    if cfg.name in ("cosine", "one_cycle"):
        return f"the {cfg.name} schedule is scaled to the total number of epochs"
    if cfg.name in ("constant", "step") and cfg.warmup_epochs > min(epochs, other):
        warmup = f"the {cfg.warmup_epochs:g}-epoch warm-up"
        return f"{warmup} of the {cfg.name} schedule is cut to the run's length"
    return None


class LRSchedule:
    """Sets ``lr`` of every param group of ``optimizer`` from :func:`learning_rate` each iteration.

    The lr for iteration 0 is set on construction; call :meth:`step` after each ``optimizer.step()``.
    The only state is ``step_count`` (iterations done); :meth:`set_step` restores it on resume.
    """

    def __init__(
        self,
        optimizer: torch.optim.Optimizer,
        cfg: ScheduleConfig,
        peak_lr: float,
        steps_per_epoch: int,
        total_steps: int,
    ) -> None:
        self.optimizer = optimizer
        self.cfg = cfg
        self.peak_lr = peak_lr
        self.steps_per_epoch = steps_per_epoch
        self.total_steps = total_steps
        self.set_step(0)

    @property
    def lr(self) -> float:
        """The lr the next optimiser step uses."""
        return learning_rate(self.cfg, self.peak_lr, self.step_count, self.steps_per_epoch, self.total_steps)

    def step(self) -> float:
        """Advance one iteration and set the new lr on the optimiser; returns it."""
        return self.set_step(self.step_count + 1)

    def set_step(self, step_count: int) -> float:
        """Jump to iteration ``step_count`` (e.g. when resuming) and set its lr; returns it."""
        self.step_count = step_count
        lr = self.lr
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        return lr
