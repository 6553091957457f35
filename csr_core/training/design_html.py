"""A design's whole report as one self-contained HTML file: the README's text, a Δ chart per tower, the leaderboard.

For sharing a result outside the repository (a reviewer, a lab meeting): one file, no server, opens offline. The text
is the README that `design_render.render` writes (markdown rendered with markdown-it, raw HTML in it escaped, so a
model name can never inject markup); plotly.js is inlined once, so every chart stays interactive without internet.
"""

from __future__ import annotations

import html
from collections.abc import Sequence

from csr_core.training import design_render, design_report
from csr_core.training.design_report import DesignReport, TowerReport

_STYLE = """body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;max-width:1200px;margin:2em auto;padding:0 1em;
line-height:1.45;color:#222}table{border-collapse:collapse;font-size:.85em;margin:1em 0}th,td{border:1px solid #ccc;
padding:.25em .5em;text-align:left}th{background:#f3f3f3}code{background:#f3f3f3;padding:0 .2em}
.chart{margin:1.5em 0}"""


def _markdown(text: str) -> str:
    from markdown_it import MarkdownIt

    return MarkdownIt("commonmark", {"html": False}).enable("table").render(text)


def delta_chart(tower: TowerReport, arms: Sequence[str] | None = None):
    """The answer as a chart: Δ vs EN-only per language, close → distant, for `arms` (None: the headline arms).
    The Overview shows it and the HTML report embeds it."""
    from csr_core import viz

    return viz.arm_delta_bars(design_report.delta_frame(tower, arms or None),
                              title=f"{design_render.TOWER_LABEL.get(tower.tower, tower.tower)}: Δ vs EN-only, "
                                    f"text→image R@{design_report.PRIMARY_K}: English, close → distant (seeds "
                                    "pooled, Holm over the declared family)",
                              x_order=design_report.lang_order(tower.langs))


def delta_charts(report: DesignReport) -> list:
    """`delta_chart` of every tower that has declared tests."""
    return [delta_chart(t) for t in report.towers if t.f1]


def render_html(report: DesignReport) -> str:
    """The report page as one HTML document (a string; the caller writes it atomically)."""
    charts = delta_charts(report)
    figures = [f'<div class="chart">{chart.fig.to_html(full_html=False, include_plotlyjs=(i == 0))}</div>'
               for i, chart in enumerate(charts)]
    board = design_report.leaderboard(report)
    title = html.escape(f"CSR Lab — {report.run_set or 'experiment'} report")
    parts = [
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">', f"<title>{title}</title>",
        f"<style>{_STYLE}</style></head><body>",
        "<h2>The answer</h2>", _markdown("\n".join(design_render.answer_lines(report))),
        *figures,
        "<h2>Leaderboard</h2>",
        "<p>One row per tower × arm: mean over seeds (± sd over seeds) per language, direction and K.</p>",
        board.to_html(index=False, na_rep="—", escape=True, border=0),
        "<hr>", _markdown(design_render.render(report)),
        "</body></html>",
    ]
    return "\n".join(parts) + "\n"
