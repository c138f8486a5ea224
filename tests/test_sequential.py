"""tinyab.sequential against independent references (published boundaries, scipy's multivariate normal,
the noncentral t by quadrature) and its error rates by simulation of the shipped main study's shape: 6 arms
(factor A: 2 levels × factor B: 3 levels) on shared seeds, a family of 4 pooled comparisons, looks at 3, 5,
…, 19, 20 seeds. The rates these tests measure are tabulated in docs/report.md."""

from __future__ import annotations

from functools import cache
from itertools import combinations

import numpy as np
import pandas as pd
import pytest
from scipy import integrate
from scipy import stats as sps

from tinyab import sequential as seq
from tinyab.stats import t_interval

ALPHA, FAMILY, MARGIN, SD = 0.05, 4, 0.02, 0.02  # SD of one paired difference
DESIGN = seq.Sequential(ALPHA, FAMILY, first=3, step=2, max_seeds=20)
STUDIES = 3000


def mc_bound(rate: float, studies: int) -> float:
    """Three Monte-Carlo standard errors of a simulated rate."""
    return 3 * np.sqrt(max(rate * (1 - rate), 1e-4) / studies)


@cache
def simulate(effect_a: float, seeds: int, seed: int) -> dict[str, np.ndarray]:
    """The family's paired differences in ``STUDIES`` simulated studies, (study, seed, pair) per comparison.

    Arm value = effect (``effect_a`` on A's second level) + seed effect (SD 0.02, shared by the seed's arms)
    + noise (SD 0.02/√2, so a paired difference has SD 0.02). A's levels are paired by (seed, B level): 3
    differences per seed; each pair of B levels by (seed, A level): 2 per seed.
    """
    rng = np.random.default_rng(seed)
    effects = np.array([[0.0] * 3, [effect_a] * 3])
    values = (
        effects
        + rng.normal(0, 0.02, (STUDIES, seeds, 1, 1))
        + rng.normal(0, SD / np.sqrt(2), (STUDIES, seeds, 2, 3))
    )
    family = {"A": values[:, :, 1, :] - values[:, :, 0, :]}
    for i, j in combinations(range(3), 2):
        family[f"B{i} vs B{j}"] = values[:, :, :, i] - values[:, :, :, j]
    return family


@cache
def verdicts(effect_a: float, design: seq.Sequential, margin: float | None, seed: int) -> pd.DataFrame:
    """Each study's (rows) verdict per comparison (columns), replayed through :func:`seq.replay`."""
    family = simulate(effect_a, design.max_seeds, seed)
    return pd.DataFrame(
        {name: [seq.replay(study, design, margin).verdict for study in d] for name, d in family.items()}
    )


def naive_family_error(seed: int) -> float:
    """Family-wise rate of "better" verdicts when every look is a plain t test at α/m (no spending)."""
    hit = np.zeros(STUDIES, dtype=bool)
    for d in simulate(0.0, DESIGN.max_seeds, seed).values():
        for seeds in DESIGN.looks:
            x = d[:, :seeds].reshape(STUDIES, -1)
            half = sps.t.isf(ALPHA / FAMILY / 2, x.shape[1] - 1) * x.std(axis=1, ddof=1) / np.sqrt(x.shape[1])
            hit |= np.abs(x.mean(axis=1)) > half
    return float(hit.mean())


def t_power(effect_size: float, n: int, level: float) -> float:
    """Two-sided one-sample t test power by quadrature over the χ² of the SD (independent of scipy's nct)."""
    crit, ncp, df = sps.t.isf(level / 2, n - 1), effect_size * np.sqrt(n), n - 1

    def given_sd(v: float) -> float:
        s = np.sqrt(v / df)
        return (sps.norm.cdf(ncp - crit * s) + sps.norm.cdf(-ncp - crit * s)) * sps.chi2.pdf(v, df)

    low, high = sps.chi2.ppf(1e-14, df), sps.chi2.isf(1e-14, df)
    return integrate.quad(given_sd, low, high, points=[df], limit=200)[0]


def test_obf_boundaries_match_published_values_and_spend_exactly_alpha() -> None:
    fractions = (0.2, 0.4, 0.6, 0.8, 1.0)
    bounds = seq.obf_boundaries(0.05, fractions)
    # gsDesign sfLDOF / rpact asOF, K = 5 equally spaced, two-sided α = 0.05
    assert bounds == pytest.approx((4.877, 3.357, 2.680, 2.290, 2.031), abs=1e-3)
    main = np.array(DESIGN.looks) / DESIGN.max_seeds
    for alpha, t, c in [(0.05, fractions, bounds), (ALPHA / FAMILY, main, DESIGN.boundaries)]:
        t, c = np.asarray(t), np.asarray(c)
        corr = np.sqrt(np.minimum.outer(t, t) / np.maximum.outer(t, t))  # corr(Z_i, Z_j) = √(t_i / t_j)
        mvn = sps.multivariate_normal(np.zeros(len(t)), corr)
        stay = mvn.cdf(c, lower_limit=-c, rng=np.random.default_rng(0))
        assert 1 - stay == pytest.approx(alpha, abs=1e-4)


def test_design_looks_levels_and_look_index() -> None:
    assert DESIGN.looks == (3, 5, 7, 9, 11, 13, 15, 17, 19, 20)
    assert seq.Sequential(ALPHA, FAMILY, 3, 2, 19).looks == (3, 5, 7, 9, 11, 13, 15, 17, 19)
    assert (DESIGN.look_index(3), DESIGN.look_index(20), DESIGN.look_index(4)) == (0, 9, None)
    levels = np.array(DESIGN.levels)
    assert np.all(np.diff(levels) > 0) and levels[-1] < ALPHA / FAMILY
    assert levels == pytest.approx(2 * sps.norm.sf(DESIGN.boundaries), rel=1e-12)
    with pytest.raises(ValueError):
        seq.Sequential(ALPHA, FAMILY, first=5, step=2, max_seeds=4)


def test_interval_and_verdict_agree_by_construction() -> None:
    d = np.array([0.011, 0.004, 0.019, 0.008, 0.013, 0.002, 0.016, 0.009, 0.012])
    look = DESIGN.look_index(9)
    assert DESIGN.interval(d, look) == pytest.approx(t_interval(d, 1 - DESIGN.levels[look]), rel=1e-9)
    assert np.isnan(DESIGN.interval([0.01, np.nan], look)).all()
    low, high = seq.fixed_interval(d, ALPHA, FAMILY)
    ref = sps.t.interval(1 - ALPHA / FAMILY, len(d) - 1, loc=d.mean(), scale=sps.sem(d))
    assert (low, high) == pytest.approx(ref, rel=1e-12)
    assert seq.verdict(low, high) == "a" and seq.verdict(-high, -low) == "b"
    assert seq.verdict(-0.01, 0.01, margin=0.02) == "equivalent"
    assert seq.verdict(-0.01, 0.02, margin=0.02) == "inconclusive"  # equivalence is strict
    assert seq.verdict(0.001, 0.01, margin=0.02) == "a"  # excludes 0: better wins over equivalent
    assert seq.verdict(float("nan"), float("nan"), margin=0.02) == "inconclusive"


def test_seeds_for_power_is_the_smallest_sufficient_n() -> None:
    for effect, per_seed in [(0.02, 1), (0.01, 1), (0.02, 3), (-0.005, 2)]:
        level = ALPHA / FAMILY
        seeds = seq.seeds_for_power(effect, SD, ALPHA, FAMILY, 0.8, per_seed=per_seed)
        assert t_power(abs(effect) / SD, per_seed * seeds, level) >= 0.8
        assert seeds == 2 or t_power(abs(effect) / SD, per_seed * (seeds - 1), level) < 0.8
    assert seq.seeds_for_power(1.0, SD, ALPHA, FAMILY, 0.8) == 2


def test_replay_stops_at_the_first_decisive_look_on_the_data_it_has() -> None:
    rng = np.random.default_rng(5)
    frame = pd.DataFrame({"seed": np.repeat(np.arange(8), 3), "diff": rng.normal(0.03, SD, 24)})
    per_seed = [g.to_numpy() for _, g in frame.groupby("seed", sort=True)["diff"]]
    decision = seq.replay(per_seed, DESIGN, MARGIN)
    assert decision.verdict == "a" and decision.seeds in DESIGN.looks[:3]
    assert (decision.low, decision.high) == DESIGN.interval(
        frame["diff"][: 3 * decision.seeds], decision.look
    )
    assert all(
        seq.verdict(*DESIGN.interval(frame["diff"][: 3 * n], k), MARGIN) == "inconclusive"
        for k, n in enumerate(DESIGN.looks[: decision.look])
    )
    flat = seq.replay(0.01 * (-1.0) ** np.arange(8), DESIGN)  # ±0.01: never decisive without a margin
    assert (flat.verdict, flat.seeds, flat.look) == ("inconclusive", 7, 2)  # seed 8 is not a look
    short = seq.replay(per_seed[:2], DESIGN, MARGIN)
    assert (short.verdict, short.seeds, short.look) == ("inconclusive", 0, None) and np.isnan(short.low)


def test_family_wise_error_holds_under_repeated_looks_and_naive_looks_inflate_it() -> None:
    rate = float((verdicts(0.0, DESIGN, None, 1).isin(["a", "b"])).any(axis=1).mean())
    assert rate <= ALPHA + mc_bound(ALPHA, STUDIES)
    naive = naive_family_error(1)
    assert naive - mc_bound(naive, STUDIES) > ALPHA


def test_no_effect_is_declared_equivalent_by_20_seeds_without_false_claims() -> None:
    table = verdicts(0.0, DESIGN, MARGIN, 2)
    assert float((table == "equivalent").to_numpy().mean()) >= 0.9
    assert float(table.isin(["a", "b"]).any(axis=1).mean()) <= ALPHA + mc_bound(ALPHA, STUDIES)


def test_an_effect_of_one_margin_is_found_with_the_promised_power() -> None:
    max_seeds = seq.sequential_max_seeds(MARGIN, SD, ALPHA, FAMILY, 0.8, 3, 2, per_seed=3, margin=MARGIN)
    design = seq.Sequential(ALPHA, FAMILY, 3, 2, max_seeds)
    promised = seq.sequential_power(design, MARGIN, SD, per_seed=3, margin=MARGIN)
    fewer = seq.Sequential(ALPHA, FAMILY, 3, 2, max_seeds - 1)
    assert promised >= 0.8 > seq.sequential_power(fewer, MARGIN, SD, per_seed=3, margin=MARGIN)
    rate = float((verdicts(MARGIN, design, MARGIN, 3)["A"] == "a").mean())
    assert rate >= promised - 3 * np.sqrt(promised * (1 - promised) * (1 / STUDIES + 1 / seq.POWER_STUDIES))


def test_an_effect_of_one_margin_is_rarely_called_equivalent() -> None:
    table = verdicts(MARGIN, DESIGN, MARGIN, 4)
    assert float((table["A"] == "equivalent").mean()) <= ALPHA + mc_bound(ALPHA, STUDIES)
    assert float((table["A"] == "a").mean()) >= 0.99
