"""Reading CLR bounds off an LR range-test curve (synthetic curves whose answer is known)."""

from __future__ import annotations

import numpy as np
import pytest

from tinyab.train.lr_find import suggest_bounds


def range_test_curve(rng: np.random.Generator, noise: float) -> tuple[list[float], list[float]]:
    """Flat at 5.3 up to 3e-4, falling fastest around 1e-2 (a logistic in log lr), lowest near 0.3,
    then blowing up; plus noise smoothed the way lr_find smooths it."""
    lrs = np.geomspace(1e-5, 1.0, 100)
    x = np.log10(lrs)
    loss = 5.3 - 2.0 / (1 + np.exp(-(x + 2) * 3)) + 40 * np.clip(x + 0.5, 0, None) ** 2
    loss = loss + rng.normal(0, noise, lrs.size)
    loss[12] -= 0.5  # a noise dip on the flat start (at 1.3e-5 .. 5e-5)
    smoothed, average = [], 0.0
    for i, value in enumerate(loss):
        average = 0.9 * average + 0.1 * value
        smoothed.append(average / (1 - 0.9 ** (i + 1)))
    return lrs.tolist(), smoothed


@pytest.mark.parametrize("seed", range(20))
def test_base_lr_is_the_steepest_descent_within_the_literature_range_not_a_noise_dip(seed: int) -> None:
    lrs, losses = range_test_curve(np.random.default_rng(seed), noise=0.03)
    base, top = suggest_bounds(lrs, losses)
    assert top == lrs[int(np.argmin(losses))]
    assert top / 10 <= base <= top / 4
    assert base > 3e-4  # nowhere on the flat start


def test_a_curve_that_never_falls_gives_a_decade_below_its_lowest_point() -> None:
    lrs = np.geomspace(1e-5, 1.0, 50).tolist()
    losses = np.linspace(5.0, 9.0, 50).tolist()
    assert suggest_bounds(lrs, losses) == (lrs[0] / 10, lrs[0])


def test_steepest_descent_between_the_clamps_is_taken_as_is() -> None:
    lrs = np.geomspace(1e-4, 1.0, 200).tolist()
    x = np.log10(lrs)
    # steepest at 10**-1.4 ≈ 0.04; minimum at 10**-0.7 ≈ 0.2: 0.04 lies between 0.2/10 and 0.2/4
    losses = (5 - 2 / (1 + np.exp(-(x + 1.4) * 4)) + 30 * np.clip(x + 0.7, 0, None) ** 2).tolist()
    base, top = suggest_bounds(lrs, losses)
    assert top == pytest.approx(10**-0.7, rel=0.05)
    assert base == pytest.approx(10**-1.4, rel=0.1)
