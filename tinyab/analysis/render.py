"""Render a :class:`~tinyab.analysis.model.StudyReport` as Markdown, CSV, LaTeX or one offline HTML file."""

from __future__ import annotations

import base64
import html
import re
import textwrap
import unicodedata

import pandas as pd

from tinyab.analysis.formatting import cell
from tinyab.analysis.model import StudyReport, Table

ID_COLUMNS = ("family", "a", "b", "arm")
VERDICT_COLUMNS = ("verdict", "delta", "contribution", "ci_low", "ci_high", "p_adj", "seeds")
MAX_COLUMNS = 9  # a table with verdicts and more columns is printed in two parts


def text_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """Every cell formatted with :func:`cell`."""
    return pd.DataFrame({c: [cell(v) for v in frame[c]] for c in frame.columns}, index=range(len(frame)))


def _numeric(column: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column)


def parts(table: Table) -> list[tuple[str, pd.DataFrame]]:
    """The printed table for HTML and LaTeX, verdict columns first (after the columns naming the
    comparison): a reader looks for the verdict and its interval before the tests behind it. A wider
    table with verdicts is split into verdicts and details, the naming columns repeated, so that each
    part fits a page (1400-px screen or a paper's text width) without scrolling or shrinking."""
    frame = table.shown
    if "verdict" not in frame.columns:
        return [("", frame)]
    ids = [c for c in ID_COLUMNS if c in frame.columns]
    verdict = [c for c in VERDICT_COLUMNS if c in frame.columns]
    rest = [c for c in frame.columns if c not in ids and c not in verdict]
    if len(frame.columns) <= MAX_COLUMNS:
        return [("", frame[ids + verdict + rest])]
    return [("verdicts", frame[ids + verdict]), ("details", frame[ids + rest])]


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


# LaTeX: plain pdflatex with booktabs and graphicx (texlive-latex-base and -recommended), no inputenc or
# fontenc assumptions: every character outside ASCII is written as a LaTeX command.
_LATEX_CHARS = {c: "\\" + c for c in "&%#_{}"} | {
    "$": r"\ensuremath{\$}",  # text-mode \$ is a bitmap (Type 3) glyph without T1 fonts
    "~": r"\textasciitilde{}",
    "^": r"\^{}",
    "\\": r"\textbackslash{}",
    "<": r"\textless{}",
    ">": r"\textgreater{}",
    "|": r"\textbar{}",
    '"': "''",
    "α": r"\ensuremath{\alpha}",
    "β": r"\ensuremath{\beta}",
    "Δ": r"\ensuremath{\Delta}",
    "η": r"\ensuremath{\eta}",
    "μ": r"\ensuremath{\mu}",
    "µ": r"\ensuremath{\mu}",
    "σ": r"\ensuremath{\sigma}",
    "²": r"\ensuremath{^{2}}",
    "±": r"\ensuremath{\pm}",
    "−": r"\ensuremath{-}",
    "×": r"\ensuremath{\times}",
    "·": r"\ensuremath{\cdot}",
    "→": r"\ensuremath{\rightarrow}",
    "≤": r"\ensuremath{\leq}",
    "≥": r"\ensuremath{\geq}",
    "≈": r"\ensuremath{\approx}",
    "≠": r"\ensuremath{\neq}",
    "√": r"\ensuremath{\surd}",
    "∞": r"\ensuremath{\infty}",
    "°": r"\ensuremath{^{\circ}}",
    "…": r"\ldots{}",
    "—": "---",
    "–": "--",
    "‘": "`",
    "’": "'",
    "“": "``",
    "”": "''",
    "\u00a0": "~",
}
_BREAK_AFTER = "/_=,"  # where a path or a key=value label may break in running text
_TEXT_MINUS = re.compile(r"(^|[\s(\[])-(?=\d)")  # '-0.5' in text is a minus sign; '5e-05' is not
_NUMBER = re.compile(r"^(-?)(\d[\d,]*(?:\.\d+)?)(?:e([+-]\d+))?$")
_CELL_CHARS = 24  # a text cell longer than this is set on several lines
_COLUMN_PT = 240  # one column of a two-column paper; wider tables go into table*


def latex_text(text: str, breaks: bool = False) -> str:
    """``text`` as LaTeX: specials escaped, Unicode written as commands (an unknown accented letter loses
    its accent, anything else becomes '?'), a leading '-' before a digit a minus sign; with ``breaks``,
    line breaks allowed after / _ = , so paths and long labels do not run into the margin."""
    out = []
    for ch in text:
        mapped = _LATEX_CHARS.get(ch)
        if mapped is None and not ch.isascii():
            mapped = unicodedata.normalize("NFKD", ch).encode("ascii", "ignore").decode() or "?"
        out.append(mapped if mapped is not None else ch)
        if breaks and ch in _BREAK_AFTER:
            out.append(r"\allowbreak{}")
    return _TEXT_MINUS.sub(r"\1\\ensuremath{-}", "".join(out))


def latex_number(text: str) -> str:
    """A formatted number with a real minus sign and 2.3e-05 as 2.3 × 10⁻⁵; other text as text."""
    match = _NUMBER.match(text)
    if match is None:
        return "---" if text == "—" else latex_text(text)
    sign, digits, exponent = match.groups()
    if not sign and exponent is None:
        return digits
    power = rf"\times 10^{{{int(exponent)}}}" if exponent else ""
    return rf"\ensuremath{{{'-' if sign else ''}{digits.replace(',', '{,}')}{power}}}"


_LATEX_HEADERS = {
    "delta": r"\ensuremath{\Delta}",
    "ci_low": "CI low",
    "ci_high": "CI high",
    "p": r"\ensuremath{p}",
    "p_adj": r"\ensuremath{p_{\mathrm{adj}}}",
    "p_alt": r"\ensuremath{p_{\mathrm{alt}}}",
    "hedges_g": r"Hedges' \ensuremath{g}",
    "p_improvement": r"\ensuremath{P(a\succ b)}",
    "mde": "MDE",
    "sd": "SD",
    "n": r"\ensuremath{n}",
    "F": r"\ensuremath{F}",
    "sum_sq": "SS",
    "partial_eta_sq": r"partial \ensuremath{\eta^{2}}",
}


def _latex_cell(text: str, numeric: bool) -> tuple[str, int]:
    """The cell's LaTeX and its width in characters; long text is stacked on lines of a nested tabular."""
    if numeric:
        return latex_number(text), len(text)
    lines = textwrap.wrap(text, _CELL_CHARS, break_long_words=False, break_on_hyphens=False) or [""]
    if len(lines) == 1:
        return latex_text(text), len(text)
    stacked = r"\\".join(latex_text(line) for line in lines)
    return rf"\begin{{tabular}}[t]{{@{{}}l@{{}}}}{stacked}\end{{tabular}}", max(map(len, lines))


def latex_tabular(frame: pd.DataFrame) -> tuple[str, float]:
    """A booktabs tabular (numbers right-aligned) and its estimated natural width in pt."""
    text = text_frame(frame)
    numeric = [_numeric(frame[c]) for c in frame.columns]
    cells = [
        [_latex_cell(v, num) for v, num in zip(row, numeric, strict=True)]
        for row in text.itertuples(index=False)
    ]
    headers = [_LATEX_HEADERS.get(str(c), latex_text(str(c).replace("_", " "))) for c in frame.columns]
    printed = [re.sub(r"\\[A-Za-z]+|[{}^_\\]", "", h) for h in headers]  # what the header shows
    chars = [max([len(h), *(row[i][1] for row in cells)]) for i, h in enumerate(printed)]
    spec = "".join("r" if num else "l" for num in numeric)
    lines = [
        rf"\begin{{tabular}}{{@{{}}{spec}@{{}}}}",
        r"\toprule",
        " & ".join(headers) + r" \\",
        r"\midrule",
    ]
    lines += [" & ".join(latex for latex, _ in row) + r" \\" for row in cells]
    lines += [r"\bottomrule", r"\end{tabular}"]
    return "\n".join(lines), sum(chars) * 4.6 + 8 * len(chars)  # \small: ~4.6 pt a character, 2 × 4 pt gaps


def _label(*names: str) -> str:
    return ":".join(re.sub(r"[^A-Za-z0-9]+", "-", n) for n in names)


def latex_table(report_name: str, table: Table) -> str:
    """One float: caption above (title and note), each part scaled down only if wider than the column."""
    pieces = parts(table)
    tabulars = [(title, *latex_tabular(frame)) for title, frame in pieces]
    env = "table*" if max(width for _, _, width in tabulars) > _COLUMN_PT else "table"
    caption = f"{report_name}: {table.title}." + (f" {table.note}" if table.note else "")
    lines = [
        rf"\begin{{{env}}}[tbp]",
        r"\centering\small\setlength{\tabcolsep}{4pt}",
        rf"\caption{{{latex_text(caption, breaks=True)}}}",
        rf"\label{{tab:{_label(report_name, table.key)}}}",
    ]
    for i, (title, tabular, _) in enumerate(tabulars):
        if title:
            lines.append(
                ("" if i == 0 else r"\medskip" + "\n")
                + rf"{{\footnotesize\itshape {latex_text(title)}}}\par\smallskip"
            )
        lines += [r"\tinyabfit{%", tabular + "}", ""]
    lines.append(rf"\end{{{env}}}")
    return "\n".join(lines)


_LATEX_PREAMBLE = r"""\usepackage{booktabs}
\usepackage{graphicx}"""

_FIT = (
    r"\providecommand{\tinyabfit}[1]{\setbox0=\hbox{#1}%" + "\n"
    r"  \ifdim\wd0>\linewidth\resizebox{\linewidth}{!}{\box0}\else\box0\fi}"
)


def to_latex(report: StudyReport) -> str:
    """report.tex: the tables as floats, to ``\\input`` into a paper whose preamble loads booktabs and
    graphicx (named at the top); wide tables are ``table*`` and shrink only if still too wide."""
    head = [
        f"% tinyab report: {report.name} -- tables for \\input{{report.tex}} (pdflatex).",
        "% Needs in the preamble:",
        *(f"%   {line}" for line in _LATEX_PREAMBLE.splitlines()),
        "% Wide tables are table* (full width in two columns); one still wider than that is scaled to fit.",
        _FIT,
    ]
    return "\n".join(head) + "\n\n" + "\n\n".join(latex_table(report.name, t) for t in report.tables) + "\n"


def to_latex_standalone(report: StudyReport) -> str:
    """A document that compiles by itself in the report's folder: header, verdicts, the tables of
    :func:`to_latex` and the figures as PDF."""
    items = [rf"\item {latex_text(v, breaks=True)}" for v in report.verdicts] or [r"\item (no comparison)"]
    body = [
        rf"\section*{{tinyab report: {latex_text(report.name)}}}",
        *(rf"\noindent {latex_text(line, breaks=True)}\par" for line in report.header),
        r"\subsection*{Verdicts}",
        r"\begin{itemize}",
        *items,
        r"\end{itemize}",
    ]
    for title, lines in (("Warnings", report.warnings), ("Notes", report.notes)):
        if lines:
            body += [rf"\subsection*{{{title}}}", r"\begin{itemize}"]
            body += [rf"\item {latex_text(n, breaks=True)}" for n in lines] + [r"\end{itemize}"]
    body.append(to_latex(report))
    if report.figures:
        body.append(r"\clearpage")
    for fig in report.figures:
        body += [
            r"\begin{figure}[tbp]",
            r"\centering",
            rf"\tinyabfit{{\includegraphics{{{fig.pdf.name}}}}}",
            rf"\caption{{{latex_text(fig.caption, breaks=True)}.}}",
            rf"\label{{fig:{_label(report.name, fig.name)}}}",
            r"\end{figure}",
        ]
    head = [r"\documentclass[10pt]{article}", r"\usepackage[margin=0.75in]{geometry}", _LATEX_PREAMBLE]
    head.append(r"\renewcommand{\labelitemi}{\ensuremath{\bullet}}")  # the text bullet is a bitmap font
    begin = [r"\begin{document}", r"\suppressfloats[t]"]  # the title first, then the tables
    return "\n".join([*head, *begin, *body, r"\end{document}", ""])


_CSS = """
body { font-family: system-ui, sans-serif; margin: 1.5em auto; max-width: 1320px; padding: 0 16px;
       color: #222; overflow-wrap: break-word; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; font-size: 13px; }
th, td { border: 1px solid #ccc; padding: 3px 6px; text-align: left; vertical-align: top; }
th { background: #f0f0f0; }
td.text { min-width: 5em; max-width: 22em; }
td.num, th.num { text-align: right; white-space: nowrap; font-variant-numeric: tabular-nums; }
.nw { white-space: nowrap; }
img { max-width: 100%; display: block; margin: 0.5em 0 1.5em; }
.warn { color: #8a4b00; }
.scroll { overflow-x: auto; }
.note { color: #555; font-style: italic; }
.part { color: #555; margin: 0.2em 0; font-size: 13px; }
"""


def _html_header(name: str) -> str:
    """A long column name may break after an underscore (p_<wbr>improvement); a short one stays whole."""
    text = html.escape(name)
    return text.replace("_", "_<wbr>") if len(name) > 8 else text


def _html_words(text: str) -> str:
    """Text that wraps at spaces only: 'weight_decay=5e-05' never splits at its hyphen."""
    return " ".join(f'<span class="nw">{w}</span>' if "-" in w else w for w in html.escape(text).split(" "))


def html_table(frame: pd.DataFrame, classes: str) -> str:
    """Numbers right-aligned on one line; text cells wrap between words."""
    text = text_frame(frame)
    numeric = [_numeric(frame[c]) for c in frame.columns]
    head = "".join(
        f'<th class="{"num" if num else "text"}">{_html_header(str(c))}</th>'
        for c, num in zip(frame.columns, numeric, strict=True)
    )
    rows = "".join(
        "<tr>"
        + "".join(
            f'<td class="num">{html.escape(v)}</td>' if num else f'<td class="text">{_html_words(v)}</td>'
            for v, num in zip(row, numeric, strict=True)
        )
        + "</tr>"
        for row in text.itertuples(index=False)
    )
    return f'<table class="{classes}"><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>'


def to_html(report: StudyReport) -> str:
    """One self-contained page: tables and figures (PNG embedded as base64), no external resources.

    Readable on a 1400-px screen: text cells wrap, a wide table with verdicts comes in two parts
    (verdicts first), so no column is cut off or hidden behind a scroll bar."""
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
        for title, frame in parts(table):
            if title:
                body.append(f'<p class="part">{esc(title)}</p>')
            classes = table.key if title in ("", "verdicts") else f"{table.key}-{title}"
            body.append(f'<div class="scroll">{html_table(frame, classes)}</div>')
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
