"""`tinyab report` end to end on records in the documented format: tables checked against independent
computations, output files, formats, ablations, sampled searches (isolation, fANOVA on a real optuna.db),
and every robustness case (empty folder, cut records, single seed, all failed) as exit code + message."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from helpers.records import (
    INIT,
    WD,
    factorial_rows,
    study_spec,
    write_ablation,
    write_factorial,
    write_run,
    write_sampled_search,
)
from tinyab.analysis import figures, tables
from tinyab.analysis.design import resolve_design
from tinyab.cli import main
from tinyab.records.reader import load_studies


def run_cli(capsys: pytest.CaptureFixture, *args: str) -> tuple[int, str, str]:
    code = main(["report", *map(str, args)])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def factorial(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A smoke-like init × wd study, 5 seeds, reported once with figures into <run>/report."""
    run = write_factorial(tmp_path_factory.mktemp("res") / "init_vs_wd" / "run1")
    assert main(["report", str(run.parent.parent)]) == 0
    return run


def test_report_without_ray_prints_verdicts_first(factorial: Path) -> None:
    code = (
        "import sys; sys.modules['ray'] = None\n"
        "from tinyab.cli import main\n"
        f"rc = main(['report', {str(factorial)!r}, '--no-figures', '--out', {str(factorial / 'noray')!r}])\n"
        "assert 'ray' not in sys.modules or sys.modules['ray'] is None\n"
        "sys.exit(rc)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert (
        out.index("## Verdicts")
        < out.index("## Arms")
        < out.index("## Comparisons")
        < out.index("## Factorial ANOVA")
    )
    verdicts = out[out.index("## Verdicts") : out.index("## Arms")]
    assert (
        "init.scheme: variance_scaling vs xavier" in verdicts
        and "→ variance_scaling better than xavier" in verdicts
    )
    assert "Bonferroni over the 2 comparisons" in out and "init.scheme × optim.weight_decay" in out


def test_arms_table_matches_an_independent_computation(factorial: Path) -> None:
    arms = pd.read_csv(factorial / "report" / "arms.csv")
    trials = pd.read_csv(factorial / "trials.csv")
    assert len(arms) == 4 and (arms["n"] == 5).all() and (arms["ci_method"] == "t").all()
    for row in arms.to_dict("records"):
        values = trials.loc[(trials[INIT] == row[INIT]) & np.isclose(trials[WD], row[WD]), "best_val_top1"]
        ci = sps.t.interval(0.95, len(values) - 1, loc=values.mean(), scale=sps.sem(values))
        assert row["mean"] == pytest.approx(values.mean()) and row["sd"] == pytest.approx(values.std(ddof=1))
        assert (row["ci_low"], row["ci_high"]) == pytest.approx(ci)
        assert row["best"] == pytest.approx(values.max()) and row["median"] == pytest.approx(values.median())
    assert arms["gap_train_val"].to_numpy() == pytest.approx(0.05, abs=1e-6)  # the writer's train − val gap


def test_comparisons_are_paired_by_seed_with_simultaneous_intervals(factorial: Path) -> None:
    comp = pd.read_csv(factorial / "report" / "comparisons.csv").set_index("family")
    trials = pd.read_csv(factorial / "trials.csv").sort_values([WD, "seed"])
    a = trials.loc[trials[INIT] == "variance_scaling", "best_val_top1"].to_numpy()
    b = trials.loc[trials[INIT] == "xavier", "best_val_top1"].to_numpy()
    row = comp.loc[INIT]
    assert row["design"] == "paired (10 pairs)" and row["test"] == "paired t"
    p = sps.ttest_rel(a, b).pvalue
    assert row["p"] == pytest.approx(p)
    assert row["p_adj"] == pytest.approx(min(1.0, 2 * p))  # Bonferroni over the 2 comparisons
    d = a - b
    half = sps.t.ppf(1 - 0.05 / 2 / 2, len(d) - 1) * sps.sem(d)  # simultaneous 97.5%: level α/m
    assert (row["ci_low"], row["ci_high"]) == pytest.approx((d.mean() - half, d.mean() + half))
    assert row["verdict"] == "variance_scaling better than xavier" and row["ci_low"] > 0
    anova = pd.read_csv(factorial / "report" / "anova.csv").set_index("source")
    assert set(anova.index) == {INIT, WD, f"{INIT} × {WD}", "seed", "Residual"}  # seeds shared: a block
    import statsmodels.formula.api as smf
    from statsmodels.stats.anova import anova_lm

    frame = trials.rename(columns={INIT: "init", WD: "wd", "best_val_top1": "y"})
    ref = anova_lm(smf.ols("y ~ C(init) * C(wd) + C(seed)", data=frame).fit(), typ=2)
    assert anova.loc[INIT, "p"] == pytest.approx(ref.loc["C(init)", "PR(>F)"], rel=1e-9)
    assert anova.loc[f"{INIT} × {WD}", "F"] == pytest.approx(ref.loc["C(init):C(wd)", "F"], rel=1e-9)
    assert anova.loc[INIT, "p"] < 0.001 and anova.loc[f"{INIT} × {WD}", "p"] > 0.05


def test_out_folder_has_every_table_figure_and_no_temp_files(factorial: Path) -> None:
    out = factorial / "report"
    names = {p.name for p in out.iterdir()}
    for stem in ("learning_curves", "arms", "interaction", "schedule"):
        assert {f"{stem}.png", f"{stem}.svg", f"{stem}.pdf"} <= names
        assert (out / f"{stem}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert (out / f"{stem}.svg").read_text().lstrip().startswith("<?xml")
        assert (out / f"{stem}.pdf").read_bytes()[:5] == b"%PDF-"
    assert {"arms.csv", "comparisons.csv", "anova.csv", "per_class.csv", "report.md", "report.html"} <= names
    assert not [n for n in names if n.endswith(".tmp")]
    per_class = pd.read_csv(out / "per_class.csv")
    assert per_class["rank"].tolist()[:1] == ["top 1"] and per_class["name"].iloc[0] == "acorn"
    assert per_class["arm"].iloc[0] == "scheme=variance_scaling, weight_decay=0.0005"


@pytest.mark.parametrize(
    ("fmt", "marker"), [("csv", "# arms: Arms"), ("latex", r"\begin{tabular}"), ("html", "report.html")]
)
def test_formats(capsys, factorial: Path, tmp_path: Path, fmt: str, marker: str) -> None:
    code, out, _ = run_cli(capsys, factorial, "--format", fmt, "--out", tmp_path, "--no-figures")
    assert code == 0 and marker in out
    if fmt == "html":
        assert Path(out.strip()) == tmp_path / "report.html"


def test_baseline_and_by(capsys, factorial: Path, tmp_path: Path) -> None:
    code, _, _ = run_cli(
        capsys, factorial, "--baseline", f"{INIT}=xavier", f"{WD}=5e-5", "--out", tmp_path, "--no-figures"
    )
    assert code == 0
    comp = pd.read_csv(tmp_path / "comparisons.csv")
    assert len(comp) == 3 and set(comp["b"]) == {"scheme=xavier, weight_decay=5e-05"}
    assert (comp["design"] == "paired (5 pairs)").all()
    assert (tmp_path / "anova.csv").is_file()
    code, _, _ = run_cli(capsys, factorial, "--by", INIT, "--out", tmp_path, "--no-figures")
    assert code == 0 and len(pd.read_csv(tmp_path / "arms.csv")) == 2
    assert not (tmp_path / "anova.csv").exists()  # one factor: no ANOVA, and the old table is gone


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--by", "init.schem"],
            "--by init.schem: no such column in trials.csv (did you mean 'init.scheme'?)",
        ),
        (["--baseline", f"{INIT}=he"], f"--baseline {INIT}=he: no such level"),
        (["--baseline", "nonsense"], "--baseline nonsense: expected KEY=VALUE"),
        (["--metric", "best_val_top"], "--metric best_val_top: no such column in trials.csv (did you mean"),
        (["--alpha", "1.5"], "--alpha 1.5: expected a number between 0 and 1"),
    ],
)
def test_bad_arguments_are_one_line_errors(capsys, factorial: Path, tmp_path: Path, args, message) -> None:
    code, _, err = run_cli(capsys, factorial, *args, "--out", tmp_path, "--no-figures")
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1


def test_empty_folder_is_a_clear_error_in_a_subprocess(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "tinyab", "report", str(tmp_path)], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    expected = f"{tmp_path}: no tinyab records found (expected folders with study.yaml and trials.csv)"
    assert proc.stderr.strip() == f"tinyab: error: {expected}"


def test_records_cut_by_a_killed_search_are_reported_with_a_warning(capsys, tmp_path: Path) -> None:
    run = write_factorial(tmp_path / "run")
    text = (run / "trials.csv").read_text()
    (run / "trials.csv").write_text(text[: len(text) - 30])
    code, out, err = run_cli(capsys, run, "--no-figures")
    assert code == 0 and "warning:" in err and "last line is incomplete" in err
    assert "## Warnings" in out and pd.read_csv(run / "report" / "arms.csv")["n"].sum() == 19


def test_single_seed_arm_has_no_ci_and_is_not_tested(capsys, tmp_path: Path) -> None:
    rows = [r for r in factorial_rows() if not (r[INIT] == "xavier" and (r["seed"] > 0 or r[WD] == 5e-4))]
    run = write_run(tmp_path / "run", study_spec(), rows)
    code, _, err = run_cli(capsys, run, "--by", INIT, "--baseline", f"{INIT}=xavier", "--no-figures")
    assert code == 0 and "fewer than 2 completed seeds: no CI" in err
    arms = pd.read_csv(run / "report" / "arms.csv").set_index(INIT)
    assert arms.loc["xavier", "ci_method"] == "none (n=1)" and np.isnan(arms.loc["xavier", "ci_low"])
    comp = pd.read_csv(run / "report" / "comparisons.csv")
    assert comp["verdict"].iloc[0].startswith("not testable")


def test_all_failed_is_a_clear_error(capsys, tmp_path: Path) -> None:
    rows = [r | {"status": "failed"} for r in factorial_rows(seeds=2)]
    run = write_run(tmp_path / "run", study_spec(), rows)
    code, out, err = run_cli(capsys, run)
    assert code == 2 and out == ""
    assert (
        "no completed trial with a metric value (8 failed); first error: RuntimeError: CUDA out of memory"
        in err
    )
    assert not (run / "report").exists()


def test_header_only_records_are_a_clear_error(capsys, tmp_path: Path) -> None:
    run = write_factorial(tmp_path / "run")
    (run / "trials.csv").write_text((run / "trials.csv").read_text().splitlines()[0] + "\n")
    code, _, err = run_cli(capsys, tmp_path)
    assert code == 2 and "no finished trials in 1 run(s) yet" in err


def test_ablation_table_uses_rerun_rows_and_reports_cost(capsys, tmp_path: Path) -> None:
    root = write_ablation(tmp_path / "ablate" / "run1", {"no_flip": -0.03, "no_crop": 0.0})
    code, out, err = run_cli(capsys, root)
    assert code == 0, err
    table = pd.read_csv(root / "report" / "ablation.csv").set_index("arm")
    trials = pd.read_csv(root / "rerun" / "trials.csv").sort_values("seed")
    base = trials.loc[trials["arm"] == "baseline", "best_val_top1"].to_numpy()
    flip = trials.loc[trials["arm"] == "no_flip", "best_val_top1"].to_numpy()
    assert table.loc["no_flip", "contribution"] == pytest.approx(base.mean() - flip.mean())
    assert table.loc["no_flip", "p"] == pytest.approx(sps.ttest_rel(base, flip).pvalue)
    assert table.loc["no_flip", "verdict"] == "baseline better than no_flip"
    assert (
        table.loc["no_flip", "cost"] == pytest.approx(4 * 60.0)
        and table.loc["no_flip", "cost_unit"] == "CPU-s"
    )
    assert table.loc["no_flip", "tune_cost"] == pytest.approx(2 * 60.0)
    assert (root / "report" / "forest.png").is_file() and "## Ablation" in out


def test_sampled_search_has_isolation_importance_and_pruning(capsys, tmp_path: Path) -> None:
    run = write_sampled_search(tmp_path / "wd_search" / "run1")
    code, out, err = run_cli(capsys, run)
    assert code == 0, err
    iso = pd.read_csv(run / "report" / "isolation.csv")
    assert set(iso["param"]) == {WD} and set(iso[INIT]) == {"xavier", "variance_scaling"}
    trials = pd.read_csv(run / "trials.csv")
    assert iso["n"].sum() == (trials["status"] == "completed").sum()
    importance = pd.read_csv(run / "report" / "importance.csv")
    assert set(importance["param"]) == {INIT, WD} and importance["importance"].sum() == pytest.approx(1.0)
    assert "fANOVA importance (descriptive)" in out
    comp = pd.read_csv(run / "report" / "comparisons.csv")
    assert comp["test"].tolist() == ["Welch t"]  # sampled nuisance values differ: nothing to pair
    assert (run / "report" / "pruning.png").is_file()
    arms = pd.read_csv(run / "report" / "arms.csv")
    assert arms["pruned"].sum() == (trials["status"] == "pruned").sum()


def test_no_optuna_db_is_a_note(factorial: Path) -> None:
    assert (
        "fANOVA importance: no optuna.db in the run; skipped."
        in (factorial / "report" / "report.md").read_text()
    )


def test_figures_label_the_confidence_the_report_used(factorial: Path, tmp_path: Path) -> None:
    ablation = write_ablation(tmp_path / "ablate" / "run1", {"no_flip": -0.03, "no_crop": 0.0})
    # 1 − α for arms and curves; the comparisons' simultaneous level 1 − α/m (m = 2 here) for the forest
    labels = {"learning_curves": "90% CI", "arms": "90% CI", "interaction": "90% CI"}
    labels["forest"] = "simultaneous 95% CI"
    drawn = set()
    for run, out in ((factorial, tmp_path / "factorial"), (ablation, tmp_path / "ablation")):
        assert main(["report", str(run), "--alpha", "0.1", "--out", str(out)]) == 0
        for svg in out.glob("*.svg"):
            text = svg.read_text()
            assert "<text" in text, svg.name  # text kept as text (svg.fonttype none)
            if svg.stem in labels:
                assert labels[svg.stem] in text and text.count("% CI") == text.count(labels[svg.stem]), svg
                drawn.add(svg.stem)
    assert drawn == set(labels)


def _error_bars(fig) -> np.ndarray:
    """(low, high) of every horizontal error bar of a figure's first axes, one row per bar."""
    (container,) = fig.axes[0].containers
    return np.array([(seg[0][0], seg[1][0]) for seg in container.lines[2][0].get_segments()])


def test_figures_draw_the_intervals_of_the_tables(tmp_path: Path) -> None:
    root = write_ablation(tmp_path / "ablate" / "run1", {"no_flip": -0.03, "no_crop": 0.0})
    (study,), _ = load_studies(root)
    design = resolve_design(study, None, None)
    arms = tables.arms_table(design, 0.8)
    fig = figures.arm_comparison(design, arms, 0.8)
    np.testing.assert_allclose(_error_bars(fig), arms[["ci_low", "ci_high"]].to_numpy())
    rule = tables.Rule(0.2, margin=0.01)
    comparisons, _ = tables.comparisons_table(design, rule, {"arm": "baseline"})
    fig = figures.forest(comparisons, design.metric, rule.interval(len(comparisons)), rule.margin)
    np.testing.assert_allclose(_error_bars(fig), comparisons[["ci_low", "ci_high"]].to_numpy())
    assert "simultaneous 90% CI" in fig.axes[0].get_xlabel()  # 1 − 0.2/2


def test_figures_are_a_paper_column_or_text_wide_with_labels_people_read(factorial: Path) -> None:
    widths = {}
    for svg in (factorial / "report").glob("*.svg"):
        text = svg.read_text()
        widths[svg.stem] = float(re.search(r'<svg[^>]* width="([0-9.]+)pt"', text).group(1)) / 72
        labels = re.findall(r"<text[^>]*>([^<]*)</text>", text)
        assert not {"val_top1", "train_top1", "best_val_top1", "lr", "resolution"} & set(labels), svg.name
    # two panels span the text width (figure*), one panel a column
    assert widths == pytest.approx(
        {"learning_curves": 6.9, "arms": 3.3, "interaction": 6.9, "schedule": 6.9, "forest": 3.3}
    )
    curves = (factorial / "report" / "learning_curves.svg").read_text()
    assert all(f">{label}<" in curves for label in ("validation top-1", "training top-1", "epoch"))


def _curves_figures(tmp_path: Path):
    run = write_factorial(tmp_path / "init_vs_wd" / "run1")
    (study,), _ = load_studies(run)
    design = resolve_design(study, None, None)
    arms = tables.arms_table(design, 0.9)
    return study, design, arms


def _overlaps(a, b) -> bool:
    return a.x0 < b.x1 and b.x0 < a.x1 and a.y0 < b.y1 and b.y0 < a.y1


def test_factors_are_encoded_by_colour_and_line_style_and_legends_stay_off_the_data(tmp_path: Path) -> None:
    study, design, arms = _curves_figures(tmp_path)
    comparisons, _ = tables.comparisons_table(design, tables.Rule(0.1, margin=0.01), None)
    drawn = {
        "learning_curves": figures.learning_curves(design, study.epochs, arms, 0.9),
        "arms": figures.arm_comparison(design, arms, 0.9),
        "interaction": figures.interaction(design, 0.9),
        "schedule": figures.schedule(design, study.epochs, arms),
        "forest": figures.forest(comparisons, design.metric, "simultaneous 95% CI", 0.01),
    }
    for name, fig in drawn.items():
        fig.canvas.draw()
        renderer = fig.canvas.get_renderer()
        legends = [*fig.legends, *(ax.get_legend() for ax in fig.axes if ax.get_legend())]
        assert legends or name == "schedule", name  # one schedule for every arm: nothing to tell apart
        for legend in legends:
            for ax in fig.axes:
                assert not _overlaps(legend.get_window_extent(renderer), ax.get_window_extent(renderer)), name
    # learning curves: one colour per init scheme, one line style per weight decay
    lines = [line for line in drawn["learning_curves"].axes[0].get_lines()]
    order = design.trials.drop_duplicates("arm").set_index("arm").loc[arms["arm"]]
    assert len(lines) == 4
    colours = {(init, line.get_color()) for init, line in zip(order[INIT], lines, strict=True)}
    styles = {(wd, line.get_linestyle()) for wd, line in zip(order[WD], lines, strict=True)}
    assert len(colours) == 2 and len({c for _, c in colours}) == 2
    assert len(styles) == 2 and len({s for _, s in styles}) == 2
    # interaction: the weight decays' intervals at one init scheme are side by side, not on top
    left = drawn["interaction"].axes[0]
    xs = np.array([container.lines[0].get_xdata() for container in left.containers], dtype=float)
    assert xs.shape == (2, 2) and (np.diff(xs, axis=0) > 0.05).all()
    for fig in drawn.values():
        plt.close(fig)


def test_schedule_leaves_out_what_never_changes(tmp_path: Path) -> None:
    study, design, arms = _curves_figures(tmp_path)
    fig = figures.schedule(design, study.epochs, arms)
    assert [ax.get_ylabel() for ax in fig.axes] == ["learning rate", "training resolution (px)"]
    study.epochs["resolution"] = 64  # progressive resizing off
    fig = figures.schedule(design, study.epochs, arms)
    assert [ax.get_ylabel() for ax in fig.axes] == ["learning rate"]
    study.epochs["lr"] = 0.1  # and a constant learning rate: nothing to draw
    assert figures.schedule(design, study.epochs, arms) is None
    plt.close("all")


def test_analysis_modules_import_each_other_without_a_circle() -> None:
    folder = Path(figures.__file__).parent
    imports = {}
    for path in folder.glob("*.py"):
        found = set()
        for node in ast.walk(ast.parse(path.read_text())):  # every import, also under TYPE_CHECKING
            if isinstance(node, ast.ImportFrom) and node.module == "tinyab.analysis":
                found |= {alias.name for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("tinyab.analysis."):
                found.add(node.module.split(".")[2])
        imports[path.stem] = found & {p.stem for p in folder.glob("*.py")}
    assert "report" not in imports["render"]
    done: set[str] = set()

    def visit(module: str, path: tuple[str, ...]) -> None:
        assert module not in path, " -> ".join((*path, module))
        if module not in done:
            for other in imports[module]:
                visit(other, (*path, module))
            done.add(module)

    for module in imports:
        visit(module, ())
