"""The LaTeX report compiles with Debian's pdflatex (texlive-latex-base + texlive-latex-recommended):
report.tex \\input into a two-column paper with nothing too wide, the standalone document with its PDF
figures and no bitmap fonts, and every Unicode character the report writes mapped to LaTeX."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pandas as pd
import pytest

from helpers.records import write_ablation, write_factorial
from tinyab.analysis import render
from tinyab.analysis.model import Options, StudyReport, Table
from tinyab.analysis.report import report
from tinyab.cli import main

PAPER = r"""\documentclass[twocolumn]{article}
\usepackage{booktabs}
\usepackage{graphicx}
\begin{document}
Some text of the paper.
\input{report.tex}
\end{document}
"""


def pdflatex(folder: Path, name: str) -> str:
    """Compile ``name`` in ``folder`` twice (references settle) and return the log. The PDF is written
    uncompressed so that its fonts can be checked: vector only, as venues reject bitmap (Type 3) fonts."""
    exe = shutil.which("pdflatex")
    if exe is None:
        pytest.fail("pdflatex not found: apt-get install -y texlive-latex-base texlive-latex-recommended")
    for _ in range(2):
        proc = subprocess.run(
            [
                exe,
                "-halt-on-error",
                "-interaction=nonstopmode",
                "-jobname=out",
                rf"\pdfobjcompresslevel=0 \input{{{name}}}",
            ],
            cwd=folder,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert proc.returncode == 0, proc.stdout[-3000:]
    assert b"/Type3" not in (folder / "out.pdf").read_bytes()
    return (folder / "out.log").read_text(errors="replace")


@pytest.mark.parametrize("kind", ["factorial", "ablation"])
def test_report_tex_inputs_into_a_two_column_paper(tmp_path: Path, kind: str) -> None:
    run = (
        write_factorial(tmp_path / "init_vs_wd" / "run1")
        if kind == "factorial"
        else write_ablation(tmp_path / "ablate" / "run1", {"no_flip": -0.03, "no_crop": 0.0})
    )
    out = tmp_path / "rep"
    assert main(["report", str(run), "--format", "latex", "--out", str(out), "--no-figures"]) == 0
    tex = (out / "report.tex").read_text()
    assert tex.isascii()  # α, Δ, −, ×, η² ... all written as LaTeX
    assert r"\usepackage{booktabs}" in tex.split(r"\providecommand")[0]  # what it needs, named at the top
    assert r"\toprule" in tex and r"\ensuremath{-" in tex  # booktabs rules, minus signs
    assert re.search(r"\\begin\{tabular\}\{@\{\}l+r+", tex)  # names left, numbers right
    (out / "paper.tex").write_text(PAPER)
    log = pdflatex(out, "paper.tex")
    assert "Overfull \\hbox" not in log  # every table fits its column or the text width
    assert "Missing character" not in log and "undefined" not in log.lower()


def test_standalone_document_compiles_with_its_pdf_figures(tmp_path: Path) -> None:
    run = write_factorial(tmp_path / "init_vs_wd" / "run1")
    out = tmp_path / "rep"
    (rep,), _ = report(run, Options(alpha=0.1), out)
    (out / "report_standalone.tex").write_text(render.to_latex_standalone(rep))
    log = pdflatex(out, "report_standalone.tex")
    for name in ("learning_curves", "arms", "interaction", "schedule", "forest"):
        assert f"{name}.pdf" in log
    assert "Overfull \\hbox" not in log


def test_unicode_and_numbers_are_mapped_to_latex(tmp_path: Path) -> None:
    assert render.latex_number("-0.0013") == r"\ensuremath{-0.0013}"
    assert render.latex_number("2.3e-05") == r"\ensuremath{2.3\times 10^{-5}}"
    assert render.latex_number("-1,234") == r"\ensuremath{-1{,}234}" and render.latex_number("0.5") == "0.5"
    assert render.latex_text("Δ [-0.5, 5e-05]") == r"\ensuremath{\Delta} [\ensuremath{-}0.5, 5e-05]"
    text = "α = 0.05 ± 0.01 − 2 × 3 · η² ≤ 1 → “ok” … 5% of $1 & #2 {x_y} ~ ^ \\ | <> café 漢"
    escaped = render.latex_text(text, breaks=True)
    assert escaped.isascii() and "caf" in escaped and "?" in escaped  # é loses its accent, 漢 is '?'
    frame = pd.DataFrame({"name": [text, "scheme=variance_scaling, weight_decay=5e-05 better than xavier"],
                          "value": [-0.25, 3.1e-7]})  # fmt: skip
    study = StudyReport("ünïcode_study", tmp_path, [], [], tables=[Table("t", text, frame, text)])
    (tmp_path / "report.tex").write_text(render.to_latex(study))
    (tmp_path / "paper.tex").write_text(PAPER)
    log = pdflatex(tmp_path, "paper.tex")
    assert "Overfull \\hbox" not in log and "Missing character" not in log
