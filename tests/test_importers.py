"""Importers of published numbers (CLIP_benchmark JSON, open_clip CSVs) into reference rows, and the import command."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import pytest

from csr_core.errors import DataError
from csr_core.importers import (
    import_clip_benchmark_json,
    import_openclip_csv,
    import_openclip_multilingual_csv,
    import_openclip_retrieval_csv,
)
from csr_core.results import ROW_COLUMNS, ResultsStore

MULTILINGUAL = "reference/openclip_multilingual_retrieval_results.csv"
ENGLISH = "reference/openclip_retrieval_results.csv"


def _csv_rows(path: Path) -> tuple[list[str], list[dict]]:
    with open(path, newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        return list(reader.fieldnames), list(reader)


def _filled(cell: str) -> bool:
    return cell.strip() != "" and not math.isnan(float(cell))


def clip_benchmark_dump(path: Path, **overrides) -> Path:
    """Exactly what clip_benchmark/cli.py `run()` dumps for a zeroshot_retrieval evaluation."""
    dump = {
        "dataset": "multilingual_mscoco_captions",
        "model": "xlm-roberta-base-ViT-B-32",
        "pretrained": "laion5b_s13b_b90k",
        "task": "zeroshot_retrieval",
        "metrics": {
            "image_retrieval_recall@1": 0.5234000086784363,
            "text_retrieval_recall@1": 0.6100000143051147,
            "image_retrieval_recall@5": 0.8100000023841858,
            "text_retrieval_recall@5": 0.8700000047683716,
        },
        "language": "jp",
    }
    dump.update(overrides)
    with open(path, "w") as handle:
        json.dump(dump, handle)
    return path


# ---- open_clip multilingual CSV (real file) --------------------------------------------------------------------
def test_multilingual_csv_row_count_and_cells(real_data):
    path = real_data / MULTILINGUAL
    header, table = _csv_rows(path)
    metric_columns = [c for c in header if c not in ("model", "version", "avg") and not c.endswith(" avg")]
    expected = sum(_filled(row[c]) for row in table for c in metric_columns)

    rows = import_openclip_multilingual_csv(path)
    assert tuple(rows.columns) == ROW_COLUMNS
    assert len(rows) == expected > 30_000
    assert set(rows["source"]) == {"reference:openclip"}
    assert set(rows["dataset"]) == {"xm3600", "xtd10"}
    assert set(rows["setting"]) == {"monolingual"} and set(rows["metric"]) == {"recall"}
    assert set(rows["k"]) == {1, 5, 10}
    assert rows["value"].between(0, 100).all() and rows["value"].max() > 1  # percent, not fractions
    assert "jp" not in set(rows["query_lang"]) | set(rows["doc_lang"])  # XTD10's "jp" is ISO "ja"

    source = next(r for r in table if (r["model"], r["version"]) == ("xlm-roberta-base-ViT-B-32", "laion5b_s13b_b90k"))
    mine = rows[rows["model"] == "open_clip:xlm-roberta-base-ViT-B-32/laion5b_s13b_b90k"]

    def cell(dataset: str, direction: str, k: int, query_lang: str, doc_lang: str) -> list[float]:
        hit = mine[(mine["dataset"] == dataset) & (mine["direction"] == direction) & (mine["k"] == k)
                   & (mine["query_lang"] == query_lang) & (mine["doc_lang"] == doc_lang)]
        return hit["value"].tolist()

    de = float(source["multilingual_mscoco_captions image_retrieval_recall@1 de"])
    assert cell("xtd10", "t2i", 1, "de", "img") == [pytest.approx(de * 100)]
    sw = float(source["crossmodal3600 text_retrieval_recall@10 sw"])
    assert cell("xm3600", "i2t", 10, "img", "sw") == [pytest.approx(sw * 100)]
    jp = float(source["multilingual_mscoco_captions image_retrieval_recall@5 jp"])
    assert cell("xtd10", "t2i", 5, "ja", "img") == [pytest.approx(jp * 100)]


def test_english_csv_row_count_and_cells(real_data):
    path = real_data / ENGLISH
    header, table = _csv_rows(path)
    metric_columns = [c for c in header if " retr. R@" in c]
    assert len(metric_columns) == 12
    rows = import_openclip_retrieval_csv(path)
    assert len(rows) == sum(_filled(row[c]) for row in table for c in metric_columns)
    assert set(rows["dataset"]) == {"flickr30k", "mscoco"}
    first = table[0]
    model = f"open_clip:{first['name']}/{first['pretrained']}"
    cell = rows[(rows["model"] == model) & (rows["dataset"] == "mscoco") & (rows["direction"] == "i2t")
                & (rows["k"] == 5)]
    assert cell["value"].tolist() == [pytest.approx(float(first["MSCOCO text retr. R@5"]) * 100)]
    assert cell["query_lang"].tolist() == ["img"] and cell["doc_lang"].tolist() == ["en"]
    # the auto-detecting entry point picks the same reader for either file
    assert len(import_openclip_csv(path)) == len(rows)
    multilingual = real_data / MULTILINGUAL
    assert len(import_openclip_csv(multilingual)) == len(import_openclip_multilingual_csv(multilingual))


def test_empty_cells_are_models_without_values(tmp_path):
    path = tmp_path / "ml.csv"
    path.write_text("model,version,avg,xtd10 image_retrieval_recall@1 avg,xtd10 image_retrieval_recall@1 de,"
                    "xtd10 text_retrieval_recall@1 de\nA,v1,0.5,0.5,0.41,\nB,v2,0.6,0.6,0.5,0.7\n")
    rows = import_openclip_multilingual_csv(path)
    assert len(rows) == 3
    assert rows.query("model == 'open_clip:A/v1'")["value"].tolist() == [41.0]


@pytest.mark.parametrize(
    "text, fragment",
    [
        ("model,version,xtd10 image_recall 1 de\nA,v1,0.4\n", "unknown column layout"),
        ("name,version\nA,v1\n", "missing column(s) ['model']"),
        ("model,version,xtd10 image_retrieval_recall@1 de\nA,v1,high\n", "line 2, column"),
        ("model,version,xtd10 image_retrieval_recall@1 de\nA,v1,41.0\n", "not a fraction"),
        ("model,version,avg\nA,v1,0.4\n", "no '<dataset> image_retrieval_recall@K <lang>' columns"),
    ],
)
def test_bad_multilingual_csv_names_file_and_problem(tmp_path, text, fragment):
    path = tmp_path / "bad.csv"
    path.write_text(text)
    with pytest.raises(DataError) as error:
        import_openclip_multilingual_csv(path)
    assert str(path) in str(error.value) and fragment in str(error.value)


def test_openclip_csv_with_unknown_header_is_rejected(tmp_path):
    path = tmp_path / "other.csv"
    path.write_text("a,b,c\n1,2,3\n")
    with pytest.raises(DataError, match=r"line 1: header starts \['a', 'b', 'c'\]"):
        import_openclip_csv(path)
    bad_english = tmp_path / "en.csv"
    bad_english.write_text("name,pretrained,Flickr image retr. R@1,Zero-shot ImageNet\nA,x,0.5,0.7\n")
    with pytest.raises(DataError, match=r"unknown column layout \['Zero-shot ImageNet'\]"):
        import_openclip_csv(bad_english)


# ---- CLIP_benchmark JSON ---------------------------------------------------------------------------------------
def test_clip_benchmark_json_to_reference_rows(tmp_path):
    rows = import_clip_benchmark_json(clip_benchmark_dump(tmp_path / "r.json"))
    assert tuple(rows.columns) == ROW_COLUMNS and len(rows) == 4
    assert set(rows["source"]) == {"reference:clip_benchmark"}
    assert set(rows["model"]) == {"open_clip:xlm-roberta-base-ViT-B-32/laion5b_s13b_b90k"}
    assert set(rows["dataset"]) == {"xtd10"} and set(rows["setting"]) == {"monolingual"}
    got = {(r.direction, r.query_lang, r.doc_lang, r.k): r.value for r in rows.itertuples()}
    assert got == {
        ("t2i", "ja", "img", 1): pytest.approx(52.34000086784363),
        ("i2t", "img", "ja", 1): pytest.approx(61.00000143051147),
        ("t2i", "ja", "img", 5): pytest.approx(81.00000023841858),
        ("i2t", "img", "ja", 5): pytest.approx(87.00000047683716),
    }


def test_clip_benchmark_json_webdataset_name_and_language_list(tmp_path):
    path = clip_benchmark_dump(tmp_path / "wds.json", dataset="wds/crossmodal3600", language=["de"],
                               metrics={"image_retrieval_recall@10": 0.9, "mean_average_precision": 0.3})
    rows = import_clip_benchmark_json(path)
    assert rows[["dataset", "query_lang", "direction", "k", "value"]].values.tolist() == [
        ["xm3600", "de", "t2i", 10, 90.0]]


@pytest.mark.parametrize(
    "write, fragment",
    [
        (lambda p: p.write_text("not json {"), "line 1: invalid JSON"),
        (lambda p: p.write_text("[1, 2]"), "expected a JSON object"),
        (lambda p: clip_benchmark_dump(p, task="zeroshot_classification"), "only 'zeroshot_retrieval'"),
        (lambda p: clip_benchmark_dump(p, metrics={"acc1": 0.5}), "no image_retrieval_recall@K"),
        (lambda p: clip_benchmark_dump(p, metrics={"image_retrieval_recall@1": 52.3}), "not a fraction"),
        (lambda p: clip_benchmark_dump(p, language=["de", "fr"]), "one language code"),
    ],
)
def test_bad_clip_benchmark_json_names_file_and_problem(tmp_path, write, fragment):
    path = tmp_path / "bad.json"
    write(path)
    with pytest.raises(DataError) as error:
        import_clip_benchmark_json(path)
    assert str(path) in str(error.value) and fragment in str(error.value)


def test_clip_benchmark_json_missing_key(tmp_path):
    path = tmp_path / "partial.json"
    path.write_text(json.dumps({"dataset": "flickr30k", "model": "ViT-B-32", "metrics": {}}))
    with pytest.raises(DataError, match=r"partial\.json: missing key\(s\) \['pretrained', 'task', 'language'\]"):
        import_clip_benchmark_json(path)


# ---- the `import` command --------------------------------------------------------------------------------------
def _run_import(argv: list[str]) -> int:
    from csr_core import cli

    return cli.main(["import", *argv])


def test_import_command_writes_reference_rows(tmp_path, capsys):
    files = [clip_benchmark_dump(tmp_path / "xtd_jp.json"),
             clip_benchmark_dump(tmp_path / "xtd_de.json", language="de")]
    assert _run_import(["clip-benchmark", *map(str, files)]) == 0
    out = capsys.readouterr().out
    assert "8 reference rows imported" in out
    rows = ResultsStore().load()  # CSR_RESULTS_DIR points at this test's temp folder
    assert len(rows) == 8 and set(rows["source"]) == {"reference:clip_benchmark"}
    assert set(rows["run_id"]) == {"reference/clip_benchmark-xtd_jp", "reference/clip_benchmark-xtd_de"}
    assert ResultsStore().runs() == []

    # importing again replaces, never doubles
    assert _run_import(["clip-benchmark", str(files[0])]) == 0
    assert len(ResultsStore().load()) == 8


def test_import_command_openclip_csv(shared_data, capsys):
    expected = len(import_openclip_multilingual_csv(shared_data / MULTILINGUAL))
    assert _run_import(["openclip-csv", str(shared_data / MULTILINGUAL), "--name", "openclip-ml"]) == 0
    assert f"{expected} reference rows imported" in capsys.readouterr().out
    store = ResultsStore()
    assert len(store.load()) == expected
    (manifest,) = store.references()
    assert manifest["name"] == "openclip-ml" and len(manifest["fingerprints"]["files"][Path(MULTILINGUAL).name]) == 64


def test_import_command_bad_file_imports_nothing(tmp_path, capsys):
    good = clip_benchmark_dump(tmp_path / "good.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{}")
    code = _run_import(["clip-benchmark", str(good), str(bad)])
    message = capsys.readouterr().err  # through cli.main: the error is printed, exit code 2
    assert code == 2 and "bad.json: missing key(s)" in message
    assert ResultsStore().load().empty


def test_import_command_through_the_cli_router(tmp_path, capsys):
    from csr_core import cli

    assert "import_results" in cli.COMMAND_MODULES
    path = clip_benchmark_dump(tmp_path / "one.json")
    assert cli.main(["import", "clip-benchmark", str(path), "--results-dir", str(tmp_path / "store")]) == 0
    assert "4 reference rows imported" in capsys.readouterr().out
    assert len(ResultsStore(tmp_path / "store").load()) == 4
    assert cli.main(["import", "clip-benchmark", str(tmp_path / "missing.json")]) == 2
    assert "missing.json: not found" in capsys.readouterr().err
