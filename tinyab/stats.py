"""Statistics for seeded comparisons: pure functions over arrays (numpy, scipy, statsmodels).

Choices (documented in docs/report.md):

- Mean CI: Student t for n < 10, seeded BCa bootstrap for 10 <= n <= 1000, t again above 1000. BCa
  needs enough points to estimate its acceleration (at the usual 3-5 seeds it covers well below its
  nominal level, t does not); past 1000 values the mean is normal to any precision that matters and
  BCa's jackknife (O(n²)) only costs time.
- Δ mean CI follows the primary test: t on the paired differences, else Welch–Satterthwaite.
- Pairing: by seed (and the other varied keys) when every key is unique per arm and at least two pairs
  cover at least half of the larger arm.
- Primary test: paired t when the arms share seeds, else Welch's t. Secondary: Wilcoxon signed-rank or
  Mann–Whitney U.
- Verdicts (four: A better, B better, equivalent within ±margin, inconclusive) come from the interval
  printed beside them: simultaneous over the family (Bonferroni, level 1 − α/m) for a fixed design, the
  repeated confidence interval of the decisive look for sequential seeds (:mod:`tinyab.sequential`).
- Hedges' g: mean difference over the pooled SD of the two arms, times J = 1 − 3 / (4(n_a + n_b) − 9).
- P(A>B): the share of pairs where A beats B (ties count half); unpaired, the AUC U / (n_a n_b).
- MDE: the smallest |Δ| the primary test detects with 80% power at α / m (the family's level over a
  family of m comparisons), for the n at hand and the observed SD.
- ANOVA: OLS with every interaction of the factors, type-II sums of squares; partial η² =
  SS_effect / (SS_effect + SS_residual).
"""

from __future__ import annotations

import functools
import itertools
import warnings
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike
from scipy import stats

BOOTSTRAP_MIN_N = 10
BOOTSTRAP_MAX_N = 1000
BOOTSTRAP_RESAMPLES = 4000


@dataclass(frozen=True)
class Interval:
    """A confidence interval for a mean, with the method that produced it."""

    low: float
    high: float
    method: str  # "t", "BCa bootstrap" or "none (n=1)"


def _clean(x: np.ndarray | pd.Series | list[float]) -> np.ndarray:
    arr = np.asarray(x, dtype=float)
    return arr[np.isfinite(arr)]


def t_interval(x: np.ndarray, confidence: float = 0.95) -> tuple[float, float]:
    """Student t interval for the mean of ``x`` (NaN for fewer than two values)."""
    x = _clean(x)
    if len(x) < 2:
        return float("nan"), float("nan")
    half = stats.t.ppf(0.5 + confidence / 2, len(x) - 1) * x.std(ddof=1) / np.sqrt(len(x))
    return float(x.mean() - half), float(x.mean() + half)


def bca_interval(x: np.ndarray, confidence: float = 0.95, seed: int = 0) -> tuple[float, float]:
    """Seeded BCa bootstrap interval for the mean (falls back to t when all values are equal)."""
    x = _clean(x)
    if len(x) < 2 or np.ptp(x) == 0:
        return t_interval(x, confidence)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = stats.bootstrap(
            (x,),
            np.mean,
            confidence_level=confidence,
            method="BCa",
            n_resamples=BOOTSTRAP_RESAMPLES,
            random_state=np.random.default_rng(seed),
            vectorized=True,
        )
    return float(res.confidence_interval.low), float(res.confidence_interval.high)


def mean_interval(x: np.ndarray, confidence: float = 0.95, seed: int = 0) -> Interval:
    """The CI for an arm's mean: BCa bootstrap from :data:`BOOTSTRAP_MIN_N` to :data:`BOOTSTRAP_MAX_N`
    values, t otherwise."""
    x = _clean(x)
    if len(x) < 2:
        return Interval(float("nan"), float("nan"), f"none (n={len(x)})")
    if not BOOTSTRAP_MIN_N <= len(x) <= BOOTSTRAP_MAX_N:
        return Interval(*t_interval(x, confidence), "t")
    return Interval(*bca_interval(x, confidence, seed), "BCa bootstrap")


def t_half_width(sd: ArrayLike, n: ArrayLike, confidence: float = 0.95) -> np.ndarray:
    """Half-width of the t interval of a mean from summaries (SD, n), NaN below two values.

    For curves aggregated with pandas (one mean, SD and count per arm and epoch), where the values
    themselves are not at hand.
    """
    sd, n = np.asarray(sd, dtype=float), np.asarray(n, dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        t = stats.t.ppf(0.5 + confidence / 2, np.maximum(n - 1, 1))
        return np.where(n > 1, t * sd / np.sqrt(n), np.nan)


def welch_interval(a: np.ndarray, b: np.ndarray, confidence: float = 0.95) -> tuple[float, float]:
    """Welch–Satterthwaite interval for mean(a) − mean(b)."""
    a, b = _clean(a), _clean(b)
    if len(a) < 2 or len(b) < 2:
        return float("nan"), float("nan")
    va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
    se = np.sqrt(va + vb)
    if se == 0:
        d = a.mean() - b.mean()
        return float(d), float(d)
    df = (va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1))
    half = stats.t.ppf(0.5 + confidence / 2, df) * se
    d = a.mean() - b.mean()
    return float(d - half), float(d + half)


def pooled_sd(a: np.ndarray, b: np.ndarray) -> float:
    """The pooled within-arm standard deviation."""
    a, b = _clean(a), _clean(b)
    dof = len(a) + len(b) - 2
    if dof <= 0:
        return float("nan")
    ss = sum(((x - x.mean()) ** 2).sum() for x in (a, b))  # a single-seed arm adds no spread
    return float(np.sqrt(ss / dof))


def pooled_paired_sd(differences: Sequence[ArrayLike]) -> float | None:
    """SD of paired differences pooled over several vectors (one per arm), weighted by degrees of freedom.

    Every arm's (arm − baseline) differences carry the same seed noise, so pooling their variances gives
    one estimate with more degrees of freedom than any arm alone; a vector with fewer than two values
    adds none. None when no vector has two.
    """
    parts = [d for d in map(_clean, differences) if len(d) >= 2]
    if not parts:
        return None
    ss = sum(((d - d.mean()) ** 2).sum() for d in parts)
    return float(np.sqrt(ss / sum(len(d) - 1 for d in parts)))


def hedges_g(a: np.ndarray, b: np.ndarray) -> float:
    """Standardised mean difference (a − b) / pooled SD with the small-sample correction J."""
    a, b = _clean(a), _clean(b)
    n = len(a) + len(b)
    sd = pooled_sd(a, b)
    if not np.isfinite(sd) or sd == 0 or n < 4:
        return float("nan")
    return float((1 - 3 / (4 * n - 9)) * (a.mean() - b.mean()) / sd)


def prob_improvement(a: np.ndarray, b: np.ndarray, paired: bool) -> float:
    """P(A > B): share of seed pairs where a beats b, or the Mann–Whitney AUC; ties count half."""
    a, b = _clean(a), _clean(b)
    if len(a) == 0 or len(b) == 0:
        return float("nan")
    if paired:
        d = a - b
        return float((np.sum(d > 0) + 0.5 * np.sum(d == 0)) / len(d))
    diff = a[:, None] - b[None, :]
    return float((np.sum(diff > 0) + 0.5 * np.sum(diff == 0)) / diff.size)


def bonferroni(pvalues: np.ndarray | list[float]) -> np.ndarray:
    """Bonferroni-adjusted p-values, min(1, m·p) over the m testable ones; NaN entries stay NaN. The
    family's verdicts use the matching simultaneous intervals (level 1 − α/m), so p_adj < α exactly
    when the interval excludes 0."""
    p = np.asarray(pvalues, dtype=float)
    return np.minimum(1.0, p * max(int(np.isfinite(p).sum()), 1))


def pair_by_keys(
    keys_a: Sequence[Hashable], values_a: ArrayLike, keys_b: Sequence[Hashable], values_b: ArrayLike
) -> tuple[np.ndarray, np.ndarray, bool]:
    """Two arms' values paired by key (seed and the other varied keys), or both as given when unpaired.

    Pairs only when every key appears once per arm and at least two twins cover at least half of the
    larger arm: a paired test on a few chance twins would throw most of the data away.
    """
    values_a, values_b = np.asarray(values_a, dtype=float), np.asarray(values_b, dtype=float)
    twins_a = dict(zip(keys_a, values_a, strict=True))
    twins_b = dict(zip(keys_b, values_b, strict=True))
    shared = [k for k in twins_a if k in twins_b]
    unique = len(twins_a) == len(values_a) and len(twins_b) == len(values_b)
    if unique and len(shared) >= 2 and 2 * len(shared) >= max(len(values_a), len(values_b)):
        return np.array([twins_a[k] for k in shared]), np.array([twins_b[k] for k in shared]), True
    return values_a, values_b, False


def t_power(effect_size: float, n: float, level: float, df: float | None = None) -> float:
    """Power of a two-sided t test at ``level`` against a standardised effect: P(|T| > t_crit) with T
    noncentral t, ncp = effect·√n (n: pairs, or n_a·n_b/(n_a + n_b) for two samples; df default n − 1).
    Both tails are upper tails (sf at ±ncp): scipy's far lower tail, and statsmodels' power, return NaN
    where sf returns 0."""
    df = n - 1 if df is None else df
    crit, ncp = stats.t.isf(level / 2, df), abs(effect_size) * np.sqrt(n)
    return float(stats.nct.sf(crit, df, ncp) + stats.nct.sf(crit, df, -ncp))


@functools.lru_cache(maxsize=1024)
def _standardised_mde(n_a: int, n_b: int, alpha: float, paired: bool, power: float) -> float:
    """The MDE in SD units; it depends only on the sample sizes, so it is solved once per design
    (root-found on :func:`t_power`; statsmodels' ``solve_power`` stops short at small n and strict α)."""
    from scipy.optimize import brentq

    n, df = (n_a, n_a - 1) if paired else (n_a * n_b / (n_a + n_b), n_a + n_b - 2)
    if df < 1:
        return float("nan")
    try:
        return float(brentq(lambda es: t_power(es, n, alpha, df) - power, 1e-9, 1e3, xtol=1e-12))
    except ValueError:
        return float("nan")


def minimal_detectable_effect(
    n_a: int, n_b: int, sd: float, alpha: float, paired: bool, power: float = 0.8
) -> float:
    """Smallest |Δ| detected with ``power`` by a two-sided t test at ``alpha`` (sd of the differences
    when paired, else the pooled SD)."""
    if not np.isfinite(sd) or sd <= 0 or min(n_a, n_b) < 2:
        return float("nan")
    es = _standardised_mde(int(n_a), int(n_b), float(alpha), bool(paired), float(power))
    return es * sd if np.isfinite(es) else float("nan")


@dataclass(frozen=True)
class Comparison:
    """Arm A against arm B on one metric (delta = mean(A) − mean(B))."""

    n_a: int
    n_b: int
    paired: bool
    mean_a: float
    mean_b: float
    delta: float
    ci_low: float
    ci_high: float
    test: str
    p: float
    alt_test: str
    p_alt: float
    hedges_g: float
    p_improvement: float
    mde: float
    sd: float  # of the paired differences (paired), else the pooled SD of the arms


def _quiet(fn, *args, **kwargs) -> float:
    """A test's p-value, NaN where the test is undefined (constant data, too few points)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return float(fn(*args, **kwargs).pvalue)
    except ValueError:
        return float("nan")


def compare(
    a: np.ndarray,
    b: np.ndarray,
    paired: bool,
    confidence: float = 0.95,
    mde_alpha: float = 0.05,
    higher_is_better: bool = True,
) -> Comparison:
    """Every statistic of one comparison. ``paired`` means a[i] and b[i] share a seed."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if paired:
        keep = np.isfinite(a) & np.isfinite(b)
        a, b = a[keep], b[keep]
    else:
        a, b = _clean(a), _clean(b)
    delta = float(a.mean() - b.mean()) if len(a) and len(b) else float("nan")
    sign = 1.0 if higher_is_better else -1.0
    if paired:
        d = a - b
        low, high = t_interval(d, confidence)
        p = _quiet(stats.ttest_rel, a, b) if len(d) >= 2 else float("nan")
        p_alt = _quiet(stats.wilcoxon, d) if len(d) >= 2 and np.any(d != 0) else float("nan")
        sd = float(d.std(ddof=1)) if len(d) >= 2 else float("nan")
        tests = ("paired t", "Wilcoxon")
    else:
        low, high = welch_interval(a, b, confidence)
        ok = len(a) >= 2 and len(b) >= 2
        p = _quiet(stats.ttest_ind, a, b, equal_var=False) if ok else float("nan")
        p_alt = _quiet(stats.mannwhitneyu, a, b, alternative="two-sided") if ok else float("nan")
        sd = pooled_sd(a, b)
        tests = ("Welch t", "Mann–Whitney U")
    return Comparison(
        n_a=len(a),
        n_b=len(b),
        paired=paired,
        mean_a=float(a.mean()) if len(a) else float("nan"),
        mean_b=float(b.mean()) if len(b) else float("nan"),
        delta=delta,
        ci_low=low,
        ci_high=high,
        test=tests[0],
        p=p,
        alt_test=tests[1],
        p_alt=p_alt,
        hedges_g=hedges_g(a, b),
        p_improvement=prob_improvement(sign * a, sign * b, paired),
        mde=minimal_detectable_effect(len(a), len(b), sd, mde_alpha, paired),
        sd=sd,
    )


def factor_pairs(levels: Mapping[str, Sequence[Any]]) -> list[tuple[str, Any, Any]]:
    """The family of a factorial study: every pair of levels of each factor, pooled over the others."""
    return [(key, a, b) for key, values in levels.items() for a, b in itertools.combinations(values, 2)]


def per_seed_differences(
    keys_a: Sequence[tuple], values_a: ArrayLike, keys_b: Sequence[tuple], values_b: ArrayLike
) -> list[np.ndarray]:
    """a − b paired by key (the seed first, then the other factors' levels), grouped by seed in seed
    order: what a sequential look at n seeds sees is the first n groups."""
    twins_b = dict(zip(keys_b, np.asarray(values_b, dtype=float), strict=True))
    by_seed: dict[Any, list[float]] = {}
    for key, value in zip(keys_a, np.asarray(values_a, dtype=float), strict=True):
        if key in twins_b and np.isfinite(value) and np.isfinite(twins_b[key]):
            by_seed.setdefault(key[0], []).append(value - twins_b[key])
    return [np.array(by_seed[seed]) for seed in sorted(by_seed)]


def verdict_words(code: str, a: str, b: str, margin: float | None) -> str:
    """A verdict code of :func:`tinyab.sequential.verdict` as the report states it."""
    return {
        "a": f"{a} better than {b}",
        "b": f"{b} better than {a}",
        "equivalent": f"equivalent within ±{margin:g}" if margin is not None else "equivalent",
        "inconclusive": "inconclusive",
    }[code]


def anova_verdict(p: float, alpha: float) -> str:
    """The claim about one ANOVA effect, from its unadjusted p as the ANOVA table reports it."""
    return f"{'effect' if p < alpha else 'no detectable effect'} at α={alpha:g} (unadjusted)"


def anova(
    data: pd.DataFrame, response: str, factors: list[str], block: str | None = None
) -> pd.DataFrame | None:
    """Type-II ANOVA of ``response`` on the crossed ``factors`` with all their interactions, plus an
    additive ``block`` (the seed, when every arm ran the same seeds: the model matches the paired design).

    Returns rows per effect (named ``a``, ``a × b``, and the block) plus ``Residual``, with columns df,
    sum_sq, F, p, partial_eta_sq; None when there is no residual degree of freedom (no replicates).
    """
    import statsmodels.formula.api as smf
    from statsmodels.stats.anova import anova_lm

    names = {f"f{i}": key for i, key in enumerate(factors)}
    if block is not None:
        names["blk"] = block
    frame = pd.DataFrame({alias: data[key].astype(str).to_numpy() for alias, key in names.items()})
    frame["y"] = data[response].to_numpy(dtype=float)
    frame = frame[np.isfinite(frame["y"])]
    levels = [frame[alias].nunique() for alias in names]
    if min(levels, default=0) < 2:
        return None
    formula = "y ~ " + " * ".join(f"C({alias})" for alias in names if alias != "blk")
    if block is not None:
        formula += " + C(blk)"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = smf.ols(formula, data=frame).fit()
        if model.df_resid < 1:
            return None
        table = anova_lm(model, typ=2)
    ss_resid = float(table.loc["Residual", "sum_sq"])

    def label(term: str) -> str:
        if term == "Residual":
            return term
        return " × ".join(names[part[2:-1]] for part in term.split(":"))

    out = pd.DataFrame(
        {
            "source": [label(t) for t in table.index],
            "df": table["df"].round().astype(int).to_numpy(),
            "sum_sq": table["sum_sq"].to_numpy(),
            "F": table["F"].to_numpy(),
            "p": table["PR(>F)"].to_numpy(),
        }
    )
    out["partial_eta_sq"] = np.where(
        out["source"] == "Residual", np.nan, out["sum_sq"] / (out["sum_sq"] + ss_resid)
    )
    return out
