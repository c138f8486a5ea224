"""LR and resolution schedules against independent references (a triangle-wave CLR, torch's OneCycleLR)."""

from __future__ import annotations

import math
from itertools import pairwise

import pytest
import torch

from tinyab.config import ScheduleConfig
from tinyab.train.resolution import resolution_at
from tinyab.train.schedules import LRSchedule, learning_rate

BASE, TOP, GAMMA = 0.001, 0.1, 0.97


def clr_reference(mode: str, s: int, it: int) -> float:
    """CLR written as a triangle wave: position inside the 2s-long cycle, amplitude per cycle."""
    cycle_index, pos = divmod(it, 2 * s)  # 0-based cycle
    rise = pos / s if pos < s else (2 * s - pos) / s
    amplitude = {"triangular": 1.0, "triangular2": 0.5**cycle_index, "exp_range": GAMMA**it}[mode]
    return BASE + (TOP - BASE) * rise * amplitude


def lrs(cfg: ScheduleConfig, peak: float, steps_per_epoch: int, total: int) -> list[float]:
    return [learning_rate(cfg, peak, i, steps_per_epoch, total) for i in range(total)]


@pytest.mark.parametrize("mode", ["triangular", "triangular2", "exp_range"])
@pytest.mark.parametrize(
    ("unit", "step_size", "steps_per_epoch", "s"),
    [("epochs", 2.0, 7, 14), ("epochs", 1.5, 6, 9), ("epochs", 0.5, 5, 3), ("iterations", 5.0, 11, 5)],
)
def test_clr_matches_triangle_wave_over_two_cycles(mode, unit, step_size, steps_per_epoch, s):
    cfg = ScheduleConfig(
        name="clr", base_lr=BASE, max_lr=TOP, step_size=step_size, step_unit=unit, mode=mode, gamma=GAMMA
    )
    total = 4 * s + 1
    for it in range(total):
        got = learning_rate(cfg, 123.0, it, steps_per_epoch, total)  # peak_lr is not used by CLR
        assert got == pytest.approx(clr_reference(mode, s, it), rel=1e-12, abs=1e-15), it


def test_clr_landmarks():
    cfg = ScheduleConfig(name="clr", base_lr=BASE, max_lr=TOP, step_size=4, step_unit="iterations")
    at = [learning_rate(cfg, 1.0, i, 10, 100) for i in range(17)]
    assert at[0] == pytest.approx(BASE) and at[4] == pytest.approx(TOP) and at[8] == pytest.approx(BASE)
    assert at[2] == pytest.approx((BASE + TOP) / 2) and at[12] == pytest.approx(TOP)
    cfg.mode = "triangular2"
    assert learning_rate(cfg, 1.0, 12, 10, 100) == pytest.approx(BASE + (TOP - BASE) / 2)
    assert learning_rate(cfg, 1.0, 20, 10, 100) == pytest.approx(BASE + (TOP - BASE) / 4)
    cfg.mode, cfg.gamma = "exp_range", 0.9
    assert learning_rate(cfg, 1.0, 4, 10, 100) == pytest.approx(BASE + (TOP - BASE) * 0.9**4)


@pytest.mark.parametrize(("total", "pct"), [(100, 0.3), (37, 0.25), (12, 0.5), (250, 0.1)])
def test_one_cycle_matches_torch_at_every_step(total, pct):
    peak = 0.4
    ours = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    ref_opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    ref = torch.optim.lr_scheduler.OneCycleLR(
        ref_opt, max_lr=peak, total_steps=total, pct_start=pct, anneal_strategy="cos", cycle_momentum=False
    )
    schedule = LRSchedule(ours, ScheduleConfig(name="one_cycle", pct_start=pct), peak, 10, total)
    for i in range(total):
        assert ours.param_groups[0]["lr"] == pytest.approx(ref_opt.param_groups[0]["lr"], rel=1e-12), i
        ours.step(), ref_opt.step()
        schedule.step(), ref.step()
    assert schedule.lr == pytest.approx(peak / 25 / 1e4)  # past the end the final lr holds


def test_cosine_endpoints_and_monotone():
    peak, total = 0.2, 100
    at = lrs(ScheduleConfig(name="cosine"), peak, 10, total)
    assert at[0] == peak
    assert 0 < at[-1] < peak * 1e-3
    assert learning_rate(ScheduleConfig(name="cosine"), peak, total, 10, total) == pytest.approx(0, abs=1e-15)
    assert at[50] == pytest.approx(peak / 2)
    assert all(a > b for a, b in pairwise(at))


def test_cosine_with_warmup():
    peak, spe, total = 0.2, 10, 100
    at = lrs(ScheduleConfig(name="cosine", warmup_epochs=2), peak, spe, total)
    assert (
        at[0] == pytest.approx(peak / 20) and at[19] == pytest.approx(peak) and at[20] == pytest.approx(peak)
    )
    assert all(a < b for a, b in pairwise(at[:20]))
    assert all(a > b for a, b in pairwise(at[20:]))
    assert at[60] == pytest.approx(peak / 2)  # halfway through the 80 cosine iterations


def test_step_drops_exactly_at_milestones():
    peak, spe = 0.1, 10
    at = lrs(ScheduleConfig(name="step", milestones=[3, 6], step_gamma=0.1), peak, spe, 90)
    changes = [i for i in range(1, 90) if at[i] != at[i - 1]]
    assert changes == [30, 60]
    assert (at[29], at[30], at[60], at[89]) == pytest.approx((0.1, 0.01, 0.001, 0.001))


def test_step_and_constant_warmup():
    at = lrs(ScheduleConfig(name="step", milestones=[2], warmup_epochs=0.5), 0.1, 8, 40)
    assert at[:5] == pytest.approx([0.025, 0.05, 0.075, 0.1, 0.1])
    assert at[16] == pytest.approx(0.01)
    assert lrs(ScheduleConfig(name="constant"), 0.3, 5, 20) == [0.3] * 20
    assert lrs(ScheduleConfig(name="constant", warmup_epochs=1), 0.3, 3, 6) == pytest.approx(
        [0.1, 0.2, 0.3, 0.3, 0.3, 0.3]
    )


def test_lr_schedule_sets_every_group_and_resumes():
    params = [torch.nn.Parameter(torch.zeros(2)), torch.nn.Parameter(torch.zeros(2))]
    opt = torch.optim.SGD([{"params": params[:1]}, {"params": params[1:], "weight_decay": 0.0}], lr=9.0)
    cfg = ScheduleConfig(name="cosine", warmup_epochs=1)
    schedule = LRSchedule(opt, cfg, 0.5, 4, 40)
    assert [g["lr"] for g in opt.param_groups] == [0.125, 0.125]
    for _ in range(13):
        schedule.step()
    expected = learning_rate(cfg, 0.5, 13, 4, 40)
    assert schedule.step_count == 13 and schedule.lr == expected
    assert [g["lr"] for g in opt.param_groups] == [expected, expected]
    resumed = LRSchedule(torch.optim.SGD(params, lr=9.0), cfg, 0.5, 4, 40)
    assert resumed.set_step(13) == expected and resumed.optimizer.param_groups[0]["lr"] == expected


def test_rejects_impossible_arguments():
    with pytest.raises(ValueError, match="steps_per_epoch"):
        learning_rate(ScheduleConfig(), 0.1, 0, 0, 10)
    with pytest.raises(ValueError, match="step >= 0"):
        learning_rate(ScheduleConfig(), 0.1, -1, 5, 10)


def test_resolution_switches_at_phase_ends():
    phases = [[15, 32], [30, 64], [10, 16], [180, 64]]
    at = [resolution_at(phases, e) for e in range(300)]
    assert [e for e in range(1, 300) if at[e] != at[e - 1]] == [15, 45, 55]
    assert (at[0], at[14], at[15], at[44], at[45], at[54], at[55]) == (32, 32, 64, 64, 16, 16, 64)
    assert at[234] == 64 and at[299] == 64  # beyond the total the last px continues


def test_resolution_single_and_repeated_phases():
    assert [resolution_at([[3, 48]], e) for e in (0, 2, 3, 1000)] == [48] * 4
    assert resolution_at([[2, 32], [3, 32], [1, 64]], 4) == 32
    with pytest.raises(ValueError, match="at least one"):
        resolution_at([], 0)


def test_fractional_clr_step_rounds_half_up():
    cfg = ScheduleConfig(name="clr", base_lr=BASE, max_lr=TOP, step_size=0.5, step_unit="epochs")
    # 0.5 epoch x 5 iterations = 2.5 -> 3 iterations to the peak (not banker's 2)
    assert learning_rate(cfg, 1.0, 3, 5, 100) == pytest.approx(TOP)
    assert not math.isclose(learning_rate(cfg, 1.0, 2, 5, 100), TOP)
