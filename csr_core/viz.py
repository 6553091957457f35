"""Plotly figure builders shared by the dashboard pages and the CLI's PNG export (no streamlit here).

Every builder takes a tidy table and returns a `Chart`: the figure *and* the exact table it plots, so a page can
show the numbers under each chart and offer them as CSV. `*_table` helpers turn results rows
(`csr_core.results.ROW_COLUMNS`) into those tables. Recall values are percent in [0, 100] (docs/conventions.md).
"""

from __future__ import annotations

import math
import os
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Mapping, Sequence

import numpy as np
import pandas as pd
import plotly.express as px
import plotly.graph_objects as go

from csr_core.errors import CSRError, DataError
from csr_core.languages import display_order

if TYPE_CHECKING:
    from csr_core.languages import CorrelationResult
    from csr_core.pairs import MantelResult

# Qualitative palette so a language / arm keeps its colour across charts of one page: plotly's default ten, then
# Dark24's distinct others — 34 colours, more than any capped view shows (MAX_HEATMAP_ROWS series), so none repeats.
PALETTE: tuple[str, ...] = tuple(dict.fromkeys([*px.colors.qualitative.Plotly, *px.colors.qualitative.Dark24]))
SEQUENTIAL = "Viridis"
DIVERGING = "RdBu"
NO_DATA = "no data for this selection"


@dataclass
class Chart:
    """A figure and the tidy table behind it (what a page shows under the chart and exports as CSV)."""

    fig: go.Figure
    table: pd.DataFrame
    title: str = ""
    notes: list[str] = field(default_factory=list)
    stats: dict[str, Any] = field(default_factory=dict)

    def csv(self) -> bytes:
        return self.table.to_csv(index=False).encode("utf-8")


def _need(table: pd.DataFrame, columns: Iterable[str], what: str) -> None:
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise DataError(f"{what}: table lacks column(s) {missing}; it has {list(table.columns)}")


def _empty(title: str, table: pd.DataFrame, note: str = NO_DATA) -> Chart:
    fig = go.Figure()
    fig.add_annotation(text=note, x=0.5, y=0.5, xref="paper", yref="paper", showarrow=False, font=dict(size=16))
    fig.update_layout(title=title, xaxis=dict(visible=False), yaxis=dict(visible=False), height=300)
    return Chart(fig, table.reset_index(drop=True), title, [note])


def _ordered(values: Iterable[Any], order: Sequence[Any] | None) -> list[Any]:
    seen = list(dict.fromkeys(values))
    if not order:
        return seen
    first = [v for v in order if v in seen]
    return first + [v for v in seen if v not in first]


def _num(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


# ---- heatmaps ----------------------------------------------------------------------------------------------------
MAX_HEATMAP_ROWS = 30  # rows a heatmap page shows by default (readable at 1440×900); the rest one choice away


def heatmap(table: pd.DataFrame, x: str, y: str, *, value: str = "value", title: str = "", value_label: str = "R@K %",
            zmin: float | None = 0.0, zmax: float | None = 100.0, fmt: str = ".1f", x_order: Sequence | None = None,
            y_order: Sequence | None = None, colorscale: str = SEQUENTIAL) -> Chart:
    """Cells annotated with their value (text_auto); 95% CI and query count on hover (customdata)."""
    _need(table, (x, y, value), "heatmap")
    if table[[x, y]].duplicated().any():
        dup = table[table[[x, y]].duplicated(keep=False)].iloc[0]
        raise DataError(f"heatmap: two rows for cell ({y}={dup[y]!r}, {x}={dup[x]!r}); pick one run/arm per row first")
    cols = [c for c in (y, x, value, "ci_low", "ci_high", "n_queries", "n_seeds", "value_sd") if c in table.columns]
    tidy = table[cols].reset_index(drop=True)
    if tidy.empty:
        return _empty(title, tidy)
    xs = _ordered(tidy[x], x_order)
    ys = _ordered(tidy[y], y_order)

    def grid(column: str) -> np.ndarray:
        if column not in tidy.columns:
            return np.full((len(ys), len(xs)), np.nan)
        wide = tidy.pivot(index=y, columns=x, values=column).reindex(index=ys, columns=xs)
        return wide.to_numpy(dtype=float)

    z = grid(value)
    pooled = "n_seeds" in tidy.columns  # seed-pooled rows (pool_seeds) add the seeds and their sd to the hover
    channels = ["ci_low", "ci_high", "n_queries"] + (["n_seeds", "value_sd"] if pooled else [])
    custom = np.dstack([grid(c) for c in channels])
    fig = px.imshow(z, x=[str(v) for v in xs], y=[str(v) for v in ys], text_auto=fmt, aspect="auto",
                    color_continuous_scale=colorscale, zmin=zmin, zmax=zmax,
                    labels=dict(x=x, y=y, color=value_label))
    fig.update_traces(customdata=custom, hovertemplate=(
        f"{y}=%{{y}}<br>{x}=%{{x}}<br>{value_label} %{{z:{fmt}}}"
        "<br>95% CI [%{customdata[0]:.1f}, %{customdata[1]:.1f}]<br>n=%{customdata[2]}"
        + ("<br>mean of %{customdata[3]} seeds, sd %{customdata[4]:.1f}" if pooled else "")
        + "<extra></extra>"))
    fig.update_layout(title=title, height=max(280, 90 + 42 * len(ys)), margin=dict(l=10, r=10, t=80, b=10))
    fig.update_xaxes(side="top", type="category", title=None)
    fig.update_yaxes(type="category")
    return Chart(fig, tidy, title)


def difference_heatmap(table: pd.DataFrame, x: str, y: str, *, value: str = "delta", title: str = "",
                       value_label: str = "Δ points", fmt: str = "+.1f", x_order: Sequence | None = None,
                       y_order: Sequence | None = None) -> Chart:
    """A − B on a diverging scale centred on zero (colour says the sign, not the size of the plain values)."""
    _need(table, (x, y, value), "difference_heatmap")
    finite = pd.to_numeric(table[value], errors="coerce").abs()
    span = float(finite.max()) if finite.notna().any() and float(finite.max()) > 0 else 1.0
    chart = heatmap(table, x, y, value=value, title=title, value_label=value_label, zmin=-span, zmax=span, fmt=fmt,
                    x_order=x_order, y_order=y_order, colorscale=DIVERGING)
    if chart.table.empty:
        return chart
    chart.fig.update_layout(coloraxis=dict(cmid=0.0, cmin=-span, cmax=span))
    for column in ("value_a", "value_b"):
        if column in table.columns:
            chart.table[column] = table[column].to_numpy()
    chart.stats["color_midpoint"] = 0.0
    return chart


# ---- bars --------------------------------------------------------------------------------------------------------
def bars_with_ci(table: pd.DataFrame, x: str, *, y: str = "value", color: str | None = None, title: str = "",
                 y_label: str = "R@K %", x_order: Sequence | None = None, text: str | None = None) -> Chart:
    """Grouped bars with asymmetric 95% CI error bars (when ci_low/ci_high are present and finite)."""
    _need(table, [c for c in (x, y, color) if c], "bars_with_ci")
    tidy = table.reset_index(drop=True).copy()
    if tidy.empty:
        return _empty(title, tidy)
    has_ci = {"ci_low", "ci_high"} <= set(tidy.columns)
    kwargs: dict[str, Any] = {}
    if has_ci:
        tidy["_err_plus"] = (tidy["ci_high"] - tidy[y]).clip(lower=0)
        tidy["_err_minus"] = (tidy[y] - tidy["ci_low"]).clip(lower=0)
        kwargs.update(error_y="_err_plus", error_y_minus="_err_minus")
    order = _ordered(tidy[x], x_order)
    fig = px.bar(tidy, x=x, y=y, color=color, barmode="group", text=text, category_orders={x: order},
                 color_discrete_sequence=PALETTE, labels={y: y_label, "_err_plus": "CI +", "_err_minus": "CI −"},
                 hover_data={c: True for c in ("ci_low", "ci_high", "n_queries", "n") if c in tidy.columns},
                 **kwargs)
    fig.update_layout(title=title, margin=dict(l=10, r=10, t=50, b=10), legend_title_text=color or "")
    fig.update_xaxes(type="category")
    out = tidy.drop(columns=[c for c in ("_err_plus", "_err_minus") if c in tidy.columns])
    return Chart(fig, out, title, _palette_notes(tidy[color].nunique() if color else 0))


def recall_bars(table: pd.DataFrame, *, x: str = "lang", color: str | None = "series", k: int | None = None,
                title: str = "") -> Chart:
    """R@K per language (optionally one colour per model/arm) with CIs: the overview's headline chart."""
    label = f"R@{k} %" if k else "R@K %"
    return bars_with_ci(table, x, color=color if color in table.columns else None, title=title, y_label=label)


def group_bars(table: pd.DataFrame, *, x: str = "group", color: str | None = "series", title: str = "",
               y_label: str = "gap to EN (points)") -> Chart:
    """Close vs distant languages, one bar per group and model/arm, with CIs."""
    return bars_with_ci(table, x, color=color if color in table.columns else None, title=title, y_label=y_label,
                        x_order=("close", "between", "distant", "unknown"))


def lang_share_bars(table: pd.DataFrame, *, x: str = "lang", color: str | None = "series", title: str = "") -> Chart:
    """Share of each language among top-1 hits in a multilingual gallery (language bias)."""
    return bars_with_ci(table, x, color=color if color in table.columns else None, title=title,
                        y_label="share of top-1 hits %")


def significance_marker(p: float, alpha: float = 0.05) -> str:
    """'**' below alpha/5, '*' below alpha, '' otherwise (NaN too): the marker printed above a bar."""
    p = _num(p)
    if math.isnan(p):
        return ""
    return "**" if p < alpha / 5 else "*" if p < alpha else ""


def arm_delta_bars(table: pd.DataFrame, *, x: str = "lang", color: str = "arm", p_column: str = "p_holm",
                   alpha: float = 0.05, baseline: str = "EN-only", title: str = "",
                   x_order: Sequence | None = None) -> Chart:
    """Δ vs a baseline arm per language with CIs; * / ** mark Holm-corrected significance."""
    _need(table, (x, color, "delta"), "arm_delta_bars")
    tidy = table.reset_index(drop=True).copy()
    if tidy.empty:
        return _empty(title, tidy)
    pvals = tidy[p_column] if p_column in tidy.columns else pd.Series([math.nan] * len(tidy))
    tidy["significant"] = [significance_marker(p, alpha) for p in pvals]
    chart = bars_with_ci(tidy.rename(columns={"delta": "value"}), x, color=color, title=title,
                         y_label=f"Δ vs {baseline} (points)", text="significant", x_order=x_order)
    chart.fig.update_traces(textposition="outside")
    chart.fig.add_hline(y=0, line_width=1, line_color="gray")
    chart.table = chart.table.rename(columns={"value": "delta"})
    chart.notes.append(f"markers: * {p_column} < {alpha:g}, ** {p_column} < {alpha / 5:g}; error bars are 95% CIs")
    return chart


# ---- scatter with trend line -------------------------------------------------------------------------------------
def ols_line(xs: Sequence[float], ys: Sequence[float]) -> tuple[float, float] | None:
    """Least-squares slope and intercept (numpy); None when there are < 2 distinct finite x values."""
    x = np.asarray(xs, dtype=float)
    y = np.asarray(ys, dtype=float)
    ok = np.isfinite(x) & np.isfinite(y)
    x, y = x[ok], y[ok]
    if len(x) < 2 or np.unique(x).size < 2:
        return None
    slope, intercept = np.polyfit(x, y, deg=1)
    return float(slope), float(intercept)


def gap_scatter(table: pd.DataFrame, *, x: str = "distance", y: str = "gap", label: str = "lang",
                color: str | None = "series", symbol: str | None = "group", kind: str = "genetic",
                title: str = "") -> Chart:
    """Gap to English against typological distance, one OLS trend line per model/arm (computed with numpy); the
    marker shape tells the language's group (close / between / distant) where the table has one."""
    _need(table, (x, y, label), "gap_scatter")
    tidy = table.reset_index(drop=True).copy()
    if tidy.empty or not np.isfinite(pd.to_numeric(tidy[x], errors="coerce")).any():
        return _empty(title, tidy, NO_DATA if tidy.empty else f"no URIEL {kind} distance for these languages")
    color = color if color and color in tidy.columns else None
    kwargs: dict[str, Any] = {}
    if {"ci_low", "ci_high"} <= set(tidy.columns):
        tidy["_err_plus"] = (tidy["ci_high"] - tidy[y]).clip(lower=0)
        tidy["_err_minus"] = (tidy[y] - tidy["ci_low"]).clip(lower=0)
        kwargs.update(error_y="_err_plus", error_y_minus="_err_minus")
    if symbol and symbol in tidy.columns:
        kwargs.update(symbol=symbol, symbol_map={"close": "circle", "between": "diamond", "distant": "square",
                                                 "unknown": "x"})
    fig = px.scatter(tidy, x=x, y=y, color=color, text=label, color_discrete_sequence=PALETTE,
                     labels={x: f"URIEL {kind} distance from EN", y: "gap to EN (points)"}, **kwargs)
    fig.update_traces(textposition="top center", marker=dict(size=11))
    fits: dict[str, dict[str, float]] = {}
    groups = tidy.groupby(color, sort=False) if color else [("all", tidy)]
    for index, (name, part) in enumerate(groups):
        fit = ols_line(part[x], part[y])
        if fit is None:
            continue
        slope, intercept = fit
        xs = np.linspace(float(np.nanmin(part[x])), float(np.nanmax(part[x])), 20)
        fits[str(name)] = {"slope": slope, "intercept": intercept}
        fig.add_trace(go.Scatter(x=xs, y=slope * xs + intercept, mode="lines", name=f"OLS {name}",
                                 line=dict(dash="dash", color=PALETTE[index % len(PALETTE)]),
                                 hovertemplate=f"slope {slope:+.2f} per unit distance<extra>{name}</extra>"))
    fig.update_layout(title=title, margin=dict(l=10, r=10, t=50, b=10))
    out = tidy.drop(columns=[c for c in ("_err_plus", "_err_minus") if c in tidy.columns])
    chart = Chart(fig, out, title, stats={"fits": fits})
    if not fits:
        chart.notes.append("a trend line needs at least two languages with different distances")
    return chart


def correlation_text(result: CorrelationResult, unit: str = "pairs") -> str:
    """``Spearman ρ = -0.50 [-0.71, -0.23] · Pearson r = ... · n = 45 pairs``, or why there is no correlation."""
    if not math.isfinite(result.spearman_rho):
        return f"no correlation: {result.note.split('; ')[0]}"
    rho_low, rho_high = result.spearman_ci
    r_low, r_high = result.pearson_ci
    return (f"Spearman ρ = {result.spearman_rho:+.2f} [{rho_low:+.2f}, {rho_high:+.2f}] · Pearson r = "
            f"{result.pearson_r:+.2f} [{r_low:+.2f}, {r_high:+.2f}] · n = {result.n} {unit} (95% bootstrap CIs)")


def pair_scatter(table: pd.DataFrame, *, x: str = "distance", y: str = "score", label: str = "pair",
                 kind: str = "genetic", k: int | None = None, correlation: CorrelationResult | None = None,
                 mantel: MantelResult | None = None, title: str = "") -> Chart:
    """Symmetric pair score against the URIEL distance between the pair's two languages (csr_core.pairs): one
    point per pair labelled ``de–fr`` with its 95% CI, an OLS trend line, and the correlation with its CI (and the
    Mantel p-value, which respects that pairs share languages) under the title. Pairs without a distance stay in the table and are named in a note."""
    _need(table, (x, y, label), "pair_scatter")
    tidy = table.reset_index(drop=True).copy()
    xs = pd.to_numeric(tidy[x], errors="coerce")
    if tidy.empty or not np.isfinite(xs).any():
        return _empty(title, tidy, NO_DATA if tidy.empty else f"no URIEL {kind} distance for these pairs")
    kwargs: dict[str, Any] = {}
    if {"ci_low", "ci_high"} <= set(tidy.columns):
        tidy["_err_plus"] = (tidy["ci_high"] - tidy[y]).clip(lower=0)
        tidy["_err_minus"] = (tidy[y] - tidy["ci_low"]).clip(lower=0)
        kwargs.update(error_y="_err_plus", error_y_minus="_err_minus")
    recall = f"R@{k}" if k else "R@K"
    fig = px.scatter(tidy, x=x, y=y, text=label, color_discrete_sequence=PALETTE,
                     labels={x: f"URIEL {kind} distance between the two languages",
                             y: f"pair score: mean {recall} of both directions %"}, **kwargs)
    fig.update_traces(textposition="top center", marker=dict(size=10))
    fit = ols_line(tidy[x], tidy[y])
    if fit is not None:
        slope, intercept = fit
        line_x = np.linspace(float(np.nanmin(xs)), float(np.nanmax(xs)), 20)
        fig.add_trace(go.Scatter(x=line_x, y=slope * line_x + intercept, mode="lines", name="OLS",
                                 line=dict(dash="dash", color=PALETTE[1]),
                                 hovertemplate=f"slope {slope:+.2f} per unit distance<extra>OLS</extra>"))
    subtitle = correlation_text(correlation) if correlation is not None else ""
    if mantel is not None and math.isfinite(mantel.p_value):
        subtitle += f" · Mantel p = {mantel.p_value:.3g} ({mantel.n_languages} languages, labels permuted)"
    full_title = f"{title}<br><sup>{subtitle}</sup>" if subtitle else title
    fig.update_layout(title=full_title, margin=dict(l=10, r=10, t=80, b=10), showlegend=False)
    out = tidy.drop(columns=[c for c in ("_err_plus", "_err_minus") if c in tidy.columns])
    chart = Chart(fig, out, title, stats={"fit": None if fit is None else {"slope": fit[0], "intercept": fit[1]}})
    if correlation is not None:
        chart.stats["correlation"] = asdict(correlation)
        chart.notes.append(correlation.note)
    if mantel is not None:
        chart.stats["mantel"] = asdict(mantel)
        chart.notes.append(mantel.note)
    unplaced = [str(v) for v, d in zip(tidy[label], xs) if not math.isfinite(d)]
    if unplaced:
        chart.notes.append(f"no URIEL {kind} distance for {', '.join(unplaced)} (left off the plot, kept in the table)")
    return chart


# ---- training progress -----------------------------------------------------------------------------------------
def training_curve(history: Sequence[Mapping[str, Any]], *, title: str = "Training") -> Chart:
    """Loss per step (left axis) and validation mean recall at each eval step (right axis): a run's live progress."""
    table = pd.DataFrame([{k: r.get(k) for k in ("step", "loss", "val_mean_recall")} for r in history])
    if table.empty:
        return _empty(title, table, "no steps yet")
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=table["step"], y=table["loss"], mode="lines", name="train loss",
                             line=dict(color=PALETTE[0])))
    val = table.dropna(subset=["val_mean_recall"])
    fig.add_trace(go.Scatter(x=val["step"], y=val["val_mean_recall"], mode="lines+markers", yaxis="y2",
                             name="val mean recall %", line=dict(color=PALETTE[1])))
    fig.update_layout(title=title, xaxis_title="step", yaxis=dict(title="loss"),
                      yaxis2=dict(title="val mean recall %", overlaying="y", side="right", rangemode="tozero"),
                      margin=dict(l=10, r=10, t=50, b=10), height=320, legend=dict(orientation="h", y=-0.25))
    notes = []
    if len(val):
        best = val.loc[val["val_mean_recall"].idxmax()]
        notes.append(f"best val mean recall {best['val_mean_recall']:.2f} at step {int(best['step'])} "
                     f"(early stopping keeps that step's heads)")
    return Chart(fig, table, title, notes)


# ---- code-switching robustness curve -----------------------------------------------------------------------------
def cs_curve(table: pd.DataFrame, *, x: str = "cs_p", y: str = "value", curve: str = "curve", title: str = "",
             k: int | None = None) -> Chart:
    """R@K of code-switched EN queries against p, one line per mode/language set, 95% CI as a shaded band."""
    _need(table, (x, y, curve), "cs_curve")
    tidy = table.sort_values([curve, x]).reset_index(drop=True)
    if tidy.empty:
        return _empty(title, tidy)
    fig = go.Figure()
    has_ci = {"ci_low", "ci_high"} <= set(tidy.columns)
    palette_notes = _palette_notes(tidy[curve].nunique())
    for index, (name, part) in enumerate(tidy.groupby(curve, sort=False)):
        colour = PALETTE[index % len(PALETTE)]
        if has_ci and part[["ci_low", "ci_high"]].notna().all().all():
            band_x = list(part[x]) + list(part[x])[::-1]
            band_y = list(part["ci_high"]) + list(part["ci_low"])[::-1]
            fig.add_trace(go.Scatter(x=band_x, y=band_y, fill="toself", fillcolor=_rgba(colour, 0.18),
                                     line=dict(width=0), hoverinfo="skip", showlegend=False, name=f"CI {name}"))
        fig.add_trace(go.Scatter(x=part[x], y=part[y], mode="lines+markers", name=str(name),
                                 line=dict(color=colour), customdata=np.stack(
                                     [part.get("ci_low", pd.Series(np.nan, index=part.index)),
                                      part.get("ci_high", pd.Series(np.nan, index=part.index))], axis=-1),
                                 hovertemplate="p=%{x}<br>R@K %{y:.1f}<br>95% CI [%{customdata[0]:.1f}, "
                                               "%{customdata[1]:.1f}]<extra>%{fullData.name}</extra>"))
    fig.update_layout(title=title, xaxis_title="switch probability p", yaxis_title=f"R@{k} %" if k else "R@K %",
                      margin=dict(l=10, r=10, t=50, b=10), yaxis=dict(rangemode="tozero"))
    return Chart(fig, tidy, title, palette_notes)


def _palette_notes(n_colours: int) -> list[str]:
    """A note when a chart has more colour groups than PALETTE has colours (they would repeat unseen)."""
    if n_colours <= len(PALETTE):
        return []
    return [f"{n_colours} colour groups but {len(PALETTE)} distinct colours: colours repeat; narrow the selection"]


def _rgba(hex_colour: str, alpha: float) -> str:
    h = hex_colour.lstrip("#")
    r, g, b = (int(h[i:i + 2], 16) for i in (0, 2, 4))
    return f"rgba({r},{g},{b},{alpha})"


# ---- tables from results rows ------------------------------------------------------------------------------------
def short_model(name: str) -> str:
    """A readable model label: local paths shortened to their file names (`open_clip-config:tiny.json@w.pt`)."""
    if ":" not in name:
        return name
    prefix, rest = name.split(":", 1)
    parts = rest.split("@")
    if any(p.startswith(("/", "./", "~")) for p in parts):
        parts = [Path(p).name if p.startswith(("/", "./", "~")) else p for p in parts]
    return f"{prefix}:{'@'.join(parts)}"


def series_labels(rows: pd.DataFrame) -> pd.Series:
    """One label per (run, model, arm): model [· arm] [(reference)] plus a run suffix only where needed."""
    if rows.empty:
        return pd.Series([], dtype=str, index=rows.index, name="series")
    base = rows["model"].map(short_model)
    arm = rows["train_arm"].fillna("")
    base = base.where(arm == "", base + " · " + arm)
    ref = rows["source"] != "ours"
    base = base.where(~ref, base + " [" + rows["source"].str.replace("reference:", "ref:", regex=False) + "]")
    runs_per = pd.DataFrame({"b": base, "r": rows["run_id"]}).drop_duplicates().groupby("b")["r"].nunique()
    clash = base.map(runs_per) > 1
    suffix = rows["run_id"].str[-8:]
    return base.where(~clash, base + " #" + suffix).rename("series")


def recall_table(rows: pd.DataFrame, k: int, *, by: str = "series", lang: str = "lang") -> pd.DataFrame:
    """Recall rows at K → [by, lang, value, ci_low, ci_high, n_queries, run_id] (lang = caption-side language)."""
    from csr_core.results import caption_lang

    part = rows[(rows["metric"] == "recall") & (rows["k"] == int(k))]
    if part.empty:
        return pd.DataFrame(columns=[by, lang, "value", "ci_low", "ci_high", "n_queries", "run_id"])
    out = part.assign(**{lang: caption_lang(part).to_numpy()})
    if by == "series" and "series" not in out.columns:
        out = out.assign(series=series_labels(out).to_numpy())
    pooled = [c for c in ("value_sd", "n_seeds") if c in out.columns]  # seed-pooled rows (pool_seeds)
    return out[[by, lang, "value", "ci_low", "ci_high", "n_queries", "run_id", *pooled]].reset_index(drop=True)


def cross_table(rows: pd.DataFrame, k: int) -> pd.DataFrame:
    """Cross-lingual t2t recall at K → [query_lang, doc_lang, value, ci_low, ci_high, n_queries]."""
    part = rows[(rows["setting"] == "cross") & (rows["metric"] == "recall") & (rows["k"] == int(k))]
    return part[["query_lang", "doc_lang", "value", "ci_low", "ci_high", "n_queries"]].reset_index(drop=True)


def cs_curve_table(rows: pd.DataFrame, k: int, *, with_series: bool = False) -> pd.DataFrame:
    """cs-queries recall at K → [curve, cs_mode, cs_langs, cs_p, value, ci_low, ci_high, n_queries]."""
    part = rows[(rows["setting"] == "cs-queries") & (rows["metric"] == "recall") & (rows["k"] == int(k))]
    curve = part["cs_mode"].str.upper() + " " + part["cs_langs"]
    if with_series:
        curve = series_labels(part) + " · " + curve
    out = part.assign(curve=curve.to_numpy())
    return out[["curve", "cs_mode", "cs_langs", "cs_p", "value", "ci_low", "ci_high", "n_queries"]].reset_index(
        drop=True)


def delta_table(a: pd.DataFrame, b: pd.DataFrame, on: Sequence[str]) -> pd.DataFrame:
    """Per-cell a − b on the keys `on` (inner join): [*on, value_a, value_b, delta]."""
    left = a[list(on) + ["value"]].rename(columns={"value": "value_a"})
    right = b[list(on) + ["value"]].rename(columns={"value": "value_b"})
    merged = left.merge(right, on=list(on), how="inner")
    merged["delta"] = merged["value_a"] - merged["value_b"]
    return merged.reset_index(drop=True)


# ---- PNG export --------------------------------------------------------------------------------------------------
_CHROMIUM_CANDIDATES = ("/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome")


def find_chromium() -> str | None:
    """$CSR_CHROMIUM, else Debian's /usr/bin/chromium (or a chrome on PATH); None when there is none."""
    env = os.environ.get("CSR_CHROMIUM")
    if env:
        return env if Path(env).is_file() else None
    for candidate in _CHROMIUM_CANDIDATES:
        if Path(candidate).is_file():
            return candidate
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None


EXPORT_FORMATS: dict[str, str] = {"png": "image/png", "svg": "image/svg+xml", "pdf": "application/pdf"}


def for_export(fig: go.Figure, *, min_margin: int = 24) -> go.Figure:
    """A copy of `fig` whose margins grow to fit every tick label and title (automargin): the on-screen figures use
    tight margins, which clipped the Overview's axis labels and every heatmap row label in exported files."""
    out = go.Figure(fig)
    margin = out.layout.margin
    out.update_layout(margin=dict(l=max(margin.l or 0, min_margin), r=max(margin.r or 0, min_margin),
                                  t=max(margin.t or 0, min_margin), b=max(margin.b or 0, min_margin)))
    out.update_xaxes(automargin=True)
    out.update_yaxes(automargin=True)
    return out


def export_figure(fig: go.Figure, path: str | os.PathLike, *, fmt: str = "png", width: int = 1200,
                  height: int | None = None, scale: float = 2.0, chromium: str | None = None) -> Path:
    """Write `fig` as PNG, SVG or PDF (paper figures) through kaleido with a local Chromium, margins fitted to every
    label (`for_export`); never downloads a browser (a clear error instead)."""
    if fmt not in EXPORT_FORMATS:
        raise CSRError(f"figure format {fmt!r}: choose one of {', '.join(EXPORT_FORMATS)}")
    try:
        import kaleido
    except ImportError as error:
        raise CSRError("figure export needs the 'kaleido' package (pip install kaleido); the chart's table and CSV "
                       "are still available") from error
    browser = chromium or find_chromium()
    if not browser or not Path(browser).is_file():
        raise CSRError("figure export needs a local Chrome/Chromium and none was found (looked at $CSR_CHROMIUM, "
                       f"{', '.join(_CHROMIUM_CANDIDATES)} and PATH). Install Debian's: apt-get install chromium, "
                       "or set CSR_CHROMIUM=/path/to/chrome. Nothing is downloaded automatically.")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    legend_entries = sum(1 for trace in fig.data if trace.showlegend is not False and getattr(trace, "name", None))
    height = max(height or int(fig.layout.height or 600), 160 + 21 * legend_entries)  # the whole legend shows
    try:
        kaleido.write_fig_sync(for_export(fig), path=str(path),
                               opts={"format": fmt, "width": width, "height": height, "scale": scale},
                               kopts={"path": browser, "mathjax": False})
    except Exception as error:  # kaleido/choreographer raise many types for one cause: the browser did not render
        raise CSRError(f"{fmt.upper()} export with {browser} failed ({type(error).__name__}: {error})") from error
    if not path.is_file() or path.stat().st_size == 0:
        raise CSRError(f"{fmt.upper()} export with {browser} wrote nothing to {path}")
    return path


# ---- one view per setting layout (the heatmap page holds no per-setting branches) ---------------------------------
@dataclass
class SettingView:
    """A setting's main heatmap, the table each cell maps back to, its axes, and any companion charts."""

    chart: Chart
    cells: pd.DataFrame
    x: str
    y: str
    extra: list[Chart] = field(default_factory=list)


def setting_view(layout: str, rows: pd.DataFrame, k: int, *, title: str) -> SettingView:
    """The heatmap for a setting's `layout` (see csr_core.settings): many series × language, or one run's
    language × language or switching-curve × p."""
    if layout == "series×lang":
        table = recall_table(rows, k).drop_duplicates(["series", "lang"], keep="last")
        order = display_order(table["lang"])
        y_order = sorted(set(table["series"]), key=lambda label: ("[ref:" in label, label))
        chart = heatmap(table, x="lang", y="series", value_label=f"R@{k} %", x_order=order, y_order=y_order,
                        title=f"{title} · R@{k} (model × caption language)")
        return SettingView(chart, table, "lang", "series")
    run_id = rows["run_id"].iloc[0] if len(rows) else ""
    if layout == "lang×lang":
        table = cross_table(rows, k)
        langs = display_order([*table["query_lang"], *table["doc_lang"]])
        chart = heatmap(table, x="doc_lang", y="query_lang", value_label=f"R@{k} %", x_order=langs, y_order=langs,
                        title=f"{title}: caption in query_lang → its translation in doc_lang, R@{k}")
        return SettingView(chart, table.assign(run_id=run_id), "doc_lang", "query_lang")
    if layout == "curve":
        table = cs_curve_table(rows, k)
        curve_chart = cs_curve(table, k=k, title=f"{title}: R@{k} of EN queries switched with probability p")
        table = table.assign(p=table["cs_p"].map(lambda v: f"{v:g}"))
        chart = heatmap(table, x="p", y="curve", value_label=f"R@{k} %",
                        title=f"{title}: R@{k} by switching mode/languages × p")
        return SettingView(chart, table.assign(run_id=run_id), "p", "curve", extra=[curve_chart])
    raise ValueError(f"unknown layout {layout!r}")


def setting_difference(layout: str, a_rows: pd.DataFrame, b_rows: pd.DataFrame, k: int, ks: Sequence[int]
                       ) -> tuple[pd.DataFrame, str, str]:
    """A − B cells for a setting's layout at R@k (every K of `ks` for series × language), and its (x, y) columns."""
    if layout == "lang×lang":
        return delta_table(cross_table(a_rows, k), cross_table(b_rows, k),
                           ["query_lang", "doc_lang"]), "doc_lang", "query_lang"
    if layout == "curve":
        diff = delta_table(cs_curve_table(a_rows, k), cs_curve_table(b_rows, k), ["curve", "cs_p"])
        diff["p"] = diff["cs_p"].map(lambda v: f"{v:g}")
        return diff, "p", "curve"
    frames = [delta_table(recall_table(a_rows, kk), recall_table(b_rows, kk), ["lang"]).assign(metric=f"R@{kk}")
              for kk in ks]
    return pd.concat(frames, ignore_index=True), "lang", "metric"
