"""Bad input through the paths a user hits (`python -m csr_core ...`, uploads, the results store): every case gives
a clear error naming the file / line / value, the process keeps working, and nothing already stored is lost.

Each eval case writes into one shared results store that already holds a good run: after every refusal that run
still loads unchanged and no partial run appears.
"""

from __future__ import annotations

import gzip
import json
import os
import pickle
import shutil
from pathlib import Path

import pytest

from csr_core.errors import DataError

from .conftest import N_PHOTOS, comparable_rows, eval_args, run_cli

CAPTIONS = "a dog runs on the grass\nthe man rides a red bike down the street\n"
GOOD_LEXICON = "dog hund\ngrass gras\nman mann\nred rot\nbike fahrrad\nstreet straße\n"


# ---------------------------------------------------------------------------------------------------------------------
# lexicons (the codeswitch command and uploads)


@pytest.fixture
def captions_file(tmp_path) -> Path:
    path = tmp_path / "captions.txt"
    path.write_text(CAPTIONS, encoding="utf-8")
    return path


def _switch(captions: Path, lexicon: Path, *extra: str):
    return run_cli("codeswitch", "--lexicon", f"de={lexicon}", "--langs", "de", "--p", "1", "--input", captions,
                   *extra)


def _assert_still_switches(captions: Path, tmp_path: Path) -> None:
    """The same process still loads a good lexicon and switches correctly after the refusal."""
    good = tmp_path / "good-en-de.txt"
    good.write_text(GOOD_LEXICON, encoding="utf-8")
    result = _switch(captions, good, "--quiet")
    assert result.rc == 0, result.err
    assert result.out.splitlines() == ["a hund runs on the gras", "the mann rides a rot fahrrad down the straße"]


LEXICON_CASES = {
    # name: (bytes, extra CLI arguments, expected message fragments)
    "latin-1": (GOOD_LEXICON.encode("latin-1"), [], ["is not valid utf-8 text", "(byte 0xdf at line 6)"]),
    "binary": (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)) * 4, [], ["looks binary"]),
    "zero-bytes": (b"", [], ["is empty"]),
    "bad-gzip": (b"\x1f\x8b\x08\x00garbage-not-deflate", [], ["gzip-compressed but cannot be decompressed"]),
    "mostly-malformed": (b"dog hund\ncat katze\nonly\nthree words here\nx y z\n", ["--layout", "muse"],
                         ["3 of 5 lines are malformed", "line 3: 'only'", "line 4: 'three words here'"]),
    "no-layout": (b"a single long line with many words\nanother one with even more words\n", [],
                  ["cannot tell the layout", "pass layout="]),
}


@pytest.mark.parametrize("case", sorted(LEXICON_CASES))
def test_bad_lexicon_file_is_named_and_cli_keeps_working(case, captions_file, tmp_path):
    data, extra, fragments = LEXICON_CASES[case]
    bad = tmp_path / f"{case}-en-de.txt"
    bad.write_bytes(data)
    result = _switch(captions_file, bad, *extra)
    assert result.rc == 2, result.text
    assert bad.name in result.err
    for fragment in fragments:
        assert fragment in result.err, result.err
    assert result.out == ""  # nothing half-switched on stdout
    _assert_still_switches(captions_file, tmp_path)


def test_missing_lexicon_file_is_named(captions_file, tmp_path):
    result = _switch(captions_file, tmp_path / "nope-en-de.txt")
    assert result.rc == 2 and "nope-en-de.txt" in result.err and "No such file" in result.err
    _assert_still_switches(captions_file, tmp_path)


def test_a_few_malformed_lines_are_reported_by_number_and_the_rest_is_used(captions_file, tmp_path):
    lines = GOOD_LEXICON.splitlines()
    lines.insert(2, "justoneword")
    lines.insert(5, "too many words here")
    lexicon = tmp_path / "noisy-en-de.txt"
    lexicon.write_text("\n".join(lines) + "\n", encoding="utf-8")
    result = _switch(captions_file, lexicon)
    assert result.rc == 0, result.err
    assert "2 malformed" in result.err
    assert "line 3: 'justoneword'" in result.err and "line 6: 'too many words here'" in result.err
    assert result.out.splitlines()[0] == "a hund runs on the gras"


def test_utf16_with_bom_loads_like_utf8(captions_file, tmp_path):
    lexicon = tmp_path / "utf16-en-de.txt"
    lexicon.write_bytes(GOOD_LEXICON.encode("utf-16"))  # Python writes the BOM
    assert lexicon.read_bytes()[:2] in (b"\xff\xfe", b"\xfe\xff")
    result = _switch(captions_file, lexicon)
    assert result.rc == 0, result.err
    assert "utf-16" in result.err  # the load report says which encoding it read
    assert result.out.splitlines()[1] == "the mann rides a rot fahrrad down the straße"


def test_500_mb_upload_is_refused_before_reading(tmp_path):
    """A 500 MB lexicon upload (a sparse file: no 500 MB is allocated) is refused from its size, unread."""
    from csr_core.lexicon import Lexicon
    from csr_core.uploads import MAX_UPLOAD_BYTES, save_upload

    session = tmp_path / "session"
    session.mkdir()
    huge = tmp_path / "huge-en-de.txt"
    with open(huge, "wb") as handle:
        handle.truncate(500 * 2**20)
    assert huge.stat().st_size > MAX_UPLOAD_BYTES
    with open(huge, "rb") as upload:
        with pytest.raises(DataError) as error:
            save_upload(session, "en-de.txt", upload)
        assert upload.tell() == 0  # not a byte was read
    message = str(error.value)
    assert "'en-de.txt'" in message and "500.0 MiB" in message and "limit" in message
    assert list(session.iterdir()) == []
    # the same session still takes a normal upload, and the stored file loads as a lexicon
    stored = save_upload(session, "en-de.txt", GOOD_LEXICON.encode())
    assert stored.parent == session.resolve()
    assert Lexicon.from_file(stored).translations("street") == ("straße",)


def test_stream_longer_than_it_claims_is_cut_off_and_removed(tmp_path):
    import io

    from csr_core.uploads import save_upload

    class Lying(io.BytesIO):
        size = 10  # what the browser claimed

    with pytest.raises(DataError, match="over the 4.0 KiB limit"):
        save_upload(tmp_path, "en-de.txt", Lying(b"x" * 5000), max_bytes=4096)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("name", ["../../x.txt", "/etc/passwd.txt", "..\\..\\x.txt", "sub/dir.txt", ".hidden.txt",
                                  "..", "C:evil.txt", "nul\x00byte.txt", ""])
def test_upload_names_with_paths_are_refused_and_nothing_is_written(name, tmp_path):
    from csr_core.uploads import save_upload

    session = tmp_path / "a" / "b" / "session"
    session.mkdir(parents=True)
    with pytest.raises(DataError) as error:
        save_upload(session, name, b"dog hund\n", allowed_suffixes=(".txt",))
    assert repr(name)[1:-1][:20] in str(error.value) or not name
    written = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert written == []
    # the same session still accepts a plain name
    assert save_upload(session, "en-de.txt", b"dog hund\n").read_bytes() == b"dog hund\n"


@pytest.mark.parametrize("name", ["en-de.exe", "en-de.txt.py", "weights.pt", "model.pkl"])
def test_upload_types_outside_the_allowed_list_are_refused(name, tmp_path):
    from csr_core.uploads import LEXICON_SUFFIXES, save_upload

    with pytest.raises(DataError, match="file type not accepted"):
        save_upload(tmp_path, name, b"dog hund\n", allowed_suffixes=LEXICON_SUFFIXES)
    assert list(tmp_path.iterdir()) == []


def test_empty_upload_is_refused(tmp_path):
    from csr_core.uploads import save_upload

    with pytest.raises(DataError, match="empty"):
        save_upload(tmp_path, "en-de.txt", b"")
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------------------------------------------------------------
# evaluations: one store with a good run; every refusal leaves it as it was


@pytest.fixture(scope="module")
def store_with_run(tmp_path_factory, tiny_model, shared_data):
    """A results folder holding one good run of the tiny model (written by the eval command)."""
    from csr_core.results import ResultsStore

    root = tmp_path_factory.mktemp("results")
    previous = os.environ.get("CSR_CACHE_DIR")
    os.environ["CSR_CACHE_DIR"] = str(tmp_path_factory.mktemp("cache"))
    try:
        result = run_cli(*eval_args(tiny_model, "--langs", "en,de", "--out", root))
    finally:
        if previous is None:
            os.environ.pop("CSR_CACHE_DIR", None)
        else:
            os.environ["CSR_CACHE_DIR"] = previous
    assert result.rc == 0, result.err
    store = ResultsStore(root)
    return store, store.load()


def _assert_store_unchanged(store_with_run) -> None:
    store, before = store_with_run
    after = store.load()
    assert len(store.runs()) == 1
    assert comparable_rows(after).equals(comparable_rows(before))
    assert not [p for p in store.runs_dir.iterdir() if p.name.startswith(".tmp-")]


def _refused(store_with_run, *argv: str, fragments: list[str]) -> str:
    store, _ = store_with_run
    result = run_cli(*argv, "--out", store.root)
    assert result.rc == 2, result.text
    for fragment in fragments:
        assert fragment in result.err, result.err
    _assert_store_unchanged(store_with_run)
    return result.err


@pytest.fixture(scope="module")
def photo_files(shared_data) -> list[Path]:
    return sorted((shared_data / "flickr8k" / "images").glob("*.jpg"))[:3]


def _jsonl_folder(folder: Path, photos: list[Path], lines: list[object] | None = None) -> Path:
    """A user's dataset folder: three real photos and captions.jsonl (en, de, and jp = XTD10's code for Japanese)."""
    folder.mkdir(parents=True, exist_ok=True)
    for i, photo in enumerate(photos):
        shutil.copy(photo, folder / f"{i}.jpg")
    if lines is None:
        lines = [{"image": f"{i}.jpg", "captions": {"en": [f"a dog number {i}"], "de": [f"ein Hund {i}"],
                                                    "jp": [f"犬 {i}"]}} for i in range(len(photos))]
    (folder / "captions.jsonl").write_text(
        "\n".join(line if isinstance(line, str) else json.dumps(line, ensure_ascii=False) for line in lines) + "\n",
        encoding="utf-8")
    return folder


def test_jsonl_missing_field_names_file_and_line(store_with_run, tiny_model, tmp_path, photo_files):
    lines = [{"image": "0.jpg", "captions": {"en": ["a dog"]}}, {"image": "1.jpg", "caption": {"en": ["typo"]}}]
    folder = _jsonl_folder(tmp_path / "ds", photo_files[:2], lines)
    _refused(store_with_run, "eval", "--model", tiny_model, "--dataset", f"jsonl:{folder}", "--langs", "en",
             fragments=[f"{folder / 'captions.jsonl'}:2: missing field 'captions'"])


def test_jsonl_broken_json_names_file_and_line(store_with_run, tiny_model, tmp_path, photo_files):
    lines = [{"image": "0.jpg", "captions": {"en": ["a dog"]}}, '{"image": "1.jpg", "captions": {"en": ["cut']
    folder = _jsonl_folder(tmp_path / "ds", photo_files[:2], lines)
    _refused(store_with_run, "eval", "--model", tiny_model, "--dataset", f"jsonl:{folder}", "--langs", "en",
             fragments=[f"{folder / 'captions.jsonl'}:2: invalid JSON"])


def test_empty_split_is_named_with_the_splits_present(store_with_run, tiny_model, tmp_path, photo_files):
    lines = [{"image": f"{i}.jpg", "captions": {"en": ["a dog"]}, "split": "train"} for i in range(2)]
    folder = _jsonl_folder(tmp_path / "ds", photo_files[:2], lines)
    _refused(store_with_run, "eval", "--model", tiny_model, "--dataset", f"jsonl:{folder}", "--split", "test",
             fragments=["split 'test' is empty", "splits present: train (2)"])


@pytest.mark.parametrize("damage", ["missing", "not-an-image", "truncated", "bomb"])
def test_bad_image_file_is_named(damage, store_with_run, tiny_model, tmp_path, photo_files):
    folder = _jsonl_folder(tmp_path / "ds", photo_files)
    victim = folder / "1.jpg"
    if damage == "missing":
        victim.unlink()
        expected = [str(victim), "not found"]
    elif damage == "not-an-image":
        victim.write_text("<html>this is an error page, not a photo</html>")
        expected = [str(victim), "not a readable image"]
    elif damage == "truncated":
        data = victim.read_bytes()
        victim.write_bytes(data[: len(data) // 3])
        expected = [str(victim), "truncated or corrupt"]
    else:
        victim.write_bytes(_png_header_only(30_000, 3_000))  # claims 90 MP in 70 bytes
        expected = [str(victim), "90,000,000 pixels", "over the limit"]
    _refused(store_with_run, "eval", "--model", tiny_model, "--dataset", f"jsonl:{folder}", "--langs", "en", "--k",
             "1", fragments=expected)


def _png_header_only(width: int, height: int) -> bytes:
    import struct
    import zlib

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 8)) + chunk(b"IEND", b"")


def _multi30k_folder(root: Path, de_lines: list[str]) -> Path:
    raw = root / "multi30k" / "task1" / "raw"
    raw.mkdir(parents=True)
    (root / "multi30k" / "task1" / "image_splits").mkdir()
    (root / "multi30k" / "task1" / "image_splits" / "test_2016_flickr.txt").write_text("1.jpg\n2.jpg\n3.jpg\n")
    (raw / "test_2016_flickr.en").write_text("a dog\na cat\na bird\n")
    with gzip.open(raw / "test_2016_flickr.de.gz", "wt", encoding="utf-8") as handle:
        handle.write("\n".join(de_lines) + "\n")
    return raw


def test_caption_files_of_unequal_length_name_both_files(store_with_run, tiny_model, tmp_path, monkeypatch):
    raw = _multi30k_folder(tmp_path / "data", ["ein Hund", "eine Katze"])  # one German line short
    monkeypatch.setenv("CSR_DATA_DIR", str(tmp_path / "data"))
    _refused(store_with_run, "eval", "--model", tiny_model, "--dataset", "multi30k", "--settings", "cross",
             "--langs", "en,de", fragments=["differ in length", "has 3 lines", f"{raw / 'test_2016_flickr.de.gz'} "
                                            "has 2"])


def test_blank_caption_line_names_file_and_line(store_with_run, tiny_model, tmp_path, monkeypatch):
    raw = _multi30k_folder(tmp_path / "data", ["ein Hund", "   ", "ein Vogel"])
    monkeypatch.setenv("CSR_DATA_DIR", str(tmp_path / "data"))
    _refused(store_with_run, "eval", "--model", tiny_model, "--dataset", "multi30k", "--settings", "cross",
             "--langs", "en,de", fragments=[f"{raw / 'test_2016_flickr.de.gz'}:2: empty caption line"])


@pytest.mark.parametrize("langs, fragments", [
    ("en,xx", ["'xx'", "unknown language code"]),
    ("en,mul", ["'mul'", "not one language"]),
    ("en,english", ["'english'", "did you mean 'en'"]),
    ("en,de,deu", ["'de'", "'deu'", "both"]),
])
def test_unknown_or_ambiguous_language_codes_are_named(langs, fragments, store_with_run, tiny_model):
    _refused(store_with_run, *eval_args(tiny_model, "--langs", langs), fragments=fragments)


def test_language_aliases_resolve_instead_of_being_dropped(store_with_run, tiny_model, tmp_path, photo_files):
    """'jp' (XTD10's code) and 'deu' mean ja and de: the run covers them, it does not skip them with a note."""
    from csr_core.results import ResultsStore

    folder = _jsonl_folder(tmp_path / "ds", photo_files)
    out = tmp_path / "results"
    result = run_cli("eval", "--model", tiny_model, "--dataset", f"jsonl:{folder}", "--langs", "EN,deu,jp", "--k",
                     "1", "--quiet", "--out", out)
    assert result.rc == 0, result.err
    rows = ResultsStore(out).load()
    assert set(rows.loc[rows["direction"] == "t2i", "query_lang"]) == {"en", "de", "ja"}


def test_k_larger_than_the_gallery_is_refused(store_with_run, tiny_model):
    _refused(store_with_run, *eval_args(tiny_model, "--langs", "en", "--k", "1", "5", "1000"),
             fragments=["K=1000", f"{N_PHOTOS} images"])


def test_zero_images_is_refused_not_read_as_all(store_with_run, tiny_model):
    _refused(store_with_run, *eval_args(tiny_model, "--langs", "en", photos=0), fragments=["max_images", "0"])


@pytest.mark.parametrize("ps", [["nan"], ["0", "1.5"], ["-0.25"]])
def test_bad_switching_probability_is_named(ps, store_with_run, tiny_model):
    shown = {"nan": "p=nan", "1.5": "p=1.5", "-0.25": "p=-0.25"}[ps[-1]]
    _refused(store_with_run, *eval_args(tiny_model, "--langs", "en,de", "--settings", "cs-queries", "--cs-ps", *ps),
             fragments=[shown, "outside [0, 1]"])


def test_codeswitch_p_nan_is_named(captions_file, tmp_path):
    lexicon = tmp_path / "en-de.txt"
    lexicon.write_text(GOOD_LEXICON, encoding="utf-8")
    result = run_cli("codeswitch", "--lexicon", lexicon, "--langs", "de", "--p", "nan", "--input", captions_file)
    assert result.rc == 2 and "p must be in [0, 1], got nan" in result.err
    _assert_still_switches(captions_file, tmp_path)


# ---- models ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("model, fragments", [
    ("open_clip:ViT-B-32/openai", ["'open_clip:ViT-B-32/openai' cannot be resolved offline", "Backends that run here",
                                   "open_clip (", "HF_HUB_OFFLINE=1"]),
    ("hf:openai/clip-vit-base-patch32", ["cannot be resolved offline", "Backends that run here", "hf:/path"]),
    ("open_clip:ViT-B-32/no-such-tag", ["'no-such-tag' is not a pretrained tag", "known tags"]),
    ("clip:ViT-B-32", ["unknown backend 'clip'", "known: open_clip"]),
])
def test_model_not_resolvable_offline_says_what_runs_here(model, fragments, store_with_run, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-hub"))  # nothing cached, whatever this machine holds
    _refused(store_with_run, *eval_args(model), fragments=fragments)


class _Payload:
    """Unpickling this runs os.mkdir(marker): proof of code execution if it ever happens."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.mkdir, (str(self.marker),))


@pytest.mark.parametrize("suffix", [".pt", ".bin", ".safetensors", ".pkl"])
def test_pickle_checkpoint_is_refused_and_never_executed(suffix, store_with_run, tmp_path):
    import torch

    from .conftest import TINY_CONFIG

    marker = tmp_path / "PWNED"
    evil = tmp_path / f"evil{suffix}"
    if suffix in (".pt", ".bin"):
        torch.save({"visual.conv1.weight": torch.zeros(1), "x": _Payload(marker)}, evil)
    else:
        evil.write_bytes(pickle.dumps({"x": _Payload(marker)}))
    err = _refused(store_with_run, *eval_args(f"open_clip-config:{TINY_CONFIG}@{evil}"), fragments=[str(evil)])
    assert "refused" in err or "not a readable safetensors" in err or "unsupported file type" in err
    assert not marker.exists()
    # control: the file really is a live payload (loading it the unsafe way runs it)
    if suffix in (".pt", ".bin"):
        torch.load(evil, weights_only=False)
    else:
        pickle.loads(evil.read_bytes())
    assert marker.is_dir()


def test_checkpoint_of_another_architecture_is_named(store_with_run, tmp_path):
    from safetensors.torch import save_file
    import torch

    from .conftest import TINY_CONFIG

    other = tmp_path / "other.safetensors"
    save_file({"visual.conv1.weight": torch.zeros(3, 3, 2, 2)}, str(other))
    _refused(store_with_run, *eval_args(f"open_clip-config:{TINY_CONFIG}@{other}"),
             fragments=[str(other), "does not fit"])


# ---- cache and results files ----------------------------------------------------------------------------------------


def test_corrupt_cache_shard_is_named_moved_aside_and_recomputed(tiny_model, tmp_path, monkeypatch):
    from csr_core.embed_cache import CorruptShardWarning
    from csr_core.results import ResultsStore

    monkeypatch.setenv("CSR_CACHE_DIR", str(tmp_path / "cache"))
    out = tmp_path / "results"
    args = eval_args(tiny_model, "--langs", "en", "--out", out)
    assert run_cli(*args).rc == 0
    image_shards = list((tmp_path / "cache").glob("embeddings/*/image/*.safetensors"))
    assert len(image_shards) == 1
    shard = image_shards[0]
    data = bytearray(shard.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one flipped byte (bit rot, a bad copy)
    shard.write_bytes(bytes(data))
    with pytest.warns(CorruptShardWarning, match=shard.name):
        result = run_cli(*args)
    assert result.rc == 0, result.err
    assert not shard.exists() and len(list(shard.parent.glob("corrupt/*"))) == 1
    runs = ResultsStore(out).runs()
    rows = ResultsStore(out).load()
    first, second = (rows[rows["run_id"] == m["run_id"]] for m in runs)
    assert comparable_rows(first).equals(comparable_rows(second))  # recomputed, same numbers


def test_corrupt_or_half_written_results_are_named_and_nothing_is_lost(store_with_run, tiny_model, tmp_path):
    """A run folder with a torn rows file, one with broken JSON, a dead writer's temp folder: each is named; new runs
    still land; once the named folders are moved aside every good run loads exactly as before."""
    from csr_core.errors import ResultsError
    from csr_core.results import ResultsStore

    store_src, before = store_with_run
    root = tmp_path / "results"
    shutil.copytree(store_src.root, root)
    store = ResultsStore(root)
    good = store.runs()[0]["run_id"]
    torn = store.runs_dir / "20990101T000000Z-torn0000"
    shutil.copytree(store.runs_dir / good, torn)
    manifest = json.loads((torn / "manifest.json").read_text())
    manifest["run_id"] = torn.name
    (torn / "manifest.json").write_text(json.dumps(manifest))
    rows_bytes = (torn / "rows.parquet").read_bytes()
    (torn / "rows.parquet").write_bytes(rows_bytes[: len(rows_bytes) // 2])  # a copy cut off mid-file
    with pytest.raises(ResultsError, match=f"{torn / 'rows.parquet'}: not a readable parquet file"):
        store.load()

    broken = store.runs_dir / "20990101T000000Z-json0000"
    shutil.copytree(store.runs_dir / good, broken)
    (broken / "manifest.json").write_text('{"run_id": "20990101T000000Z-json0000",\n "schema_version": 1,')
    with pytest.raises(ResultsError, match=r"json0000/manifest.json, line 2: invalid JSON"):
        store.runs()

    dead = store.runs_dir / ".tmp-999999999-deadbeef"  # a killed writer's leftovers
    dead.mkdir()
    (dead / "rows.parquet").write_bytes(rows_bytes[:100])

    # the eval command still writes a new run into this store
    result = run_cli(*eval_args(tiny_model, "--langs", "en,de", "--out", root))
    assert result.rc == 0, result.err
    for folder in (torn, broken):
        folder.rename(tmp_path / folder.name)  # what the message tells the user to do
    rows = store.load()
    assert len(store.runs()) == 2
    assert comparable_rows(rows[rows["run_id"] == good]).equals(comparable_rows(before))
    new = rows[rows["run_id"] != good]
    assert comparable_rows(new).equals(comparable_rows(before))  # same model, data, seed: same numbers
    assert store.clean_temp() == 1 and not dead.exists()


def test_cli_keeps_working_after_every_refusal(store_with_run, tiny_model, tmp_path):
    """After all the refusals above (same process), a valid eval runs and the earlier run still loads."""
    from csr_core.results import ResultsStore

    _assert_store_unchanged(store_with_run)
    out = tmp_path / "results"
    result = run_cli(*eval_args(tiny_model, "--langs", "en,de", "--out", out))
    assert result.rc == 0, result.err
    rows = ResultsStore(out).load()
    assert comparable_rows(rows).equals(comparable_rows(store_with_run[1]))
