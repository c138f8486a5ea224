"""Decisive comparisons with the fewest seeds: fixed and group-sequential designs with equivalence.

A comparison is a vector of paired differences d (positive = arm A better); a family of m comparisons is
tested together, each at α/m (Bonferroni), so the chance of any false claim in the family stays ≤ α.

- Fixed design: the two-sided t interval of mean(d) at level 1 − α/m.
- Sequential design: seeds come in batches and each comparison stops at its first decisive look. Within a
  comparison, a = α/m is spent over the looks by Lan–DeMets' O'Brien–Fleming-type function, each side
  spending f(t; a/2) = 2 − 2Φ(z_{1−a/4}/√t) at information t = seeds / max seeds (the convention of
  gsDesign's sfLDOF and rpact's asOF for a symmetric two-sided test, which published boundary tables
  use). The z boundaries are exact for the correlated looks (recursive numerical integration, Jennison &
  Turnbull 2000 ch. 19); each becomes a nominal level p_k, and the look's repeated confidence interval
  (RCI) is the t interval at 1 − p_k, since 3–20 seeds are too few for z (the t conversion lets the error
  over all looks exceed a by 3–10%, which Bonferroni's slack absorbs in a family; see the docs).
- Verdicts come from the interval alone (:func:`verdict`), so "the interval excludes 0" and "one arm is
  better" never disagree; "equivalent" is the interval inside ±margin (TOST at the same level).

Method, references and the simulated error rates: docs/report.md.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike
from scipy import optimize, special
from scipy import stats as sps

from tinyab.stats import t_interval, t_power

Verdict = Literal["a", "b", "equivalent", "inconclusive"]
"""The claim about A vs B: "a" (A better), "b" (B better), "equivalent" (within ±margin) or
"inconclusive"; the caller puts the arms' names in."""

VERDICTS: tuple[Verdict, ...] = ("a", "b", "equivalent", "inconclusive")
GRID_PER_SD = 8  # integration points per SD of the smallest increment between neighbouring looks
GRID_HALF_WIDTH = 12.0  # in SDs of S_k: the sub-density beyond it holds < 1e-32
POWER_STUDIES = 20_000


def _verdict_codes(low: ArrayLike, high: ArrayLike, margin: float | None) -> np.ndarray:
    """Indices into :data:`VERDICTS`, elementwise: the one rule behind :func:`verdict` and the power
    simulation."""
    low, high = np.asarray(low, dtype=float), np.asarray(high, dtype=float)
    inside = (-margin < low) & (high < margin) if margin is not None else np.zeros(low.shape, dtype=bool)
    return np.where(low > 0, 0, np.where(high < 0, 1, np.where(inside, 2, 3)))


def verdict(low: float, high: float, margin: float | None = None) -> Verdict:
    """The claim an interval for mean(A − B) supports: "a" if it lies above 0, "b" if below, "equivalent"
    if it lies strictly inside ±``margin``, else "inconclusive" (also for a NaN interval)."""
    return VERDICTS[int(_verdict_codes(low, high, margin))]


def fixed_interval(d: ArrayLike, alpha: float, family: int) -> tuple[float, float]:
    """The t interval of mean(d) at 1 − α/m: simultaneous over a family of m comparisons (Bonferroni)."""
    return t_interval(np.asarray(d, dtype=float), 1 - alpha / family)


def _sizes(effect: float, sd: float, margin: float | None) -> tuple[float, float | None]:
    """Effect and margin in SDs of one difference (the simulation's unit)."""
    if effect == 0 or not sd > 0:
        raise ValueError(f"need a nonzero effect and a positive SD, got effect={effect}, sd={sd}")
    return effect / sd, None if margin is None else margin / sd


def seeds_for_power(
    effect: float, sd: float, alpha: float, family: int, power: float, per_seed: int = 1, cap: int = 10_000
) -> int:
    """Fewest seeds (≥ 2) for which a two-sided paired t test at α/m on ``per_seed`` differences per seed
    has ``power`` against mean difference ``effect`` (SD of one difference ``sd``): exact noncentral t.

    Power grows with n, so a bisection over [2, cap] finds it; ValueError if ``cap`` seeds do not suffice.
    """
    effect_size, _ = _sizes(effect, sd, None)

    def enough(seeds: int) -> bool:
        return t_power(effect_size, per_seed * seeds, alpha / family) >= power

    if not enough(cap):
        raise ValueError(f"more than {cap} seeds needed for power {power} against {effect} (SD {sd})")
    low, high = 1, cap  # enough(high) holds; one seed is never enough
    while high - low > 1:
        mid = (low + high) // 2
        low, high = (low, mid) if enough(mid) else (mid, high)
    return high


def _simpson_weights(points: int, width: float) -> np.ndarray:
    """Composite Simpson weights for ``points`` (odd) equally spaced nodes over ``width``."""
    w = np.ones(points)
    w[1:-1:2], w[2:-1:2] = 4.0, 2.0
    return w * width / (points - 1) / 3


def _grid(bound: float, spacing: float) -> tuple[np.ndarray, np.ndarray]:
    """Nodes and Simpson weights on (−bound, bound), at most ``spacing`` apart."""
    points = 2 * int(np.ceil(bound / spacing)) + 1
    return np.linspace(-bound, bound, points), _simpson_weights(points, 2 * bound)


def _boundary(nodes: np.ndarray, mass: np.ndarray, scale: float, sd: float, target: float) -> float:
    """The z boundary whose two tails take ``target`` of the surviving ``mass`` (sub-probabilities of
    S_{k−1} at ``nodes``) after an increment of SD ``sd``; S_k = Z_k · ``scale``. 40 (never crossed: its
    nominal level underflows to 0) when the target is below what double precision resolves."""

    def excess(c: float) -> float:
        b = c * scale
        return float(mass @ (special.ndtr((nodes - b) / sd) + special.ndtr((-b - nodes) / sd))) - target

    return optimize.brentq(excess, 0.0, 40.0, xtol=1e-10) if excess(40.0) < 0 else 40.0


@functools.lru_cache(maxsize=256)
def obf_boundaries(alpha: float, fractions: tuple[float, ...]) -> tuple[float, ...]:
    """Exact two-sided z boundaries c_k of Lan–DeMets O'Brien–Fleming-type spending at ``alpha`` for
    looks at information ``fractions`` (increasing, last 1).

    c_k solves P(no crossing before k, |Z_k| ≥ c_k) = f(t_k) − f(t_{k−1}) under H0. With S_k = Z_k √t_k a
    Brownian motion, the sub-density of S_k on the continuation region is carried from look to look by
    Simpson's rule on a grid finer than the next increment's SD (Armitage, McPherson & Rowe 1969;
    Jennison & Turnbull 2000, ch. 19). Deterministic, cached per design.
    """
    t = np.asarray(fractions, dtype=float)
    spent = 4 * sps.norm.sf(sps.norm.isf(alpha / 4) / np.sqrt(t))  # both sides, each f(t; alpha / 2)
    increments = np.diff(spent, prepend=0.0)
    sd_step = np.sqrt(np.diff(t, prepend=0.0))
    nodes, mass = np.zeros(1), np.ones(1)  # S_0 = 0
    bounds: list[float] = []
    for k in range(len(t)):
        bounds.append(_boundary(nodes, mass, np.sqrt(t[k]), sd_step[k], increments[k]))
        if k == len(t) - 1:
            break
        spacing = min(sd_step[k], sd_step[k + 1]) / GRID_PER_SD
        grid, weights = _grid(min(bounds[k], GRID_HALF_WIDTH) * np.sqrt(t[k]), spacing)
        kernel = np.exp(-0.5 * np.square((grid[:, None] - nodes) / sd_step[k])) / (
            sd_step[k] * np.sqrt(2 * np.pi)
        )
        density = kernel @ mass
        nodes, mass = grid, weights * density
    return tuple(bounds)


@dataclass(frozen=True)
class Sequential:
    """A group-sequential design: looks at ``first``, ``first + step``, … seeds and a last one at
    ``max_seeds``; α spent per comparison at α / ``family``."""

    alpha: float
    family: int
    first: int
    step: int
    max_seeds: int

    def __post_init__(self) -> None:
        if not (0 < self.alpha < 1 and self.family >= 1 and self.step >= 1 and self.first >= 1):
            raise ValueError(f"invalid sequential design {self}")
        if self.first > self.max_seeds:
            raise ValueError(f"first look ({self.first} seeds) after max_seeds ({self.max_seeds})")

    @property
    def looks(self) -> tuple[int, ...]:
        """Seed counts at the looks."""
        return (*range(self.first, self.max_seeds, self.step), self.max_seeds)

    @property
    def boundaries(self) -> tuple[float, ...]:
        """Two-sided z boundaries of the looks (exact, O'Brien–Fleming-type spending)."""
        return obf_boundaries(self.alpha / self.family, tuple(n / self.max_seeds for n in self.looks))

    @property
    def levels(self) -> tuple[float, ...]:
        """Nominal two-sided level p_k of each look: its boundary as a p-value."""
        return tuple((2 * special.ndtr(-np.array(self.boundaries))).tolist())

    def look_index(self, seeds: int) -> int | None:
        """Which look ``seeds`` seeds are (None if not a planned look)."""
        return self.looks.index(seeds) if seeds in self.looks else None

    def interval(self, d: ArrayLike, look: int) -> tuple[float, float]:
        """The repeated confidence interval of mean(d) at look index ``look``: t interval at 1 − p_k."""
        d = np.asarray(d, dtype=float)
        d = d[np.isfinite(d)]
        if len(d) < 2:
            return float("nan"), float("nan")
        half = float(_rci_half_width(d.std(ddof=1), len(d), self.levels[look]))
        return float(d.mean() - half), float(d.mean() + half)


@dataclass(frozen=True)
class Decision:
    """Where a comparison stopped: its verdict, seeds and look index then, and the interval it rests on.

    ``look`` is None (and the interval NaN) when the data never reached the first look."""

    verdict: Verdict
    seeds: int
    low: float
    high: float
    look: int | None


def replay(per_seed: Sequence[ArrayLike], design: Sequential, margin: float | None = None) -> Decision:
    """One comparison's decision, replayed look by look: the first decisive look, else the last one the
    data reach ("inconclusive").

    ``per_seed[i]`` holds the differences the i-th seed (in running order) contributes: one per seed, or one
    per level of the factors pooled over (a 2-D seeds × levels array works too). From a pandas frame:
    ``[g.to_numpy() for _, g in frame.groupby("seed", sort=True)["diff"]]``. Non-finite differences are
    dropped; seeds past the last look the data reach are not looked at.
    """
    if margin is not None and not margin > 0:
        raise ValueError(f"margin must be positive, got {margin}")
    chunks = [np.atleast_1d(np.asarray(x, dtype=float)) for x in per_seed]
    decision = Decision("inconclusive", 0, float("nan"), float("nan"), None)
    for k, seeds in enumerate(design.looks):
        if seeds > len(chunks):
            break
        low, high = design.interval(np.concatenate(chunks[:seeds]), k)
        decision = Decision(verdict(low, high, margin), seeds, low, high, k)
        if decision.verdict != "inconclusive":
            break
    return decision


def _rci_half_width(sd: ArrayLike, n: ArrayLike, level: float) -> np.ndarray:
    """Half-width of the t interval at 1 − ``level`` (NaN below two values); the upper quantile is taken as
    −quantile(level / 2), exact even for the 1e-12 levels of early looks."""
    n = np.asarray(n, dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 1, -special.stdtrit(np.maximum(n - 1, 1), level / 2) * sd / np.sqrt(n), np.nan)


def _standard_paths(seeds: int, per_seed: int, studies: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Running mean and SD (rows: after 1..``seeds`` seeds) of standard-normal differences in seeded
    simulated studies (columns), drawn seed by seed from sufficient statistics: the sum of a seed's
    ``per_seed`` differences and their within-seed sum of squares. Each seed has its own child stream, so
    designs with different max seeds see the same first seeds (common random numbers)."""
    sums, within = np.empty((seeds, studies)), np.zeros((seeds, studies))
    for row, child in enumerate(np.random.SeedSequence(seed).spawn(seeds)):
        rng = np.random.default_rng(child)
        sums[row] = rng.normal(0.0, np.sqrt(per_seed), studies)
        if per_seed > 1:
            within[row] = rng.chisquare(per_seed - 1, studies)
    n = per_seed * np.arange(1, seeds + 1)[:, None]
    total, squares = np.cumsum(sums, axis=0), np.cumsum(within + sums**2 / per_seed, axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        sd = np.sqrt(np.maximum(squares - total**2 / n, 0.0) / (n - 1))
    return total / n, sd


def _power(
    design: Sequential,
    effect_size: float,
    margin_size: float | None,
    paths: tuple[np.ndarray, np.ndarray],
    per_seed: int,
) -> float:
    """Share of simulated studies (``paths`` of standard-normal noise) whose first decisive verdict names
    the truly better arm, differences being ``effect_size`` + noise (in SDs of one difference)."""
    mean, sd = paths
    running = np.ones(mean.shape[1], dtype=bool)
    right = np.zeros_like(running)
    correct = 0 if effect_size > 0 else 1
    for seeds, level in zip(design.looks, design.levels, strict=True):
        centre = effect_size + mean[seeds - 1]
        half = _rci_half_width(sd[seeds - 1], per_seed * seeds, level)
        codes = _verdict_codes(centre - half, centre + half, margin_size)
        right |= running & (codes == correct)
        running &= codes == 3
    return float(right.mean())


def sequential_power(
    design: Sequential,
    effect: float,
    sd: float,
    per_seed: int = 1,
    margin: float | None = None,
    studies: int = POWER_STUDIES,
    seed: int = 0,
) -> float:
    """P(the design's first decisive verdict is the truly better arm) when differences are normal with mean
    ``effect`` and SD ``sd``, ``per_seed`` of them per seed (stopping for equivalence too when ``margin`` is
    given): seeded simulation of ``studies`` studies through the same t-scale RCIs as :func:`replay`, so
    the small-sample t is priced in (MC SE ≤ 0.5 / √studies)."""
    effect_size, margin_size = _sizes(effect, sd, margin)
    paths = _standard_paths(design.max_seeds, per_seed, studies, seed)
    return _power(design, effect_size, margin_size, paths, per_seed)


def sequential_max_seeds(
    effect: float,
    sd: float,
    alpha: float,
    family: int,
    power: float,
    first: int,
    step: int,
    per_seed: int = 1,
    margin: float | None = None,
    cap: int = 100,
    studies: int = POWER_STUDIES,
    seed: int = 0,
) -> int:
    """Smallest max seeds for which :func:`sequential_power` reaches ``power``; every candidate design is
    simulated on the same studies, so the scan is not fooled by noise between candidates. ValueError
    past ``cap``."""
    effect_size, margin_size = _sizes(effect, sd, margin)
    paths = _standard_paths(cap, per_seed, studies, seed)
    for max_seeds in range(first, cap + 1):
        design = Sequential(alpha, family, first, step, max_seeds)
        if _power(design, effect_size, margin_size, paths, per_seed) >= power:
            return max_seeds
    raise ValueError(f"more than {cap} seeds needed for power {power} against {effect} (SD {sd})")
