"""csr_core.viz: each builder plots exactly the table it returns, with CIs, midpoints, trend lines and markers."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from testsupport import skip_or_fail
from scipy import stats

from csr_core import viz
from csr_core.errors import CSRError, DataError
from csr_core.results import make_rows


def _spec(fig) -> dict:
    return json.loads(fig.to_json())


def arr(value) -> np.ndarray:
    """A plotly JSON array: a plain list, or plotly's typed-array form {"dtype", "bdata", "shape"}."""
    if isinstance(value, dict) and "bdata" in value:
        import base64

        out = np.frombuffer(base64.b64decode(value["bdata"]), dtype=np.dtype(value["dtype"]))
        shape = value.get("shape")
        if shape:
            out = out.reshape([int(n) for n in str(shape).split(",")])
        return out.astype(float)
    return np.array(value, dtype=float)


def _cells() -> pd.DataFrame:
    return pd.DataFrame({
        "series": ["m1", "m1", "m2", "m2"],
        "lang": ["en", "de", "en", "de"],
        "value": [40.0, 10.0, 50.0, 30.0],
        "ci_low": [30.0, 5.0, 41.0, 20.0],
        "ci_high": [50.0, 16.0, 60.0, 39.0],
        "n_queries": [100, 100, 100, 100],
    })


def test_heatmap_values_annotations_and_ci_hover():
    chart = viz.heatmap(_cells(), x="lang", y="series", x_order=["en", "de"], title="t")
    trace = _spec(chart.fig)["data"][0]
    assert trace["type"] == "heatmap"
    assert trace["x"] == ["en", "de"] and trace["y"] == ["m1", "m2"]
    assert np.allclose(arr(trace["z"]), [[40, 10], [50, 30]])
    assert trace["texttemplate"] == "%{z:.1f}"  # values annotated in the cells (text_auto)
    custom = arr(trace["customdata"])
    assert custom.shape == (2, 2, 3)
    assert custom[1, 1].tolist() == [20.0, 39.0, 100.0]  # m2/de: CI and n on hover
    assert "95% CI" in trace["hovertemplate"]
    columns = ["series", "lang", "value"]
    assert chart.table[columns].values.tolist() == _cells()[columns].values.tolist()
    assert chart.csv().decode().splitlines()[0] == "series,lang,value,ci_low,ci_high,n_queries"


def test_heatmap_refuses_two_rows_for_one_cell_and_draws_empty_tables():
    doubled = pd.concat([_cells(), _cells().iloc[:1]])
    with pytest.raises(DataError, match="two rows for cell"):
        viz.heatmap(doubled, x="lang", y="series")
    empty = viz.heatmap(_cells().iloc[:0], x="lang", y="series")
    assert empty.table.empty and viz.NO_DATA in json.dumps(_spec(empty.fig)["layout"]["annotations"])
    with pytest.raises(DataError, match="lacks column"):
        viz.heatmap(_cells().drop(columns=["lang"]), x="lang", y="series")


def test_difference_heatmap_is_diverging_and_zero_centred():
    table = pd.DataFrame({"metric": ["R@1", "R@1", "R@10", "R@10"], "lang": ["en", "de", "en", "de"],
                          "value_a": [10.0, 5.0, 50.0, 20.0], "value_b": [12.0, 1.0, 40.0, 21.0]})
    table["delta"] = table["value_a"] - table["value_b"]
    chart = viz.difference_heatmap(table, x="lang", y="metric")
    spec = _spec(chart.fig)
    axis = spec["layout"]["coloraxis"]
    assert axis["cmid"] == 0.0
    assert axis["cmin"] == -10.0 and axis["cmax"] == 10.0  # symmetric around zero: |max delta| = 10
    scale = [c[1] for c in axis["colorscale"]]
    assert scale[0] != scale[-1] and len(scale) > 5  # RdBu, not a one-hue scale
    assert np.allclose(arr(spec["data"][0]["z"]), [[-2, 4], [10, -1]])
    assert list(chart.table["value_a"]) == [10.0, 5.0, 50.0, 20.0]


def test_ols_trend_line_matches_scipy_linregress():
    table = pd.DataFrame({"series": ["a"] * 4 + ["b"] * 3, "lang": ["de", "fr", "cs", "zh", "de", "fr", "cs"],
                          "distance": [0.6, 0.9, 0.91, 1.0, 0.6, 0.9, 0.91], "gap": [5.0, 9.0, 12.0, 20.0, 1, 2, 6],
                          "ci_low": [1.0, 4, 8, 15, -3, -2, 1], "ci_high": [9.0, 13, 16, 25, 5, 6, 11]})
    chart = viz.gap_scatter(table, kind="genetic")
    for name in ("a", "b"):
        part = table[table["series"] == name]
        ref = stats.linregress(part["distance"], part["gap"])
        fit = chart.stats["fits"][name]
        assert fit["slope"] == pytest.approx(ref.slope) and fit["intercept"] == pytest.approx(ref.intercept)
    lines = [t for t in _spec(chart.fig)["data"] if t.get("mode") == "lines"]
    assert [t["name"] for t in lines] == ["OLS a", "OLS b"]
    xs, ys = arr(lines[0]["x"]), arr(lines[0]["y"])
    assert np.allclose(ys, chart.stats["fits"]["a"]["slope"] * xs + chart.stats["fits"]["a"]["intercept"])
    points = [t for t in _spec(chart.fig)["data"] if t.get("mode") == "markers+text"]
    assert np.allclose(arr(points[0]["error_y"]["array"]), [4, 4, 4, 5])  # ci_high - gap
    single = viz.gap_scatter(table.iloc[:1])
    assert single.stats["fits"] == {} and "at least two languages" in single.notes[0]
    assert viz.ols_line([1, 1], [2, 3]) is None


def test_bars_with_ci_error_bars_follow_the_table():
    chart = viz.recall_bars(_cells().rename(columns={"series": "series"}), k=10)
    traces = _spec(chart.fig)["data"]
    assert [t["name"] for t in traces] == ["m1", "m2"]
    m2 = traces[1]
    assert np.allclose(arr(m2["error_y"]["array"]), [10.0, 9.0])
    assert np.allclose(arr(m2["error_y"]["arrayminus"]), [9.0, 10.0])
    assert _spec(chart.fig)["layout"]["yaxis"]["title"]["text"] == "R@10 %"


def test_arm_delta_bars_mark_significance():
    table = pd.DataFrame({"lang": ["de", "fr", "cs"], "arm": ["mlcs"] * 3, "delta": [6.0, 1.0, -3.0],
                          "ci_low": [3.0, -2.0, -5.0], "ci_high": [9.0, 4.0, -0.5], "p_holm": [0.004, 0.4, 0.03]})
    chart = viz.arm_delta_bars(table, baseline="en")
    trace = _spec(chart.fig)["data"][0]
    assert list(trace["text"]) == ["**", "", "*"]
    assert list(chart.table["significant"]) == ["**", "", "*"]
    assert list(chart.table["delta"]) == [6.0, 1.0, -3.0]
    assert any(shape.get("y0") == 0 for shape in _spec(chart.fig)["layout"]["shapes"])  # zero line
    assert viz.significance_marker(math.nan) == ""


def test_cs_curve_has_one_line_and_one_band_per_curve():
    table = pd.DataFrame({"curve": ["BL de"] * 3 + ["ML de,fr"] * 3, "cs_p": [1.0, 0.0, 0.5] * 2,
                          "value": [10.0, 30.0, 20.0, 12.0, 31.0, 22.0], "ci_low": [5.0, 25, 15, 7, 26, 17],
                          "ci_high": [15.0, 35, 25, 17, 36, 27]})
    chart = viz.cs_curve(table, k=5)
    traces = _spec(chart.fig)["data"]
    bands = [t for t in traces if t.get("fill") == "toself"]
    lines = [t for t in traces if t.get("mode") == "lines+markers"]
    assert len(bands) == 2 and [t["name"] for t in lines] == ["BL de", "ML de,fr"]
    assert arr(lines[0]["x"]).tolist() == [0.0, 0.5, 1.0] and arr(lines[0]["y"]).tolist() == [30.0, 20.0, 10.0]
    assert arr(bands[0]["y"]).tolist() == [35.0, 25.0, 15.0, 5.0, 15.0, 25.0]  # upper, then lower reversed
    assert _spec(chart.fig)["layout"]["yaxis"]["title"]["text"] == "R@5 %"


def _rows() -> pd.DataFrame:
    base = dict(model="open_clip-config:/tmp/x/tiny.json", dataset="d", split="test", n_queries=40)
    records = []
    for run, arm, shift in (("r1", "", 0.0), ("r2", "mlcs", 5.0)):
        for lang in ("en", "de"):
            for k, v in ((1, 10.0), (10, 50.0)):
                records.append(dict(base, setting="monolingual", query_lang=lang, doc_lang="img", direction="t2i",
                                    metric="recall", k=k, value=v + shift - (lang == "de") * 5, train_arm=arm))
                records.append(dict(base, setting="monolingual", query_lang="img", doc_lang=lang, direction="i2t",
                                    metric="recall", k=k, value=v + shift, train_arm=arm))
        for p in (0.0, 0.5):
            records.append(dict(base, setting="cs-queries", query_lang="en", doc_lang="img", direction="t2i",
                                metric="recall", k=10, cs_mode="bl", cs_p=p, cs_langs="de", value=50 - 20 * p,
                                train_arm=arm))
        records.append(dict(base, setting="cross", query_lang="en", doc_lang="de", direction="t2t", metric="recall",
                            k=10, value=70.0 + shift, train_arm=arm))
    rows = make_rows(records)
    rows["run_id"] = ["r1"] * (len(rows) // 2) + ["r2"] * (len(rows) // 2)
    return rows


def test_tables_from_results_rows():
    rows = _rows()
    mono = rows[(rows["setting"] == "monolingual") & (rows["direction"] == "i2t")]
    table = viz.recall_table(mono, 10)
    assert set(table["lang"]) == {"en", "de"}  # caption side of i2t rows is doc_lang
    assert set(table["series"]) == {"open_clip-config:tiny.json", "open_clip-config:tiny.json · mlcs"}
    assert viz.cross_table(rows[rows["run_id"] == "r2"], 10)["value"].tolist() == [75.0]
    curve = viz.cs_curve_table(rows[rows["run_id"] == "r1"], 10)
    assert curve["curve"].unique().tolist() == ["BL de"] and curve["value"].tolist() == [50.0, 40.0]
    t2i = rows[(rows["setting"] == "monolingual") & (rows["direction"] == "t2i")]
    delta = viz.delta_table(viz.recall_table(t2i[t2i["run_id"] == "r2"], 1),
                            viz.recall_table(t2i[t2i["run_id"] == "r1"], 1), ["lang"])
    assert delta.set_index("lang")["delta"].to_dict() == {"en": 5.0, "de": 5.0}


def test_series_labels_add_a_run_suffix_only_on_clashes():
    rows = _rows()
    rows["train_arm"] = ""
    labels = viz.series_labels(rows)
    assert labels[rows["run_id"] == "r1"].iloc[0].endswith("#r1") and labels.nunique() == 2
    short = viz.short_model("open_clip-config:/a/b/tiny.json@/c/w.safetensors")
    assert short == "open_clip-config:tiny.json@w.safetensors"
    assert viz.short_model("open_clip:ViT-B-32/openai") == "open_clip:ViT-B-32/openai"


def test_figure_export_without_a_browser_says_what_to_install(tmp_path, monkeypatch):
    chart = viz.heatmap(_cells(), x="lang", y="series")
    with pytest.raises(CSRError, match="apt-get install chromium"):
        viz.export_figure(chart.fig, tmp_path / "x.png", chromium=str(tmp_path / "no-such-chrome"))
    with pytest.raises(CSRError, match="choose one of png, svg, pdf"):
        viz.export_figure(chart.fig, tmp_path / "x.gif", fmt="gif")
    monkeypatch.setenv("CSR_CHROMIUM", str(tmp_path / "missing"))
    assert viz.find_chromium() is None
    assert not (tmp_path / "x.png").exists()


def test_for_export_fits_margins_to_labels_and_leaves_the_screen_figure_alone():
    chart = viz.heatmap(_cells(), x="lang", y="series")
    out = viz.for_export(chart.fig)
    assert out.layout.yaxis.automargin is True and out.layout.xaxis.automargin is True
    assert out.layout.margin.l >= 24 and out.layout.margin.b >= 24
    assert chart.fig.layout.margin.l == 10 and chart.fig.layout.yaxis.automargin is None  # the original is a copy


def test_figures_export_as_png_svg_and_pdf_with_every_label(tmp_path):
    if viz.find_chromium() is None:
        skip_or_fail("no local Chromium (apt-get install chromium) for kaleido")
    table = _cells()
    chart = viz.heatmap(table, x="lang", y="series")
    path = viz.export_figure(chart.fig, tmp_path / "out" / "heatmap.png", width=400, height=300, scale=1)
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert int.from_bytes(data[16:20], "big") == 400 and int.from_bytes(data[20:24], "big") == 300
    svg = viz.export_figure(chart.fig, tmp_path / "heatmap.svg", fmt="svg", width=400, height=300).read_text()
    assert svg.lstrip().startswith("<svg")
    for label in set(table["series"]) | set(table["lang"]):  # every row and column label is in the figure
        assert f">{label}<" in svg, label
    assert viz.export_figure(chart.fig, tmp_path / "heatmap.pdf", fmt="pdf").read_bytes()[:5] == b"%PDF-"


def test_palette_never_repeats_within_a_capped_view_and_says_so_beyond():
    assert len(set(viz.PALETTE)) == len(viz.PALETTE) >= viz.MAX_HEATMAP_ROWS
    table = pd.DataFrame({"lang": ["en"] * 40, "series": [f"s{i}" for i in range(40)], "value": np.arange(40.0)})
    few = viz.bars_with_ci(table.head(viz.MAX_HEATMAP_ROWS), x="lang", color="series")
    colours = [trace.marker.color for trace in few.fig.data]
    assert len(set(colours)) == len(colours) == viz.MAX_HEATMAP_ROWS and few.notes == []
    many = viz.bars_with_ci(table, x="lang", color="series")
    assert any("colours repeat" in note for note in many.notes)


def test_training_curve_draws_loss_and_validation_and_names_the_best_step():
    history = [{"step": s, "loss": 3.0 - 0.1 * s} for s in range(1, 11)]
    for record, val in ((history[4], 40.0), (history[9], 35.0)):
        record["val_mean_recall"] = val
    chart = viz.training_curve(history, title="t")
    loss, val = chart.fig.data
    assert list(loss.x) == list(range(1, 11)) and list(val.x) == [5, 10] and list(val.y) == [40.0, 35.0]
    assert val.yaxis == "y2" and chart.notes == [
        "best val mean recall 40.00 at step 5 (early stopping keeps that step's heads)"]
    assert viz.training_curve([], title="t").notes == ["no steps yet"]
