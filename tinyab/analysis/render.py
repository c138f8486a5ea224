"""Render a :class:`~tinyab.analysis.model.StudyReport` as Markdown, CSV, LaTeX or one offline HTML file."""

from __future__ import annotations

import base64
import html

import pandas as pd

from tinyab.analysis.formatting import cell
from tinyab.analysis.model import StudyReport

_LATEX_SPECIAL = {c: "\\" + c for c in "&%$#_{}"} | {
    "~": r"\textasciitilde{}",
    "^": r"\^{}",
    "\\": r"\textbackslash{}",
}


def text_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """Every cell formatted with :func:`cell`."""
    return pd.DataFrame({c: [cell(v) for v in frame[c]] for c in frame.columns}, index=range(len(frame)))


def markdown_table(frame: pd.DataFrame) -> str:
    text = text_frame(frame)
    lines = ["| " + " | ".join(map(str, text.columns)) + " |", "|" + "---|" * len(text.columns)]
    lines += [
        "| " + " | ".join(v.replace("|", "\\|") for v in row) + " |" for row in text.itertuples(index=False)
    ]
    return "\n".join(lines)


def to_markdown(report: StudyReport) -> str:
    parts = [f"# tinyab report: {report.name}", "", *report.header, "", "## Verdicts", ""]
    parts += [f"- {v}" for v in report.verdicts] or ["- (no comparison could be made)"]
    if report.warnings:
        parts += ["", "## Warnings", "", *(f"- {w}" for w in report.warnings)]
    for table in report.tables:
        parts += ["", f"## {table.title}", ""]
        if table.note:
            parts += [table.note, ""]
        parts.append(markdown_table(table.shown))
    if report.notes:
        parts += ["", "## Notes", "", *(f"- {n}" for n in report.notes)]
    if report.figures:
        parts += ["", "## Figures", "", *(f"- {f.caption}: {f.png}" for f in report.figures)]
    return "\n".join(parts) + "\n"


def to_csv_text(report: StudyReport) -> str:
    return "\n".join(f"# {t.key}: {t.title}\n{t.frame.to_csv(index=False)}" for t in report.tables)


def _latex_escape(text: str) -> str:
    return "".join(_LATEX_SPECIAL.get(ch, ch) for ch in text)


def latex_table(frame: pd.DataFrame, caption: str) -> str:
    text = text_frame(frame)
    lines = [
        r"\begin{table}[ht]",
        r"\centering",
        r"\begin{tabular}{" + "l" * len(text.columns) + "}",
        r"\hline",
        " & ".join(_latex_escape(str(c)) for c in text.columns) + r" \\",
        r"\hline",
    ]
    lines += [" & ".join(_latex_escape(v) for v in row) + r" \\" for row in text.itertuples(index=False)]
    lines += [r"\hline", r"\end{tabular}", rf"\caption{{{_latex_escape(caption)}}}", r"\end{table}"]
    return "\n".join(lines)


def to_latex(report: StudyReport) -> str:
    return "\n\n".join(latex_table(t.shown, f"{report.name}: {t.title}") for t in report.tables) + "\n"


_CSS = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1200px; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; font-size: 13px; }
th, td { border: 1px solid #ccc; padding: 3px 7px; text-align: right; white-space: nowrap; }
th { background: #f0f0f0; }
td:first-child, th:first-child { text-align: left; }
img { max-width: 100%; display: block; margin: 0.5em 0 1.5em; }
.warn { color: #8a4b00; }
.scroll { overflow-x: auto; }
.note { color: #555; font-style: italic; }
"""


def to_html(report: StudyReport) -> str:
    """One self-contained page: tables and figures (PNG embedded as base64), no external resources."""
    esc = html.escape
    body = [f"<h1>tinyab report: {esc(report.name)}</h1>"]
    body += [f"<p>{esc(line)}</p>" for line in report.header]
    body.append("<h2>Verdicts</h2><ul>")
    body += [f"<li>{esc(v)}</li>" for v in report.verdicts] or ["<li>(no comparison could be made)</li>"]
    body.append("</ul>")
    if report.warnings:
        body.append('<h2>Warnings</h2><ul class="warn">')
        body += [f"<li>{esc(w)}</li>" for w in report.warnings]
        body.append("</ul>")
    for table in report.tables:
        body.append(f'<h2 id="{esc(table.key)}">{esc(table.title)}</h2>')
        if table.note:
            body.append(f'<p class="note">{esc(table.note)}</p>')
        frame_html = text_frame(table.shown).to_html(index=False, escape=True, border=0, classes=table.key)
        body.append(f'<div class="scroll">{frame_html}</div>')
    if report.notes:
        body.append(
            '<h2>Notes</h2><ul class="note">' + "".join(f"<li>{esc(n)}</li>" for n in report.notes) + "</ul>"
        )
    if report.figures:
        body.append("<h2>Figures</h2>")
    for fig in report.figures:
        data = base64.b64encode(fig.png.read_bytes()).decode("ascii")
        body.append(f"<h3>{esc(fig.caption)}</h3>")
        body.append(f'<img alt="{esc(fig.caption)}" src="data:image/png;base64,{data}">')
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>tinyab report: {esc(report.name)}</title>"
        f'<link rel="icon" href="data:,"><style>{_CSS}</style></head>'
        "<body>\n" + "\n".join(body) + "\n</body></html>\n"
    )
