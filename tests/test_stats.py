"""tinyab.stats against independent references (scipy, statsmodels, textbook formulas) on fixed
data, and the verdict's error rates by simulation: A/A false positives and A/B power at the reported MDE."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from scipy import stats as sps
from statsmodels.stats.meta_analysis import effectsize_smd
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.weightstats import CompareMeans, DescrStatsW

from tinyab import stats
from tinyab.analysis.design import resolve_design
from tinyab.analysis.tables import Rule, comparisons_table
from tinyab.records.reader import StudyRecords

A = np.array([0.381, 0.392, 0.377, 0.405, 0.388, 0.379])
B = np.array([0.371, 0.385, 0.380, 0.390, 0.369, 0.372])
C = np.array([0.35, 0.362, 0.341, 0.358, 0.347, 0.366, 0.352, 0.349])


def test_t_interval_matches_scipy() -> None:
    low, high = stats.t_interval(A, 0.95)
    ref = sps.t.interval(0.95, len(A) - 1, loc=A.mean(), scale=sps.sem(A))
    assert (low, high) == pytest.approx(ref, rel=1e-12)
    assert np.isnan(stats.t_interval(A[:1])[0])


def test_mean_interval_method_switch_and_single_seed() -> None:
    assert stats.mean_interval(A).method == "t"
    assert stats.mean_interval(np.r_[A, B]).method == "BCa bootstrap"
    one = stats.mean_interval([0.4])
    assert one.method == "none (n=1)" and np.isnan(one.low) and np.isnan(one.high)


def test_bca_is_seeded_close_to_t_for_normal_data_and_skewed_for_skewed_data() -> None:
    rng = np.random.default_rng(3)
    normal = rng.normal(0.4, 0.02, 40)
    assert stats.bca_interval(normal, seed=1) == stats.bca_interval(normal, seed=1)
    assert stats.bca_interval(normal, seed=1) == pytest.approx(stats.t_interval(normal), abs=0.002)
    skewed = rng.exponential(1.0, 40)
    low, high = stats.bca_interval(skewed, seed=1)
    assert high - skewed.mean() > skewed.mean() - low  # the long right tail widens the upper side
    assert stats.bca_interval(np.full(12, 0.3)) == pytest.approx((0.3, 0.3))


def test_welch_comparison_matches_scipy_and_statsmodels() -> None:
    c = stats.compare(A, C, paired=False)
    assert c.p == pytest.approx(sps.ttest_ind(A, C, equal_var=False).pvalue, rel=1e-10)
    assert c.p_alt == pytest.approx(sps.mannwhitneyu(A, C, alternative="two-sided").pvalue, rel=1e-10)
    ref = CompareMeans(DescrStatsW(A), DescrStatsW(C)).tconfint_diff(alpha=0.05, usevar="unequal")
    assert (c.ci_low, c.ci_high) == pytest.approx(ref, rel=1e-10)
    assert c.delta == pytest.approx(A.mean() - C.mean())
    assert (c.test, c.alt_test, c.paired) == ("Welch t", "Mann–Whitney U", False)


def test_paired_comparison_matches_scipy_and_statsmodels() -> None:
    c = stats.compare(A, B, paired=True)
    assert c.p == pytest.approx(sps.ttest_rel(A, B).pvalue, rel=1e-10)
    assert c.p_alt == pytest.approx(sps.wilcoxon(A - B).pvalue, rel=1e-10)
    assert (c.ci_low, c.ci_high) == pytest.approx(DescrStatsW(A - B).tconfint_mean(alpha=0.05), rel=1e-10)
    assert (c.test, c.alt_test) == ("paired t", "Wilcoxon")


def test_hedges_g_matches_statsmodels_smd() -> None:
    ref, _ = effectsize_smd(A.mean(), A.std(ddof=1), len(A), C.mean(), C.std(ddof=1), len(C))
    assert stats.hedges_g(A, C) == pytest.approx(ref, rel=1e-12)
    assert stats.compare(A, C, paired=False).hedges_g == pytest.approx(ref, rel=1e-12)


def test_prob_improvement_is_the_mann_whitney_auc_and_the_paired_share() -> None:
    a, b = np.array([1, 2, 2, 3, 5.0]), np.array([2, 2, 1, 0, 4.0])
    u = sps.mannwhitneyu(a, b, alternative="two-sided").statistic
    assert stats.prob_improvement(a, b, paired=False) == pytest.approx(u / (len(a) * len(b)))
    assert stats.prob_improvement(a, b, paired=True) == pytest.approx((3 + 0.5) / 5)  # 3 wins, 1 tie
    lower_better = stats.compare(a, b, paired=True, higher_is_better=False)
    assert lower_better.p_improvement == pytest.approx((1 + 0.5) / 5)


def test_bonferroni_matches_statsmodels_and_keeps_nan() -> None:
    p = np.array([0.01, 0.04, np.nan, 0.03, 0.2, 0.01])
    out = stats.bonferroni(p)
    assert np.isnan(out[2])
    assert out[np.isfinite(p)] == pytest.approx(multipletests(p[np.isfinite(p)], method="bonferroni")[1])
    assert np.isnan(stats.bonferroni([np.nan])).all()


@pytest.mark.parametrize("paired", [True, False])
def test_mde_has_80_percent_power_by_the_noncentral_t(paired: bool) -> None:
    n, sd, alpha = 5, 0.015, 0.05
    mde = stats.minimal_detectable_effect(n, n, sd, alpha, paired)
    d = mde / sd
    df, nc = (n - 1, d * np.sqrt(n)) if paired else (2 * n - 2, d * np.sqrt(n / 2))
    crit = sps.t.ppf(1 - alpha / 2, df)
    power = sps.nct.sf(crit, df, nc) + sps.nct.cdf(-crit, df, nc)
    assert power == pytest.approx(0.8, abs=1e-3)
    assert np.isnan(stats.minimal_detectable_effect(1, 5, sd, alpha, paired))


def test_two_way_anova_matches_textbook_sums_of_squares() -> None:
    rng = np.random.default_rng(7)
    levels_a, levels_b, reps = ["x", "y"], ["p", "q", "r"], 4
    rows = [
        {
            "a": a,
            "b": b,
            "y": 0.4 + 0.02 * (a == "y") + 0.01 * i + 0.015 * (a == "y" and b == "r") + rng.normal(0, 0.01),
        }
        for a in levels_a
        for i, b in enumerate(levels_b)
        for _ in range(reps)
    ]
    data = pd.DataFrame(rows)
    table = stats.anova(data, "y", ["a", "b"]).set_index("source")
    y, grand = data["y"].to_numpy(), data["y"].mean()
    ss_a = sum(reps * len(levels_b) * (data.loc[data.a == a, "y"].mean() - grand) ** 2 for a in levels_a)
    ss_b = sum(reps * len(levels_a) * (data.loc[data.b == b, "y"].mean() - grand) ** 2 for b in levels_b)
    cells = data.groupby(["a", "b"])["y"].transform("mean").to_numpy()
    ss_e = float(((y - cells) ** 2).sum())
    ss_ab = float(((cells - grand) ** 2).sum()) - ss_a - ss_b
    df_e = len(y) - len(levels_a) * len(levels_b)
    for source, ss, df in (("a", ss_a, 1), ("b", ss_b, 2), ("a × b", ss_ab, 2)):
        f = (ss / df) / (ss_e / df_e)
        assert table.loc[source, "sum_sq"] == pytest.approx(ss, rel=1e-9)
        assert table.loc[source, "df"] == df
        assert table.loc[source, "F"] == pytest.approx(f, rel=1e-9)
        assert table.loc[source, "p"] == pytest.approx(sps.f.sf(f, df, df_e), rel=1e-8)
        assert table.loc[source, "partial_eta_sq"] == pytest.approx(ss / (ss + ss_e), rel=1e-9)
    assert table.loc["Residual", "df"] == df_e


def test_anova_without_replicates_is_none() -> None:
    data = pd.DataFrame({"a": ["x", "x", "y", "y"], "b": ["p", "q", "p", "q"], "y": [1.0, 2, 3, 5]})
    assert stats.anova(data, "y", ["a", "b"]) is None


# --- verdict error rates by simulation, through the same code path as `tinyab report` ---------------

KEY = "init.scheme"
SPEC = {"name": "aa", "kind": "search", "metric": "best_val_top1", "mode": "max",
        "params": {KEY: {"role": "scientific", "grid": ["a", "b"]}}}  # fmt: skip


def _verdicts(rng: np.random.Generator, reps: int, shift: float, paired: bool, n: int = 5, sd: float = 0.015):
    """(significant?, MDE) per simulated study of two arms × n seeds, noise sd 1.5 points."""
    out = []
    for _ in range(reps):
        seed_effect = rng.normal(0, 0.01, n)  # shared by both arms when they share seeds
        rows = []
        for arm, mu in (("a", 0.40 + shift), ("b", 0.40)):
            seeds = np.arange(n) if paired or arm == "a" else np.arange(n, 2 * n)
            effect = seed_effect if paired else rng.normal(0, 0.01, n)
            for s, e in zip(seeds, effect, strict=True):
                rows.append({"trial_id": f"{arm}{s}", "status": "completed", "seed": s, KEY: arm,
                             "best_val_top1": mu + e + rng.normal(0, sd)})  # fmt: skip
        study = StudyRecords("aa", [Path("memory")], SPEC, pd.DataFrame(rows), None, None, [], None)
        table, _ = comparisons_table(resolve_design(study, None, None), Rule(0.05), {KEY: "b"})
        row = table.iloc[0]
        assert row["test"] == ("paired t" if paired else "Welch t")
        out.append(("better than" in row["verdict"], row["mde"]))
    return np.array(out)


@pytest.mark.parametrize("paired", [True, False])
def test_aa_false_positive_rate_and_ab_power_at_the_reported_mde(paired: bool) -> None:
    rng = np.random.default_rng(2024)
    aa = _verdicts(rng, 300, 0.0, paired)
    false_positive = aa[:, 0].mean()
    assert 0.02 <= false_positive <= 0.08, false_positive
    # The MDE column at n=5: shift the truth by what it reports, and the verdict should fire ~80% of the time.
    mde = float(np.mean(aa[:, 1]))
    ab = _verdicts(rng, 200, mde, paired)
    print(f"A/A false positives {false_positive:.3f}; power at MDE {mde:.4f}: {ab[:, 0].mean():.3f}")
    assert abs(ab[:, 0].mean() - 0.8) <= 0.10, (mde, ab[:, 0].mean())


def test_pooled_paired_sd_weights_each_arms_variance_by_its_degrees_of_freedom() -> None:
    diffs = [A - B, (C - C.mean())[:5] * 2, np.array([0.01, np.nan, 0.03, 0.02]), np.array([0.5])]
    used = [d[np.isfinite(d)] for d in diffs[:3]]  # NaN dropped; one value adds no spread
    ref = np.sqrt(np.average([np.var(d, ddof=1) for d in used], weights=[len(d) - 1 for d in used]))
    assert stats.pooled_paired_sd(diffs) == pytest.approx(ref, rel=1e-12)
    assert stats.pooled_paired_sd([A - B]) == pytest.approx(np.std(A - B, ddof=1), rel=1e-12)
    assert stats.pooled_paired_sd([np.array([0.1]), np.array([np.nan, 0.2])]) is None
    assert stats.pooled_paired_sd([]) is None


def test_pair_by_keys_pairs_unique_keys_when_twins_cover_half_the_larger_arm() -> None:
    a, b, paired = stats.pair_by_keys(
        [(2,), (0,), (1,)], [0.3, 0.1, 0.2], [(0,), (1,), (2,)], [1.0, 2.0, 3.0]
    )
    assert paired and a.tolist() == [0.3, 0.1, 0.2] and b.tolist() == [3.0, 1.0, 2.0]
    a, b, paired = stats.pair_by_keys([0, 1, 2, 3, 4], A[:5], [0, 1, 2, 7, 8], B[:5])  # 3 twins of 5
    assert paired and len(a) == len(b) == 3
    for keys_b in ([0, 1, 7, 8, 9], [0, 0, 1, 2, 3], [0, 10, 11, 12, 13]):  # 2 of 5; a duplicate; 1 twin
        a, b, paired = stats.pair_by_keys([0, 1, 2, 3, 4], A[:5], keys_b, B[:5])
        assert not paired and a.tolist() == A[:5].tolist() and b.tolist() == B[:5].tolist()


def test_verdicts_agree_with_their_simultaneous_intervals() -> None:
    """Over many random factorial studies: interval excludes 0 ⇔ a "better" verdict, inside ±margin ⇔
    "equivalent"; and each interval is the paired t interval at 1 − α/m (scipy, independently)."""
    rng = np.random.default_rng(7)
    margin, seen = 0.02, set()
    for _ in range(40):
        rows = []
        shift = {"a": rng.normal(0, 0.02), "b": 0.0, "c": rng.normal(0, 0.02)}
        for s in range(int(rng.integers(3, 9))):
            for arm, mu in shift.items():
                rows.append({"trial_id": f"{arm}{s}", "status": "completed", "seed": s, KEY: arm,
                             "best_val_top1": 0.4 + mu + rng.normal(0, 0.01)})  # fmt: skip
        spec = {**SPEC, "params": {KEY: {"role": "scientific", "grid": ["a", "b", "c"]}}}
        study = StudyRecords("f", [Path("memory")], spec, pd.DataFrame(rows), None, None, [], None)
        table, note = comparisons_table(resolve_design(study, None, None), Rule(0.05, margin), None)
        assert "Bonferroni over the 3 comparisons" in note and "simultaneous 98.33% intervals" in note
        frame = pd.DataFrame(rows).pivot(index="seed", columns=KEY, values="best_val_top1")
        for row in table.itertuples():
            d = frame[row.a] - frame[row.b]
            half = sps.t.ppf(1 - 0.05 / 3 / 2, len(d) - 1) * d.std(ddof=1) / np.sqrt(len(d))
            assert (row.ci_low, row.ci_high) == pytest.approx((d.mean() - half, d.mean() + half), abs=1e-12)
            excludes = row.ci_low > 0 or row.ci_high < 0
            assert excludes == ("better than" in row.verdict)
            inside = -margin < row.ci_low and row.ci_high < margin
            assert (row.verdict == f"equivalent within ±{margin:g}") == (inside and not excludes)
            assert row.p_adj == pytest.approx(min(1.0, 3 * row.p))
            seen.add(row.verdict.split()[-1] if "better" not in row.verdict else "better")
    assert seen >= {"better", "inconclusive", "±0.02"}  # every kind of verdict occurred
    assert stats.anova_verdict(0.01, 0.05) == "effect at α=0.05 (unadjusted)"


def test_t_half_width_matches_the_t_interval_at_any_confidence() -> None:
    for confidence in (0.9, 0.95, 0.99):
        half = stats.t_half_width([A.std(ddof=1), C.std(ddof=1), 0.1], [len(A), len(C), 1], confidence)
        for x, h in zip((A, C), half, strict=False):
            low, high = stats.t_interval(x, confidence)
            assert h == pytest.approx((high - low) / 2, rel=1e-12)
        assert np.isnan(half[2])


def test_a_sequential_run_is_judged_on_the_repeated_interval_of_its_decisive_look(tmp_path: Path) -> None:
    """Records of a sequential run: 3 seeds, then +2 while open (max 9). A 3-point gap with 0.2-point
    noise is undecided at 3 seeds (O'Brien–Fleming spends almost nothing there) and decided at 5; the
    report must use that look's repeated interval, not a fixed-design one over the seeds present."""
    from tinyab.analysis.model import Options
    from tinyab.analysis.report import build_report
    from tinyab.sequential import Sequential

    rng = np.random.default_rng(3)
    rows = []
    for s in range(5):
        for arm, mu in (("a", 0.43), ("b", 0.40)):
            rows.append({"trial_id": f"{arm}{s}", "status": "completed", "seed": s, KEY: arm,
                         "best_val_top1": mu + rng.normal(0, 0.002)})  # fmt: skip
    spec = {**SPEC, "seeds": [0, 1, 2], "margin": 0.02, "sequential": {"step": 2, "max_seeds": 9}}
    (tmp_path / "study.yaml").write_text(yaml.safe_dump(spec))
    study = StudyRecords("seq", [tmp_path], spec, pd.DataFrame(rows), None, None, [], None)
    report = build_report(study, Options(figures=False), tmp_path / "out")
    table = next(t.frame for t in report.tables if t.key == "comparisons").iloc[0]
    frame = pd.DataFrame(rows).pivot(index="seed", columns=KEY, values="best_val_top1")
    d = (frame["a"] - frame["b"]).to_numpy()
    design = Sequential(0.05, 1, 3, 2, 9)
    level = design.levels[1]  # the look at 5 seeds
    half = sps.t.ppf(1 - level / 2, 4) * d.std(ddof=1) / np.sqrt(5)
    assert table["seeds"] == 5 and table["verdict"] == "a better than b"
    assert (table["ci_low"], table["ci_high"]) == pytest.approx((d.mean() - half, d.mean() + half))
    low3, high3 = sps.t.interval(1 - design.levels[0], 2, loc=d[:3].mean(), scale=sps.sem(d[:3]))
    assert low3 < 0 < high3  # the first look could not decide: the replay went on
    assert any(line.startswith("Sequential seeds used 10 trials") for line in report.header)
