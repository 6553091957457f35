"""Code-switching training data at scale (csr_core/cs_shards/, `codeswitch --shards/--table`).

Real Flickr8k photos and captions (or the synthetic set) are packed into webdataset shards and caption tables in
the img2dataset / open_clip layouts, switched, and read back by open_clip_train's own loaders (`get_wds_dataset`,
`get_dataset_size`, `CsvDataset`) with a real tokenizer and image transform (the tiny config in tests/assets).
Also: the same bytes for 1 or 2 worker processes and for Ray Data, no half-written shard after a failure or a kill,
and DataErrors that name the shard and member (or the table line/row).
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import signal
import subprocess
import sys
import tarfile
import time
from argparse import Namespace
from pathlib import Path

import pytest

from csr_core.codeswitch import CodeSwitcher
from csr_core.cs_shards import (SwitchJob, expand_braces, read_sidecars, switch_shard, switch_shards, switch_table,
                                switch_tables)
from csr_core.errors import CSRError, DataError
from csr_core.lexicon import load_muse

TINY_JSON = Path(__file__).parent / "assets" / "csr-test-tiny-vit.json"
N_SHARDS, PER_SHARD = 4, 6
MTIME = 1_700_000_000


# ---- fixtures --------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def photos(shared_data) -> list[tuple[Path, str]]:
    """(photo, its first caption) for the first N_SHARDS x PER_SHARD Flickr8k photos."""
    root = shared_data / "flickr8k"
    first: dict[str, str] = {}
    with open(root / "captions.txt", encoding="utf-8", newline="") as handle:
        reader = csv.reader(handle)
        next(reader)
        for image, caption in reader:
            first.setdefault(image, caption)
    names = sorted(first)[: N_SHARDS * PER_SHARD]
    assert len(names) == N_SHARDS * PER_SHARD
    return [(root / "images" / name, first[name]) for name in names]


@pytest.fixture(scope="module")
def switcher(shared_data) -> CodeSwitcher:
    lexicons = {lang: load_muse(lang, shared_data) for lang in ("de", "fr")}
    return CodeSwitcher(lexicons, "ml", p=0.5, seed=3)


@pytest.fixture(scope="module")
def job(switcher) -> SwitchJob:
    return SwitchJob(switcher)


def _key(shard: int, index: int) -> str:
    return f"{shard:05d}{index:04d}"


def _write_tar(path: Path, members: list[tuple[str, bytes]]) -> None:
    with tarfile.open(path, "w") as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size, info.mtime = len(data), MTIME
            tar.addfile(info, io.BytesIO(data))


def _sample(key: str, photo: Path, caption: str) -> list[tuple[str, bytes]]:
    meta = {"key": key, "caption": caption, "status": "success", "url": f"file://{photo.name}"}
    return [(f"{key}.jpg", photo.read_bytes()), (f"{key}.txt", caption.encode("utf-8")),
            (f"{key}.json", json.dumps(meta).encode("utf-8"))]


@pytest.fixture(scope="module")
def shards(photos, tmp_path_factory) -> tuple[str, list[tuple[str, str]]]:
    """img2dataset-style shards: (pattern, [(key, caption)] in order)."""
    folder = tmp_path_factory.mktemp("wds-in")
    samples = []
    for shard in range(N_SHARDS):
        members = []
        for index in range(PER_SHARD):
            photo, caption = photos[shard * PER_SHARD + index]
            members += _sample(_key(shard, index), photo, caption)
            samples.append((_key(shard, index), caption))
        _write_tar(folder / f"{shard:05d}.tar", members)
    return str(folder / f"{{00000..{N_SHARDS - 1:05d}}}.tar"), samples


@pytest.fixture(scope="module")
def clip_io():
    """open_clip's real tokenizer and eval image transform for the tiny config (no download)."""
    import open_clip

    open_clip.add_model_config(TINY_JSON)
    _, _, preprocess = open_clip.create_model_and_transforms(TINY_JSON.stem, pretrained=None)
    return open_clip.get_tokenizer(TINY_JSON.stem), preprocess


def _cli(argv: list[str]) -> int:
    from csr_core.commands import codeswitch as command

    parser = argparse.ArgumentParser()
    command.add_arguments(parser)
    return command.run(parser.parse_args(argv))


def _lexicon_args(shared_data) -> list[str]:
    return ["--langs", "de,fr", "--mode", "ml", "--p", "0.5", "--seed", "3", "--data-dir", str(shared_data)]


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp")) if folder.exists() else []


# ---- shard patterns ----------------------------------------------------------------------------------------------------


def test_brace_patterns_expand_like_webdataset_and_join_with_double_colons():
    assert list(expand_braces("a/{0..1}.tar::b/{2..3}.tar")) == ["a/0.tar", "a/1.tar", "b/2.tar", "b/3.tar"]
    assert list(expand_braces("s/{000..002}.tar")) == ["s/000.tar", "s/001.tar", "s/002.tar"]  # zero-padded
    with pytest.raises(CSRError, match="unbalanced"):
        list(expand_braces("data/{0..3.tar"))


# ---- webdataset shards -------------------------------------------------------------------------------------------------


def test_switched_shards_read_back_by_open_clip_train(shards, switcher, clip_io, shared_data, tmp_path, capsys):
    import torch
    from open_clip_train.data import get_dataset_size, get_wds_dataset

    pattern, samples = shards
    out = tmp_path / "out"
    assert _cli([*_lexicon_args(shared_data), "--shards", pattern, "--out-dir", str(out)]) == 0
    err = capsys.readouterr().err
    assert f"{N_SHARDS} shards, {len(samples)} captions switched (0 skipped)" in err
    assert "\n  de: switch ratio 0." in err and "\n  fr: switch ratio 0." in err

    expected = [switcher.switch(caption, key) for key, caption in samples]  # seeded by (seed, sample key)
    assert sum(r.text != r.original for r in expected) >= len(samples) // 2  # p = 0.5: most captions change
    out_pattern = str(out / f"{{00000..{N_SHARDS - 1:05d}}}.tar")
    assert get_dataset_size(out_pattern) == (len(samples), N_SHARDS)  # from our sizes.json

    tokenizer, preprocess = clip_io
    args = Namespace(val_data=out_pattern, val_num_samples=len(samples), batch_size=5, workers=0)
    loader = get_wds_dataset(args, preprocess, is_train=False, tokenizer=tokenizer).dataloader
    images, texts = zip(*loader)
    assert all(batch.shape[1:] == (3, 32, 32) for batch in images)
    got = torch.cat(texts)
    assert torch.equal(got, tokenizer([r.text for r in expected]))  # the captions open_clip trains on: switched
    assert not torch.equal(got, tokenizer([caption for _, caption in samples]))

    # (The training branch of get_wds_dataset is not run: open_clip_train 3.3's group_by_keys_nothrow fails on the
    # end-of-shard marker webdataset >= 0.2.96 yields, for any shards -- mlfoundations/open_clip#935.)


def test_output_shard_members_and_sidecars(shards, switcher, job, tmp_path):
    pattern, samples = shards
    source = Path(pattern.split("{")[0]) / "00001.tar"
    result = switch_shard(source, tmp_path / "00001.tar", job)
    assert result.stats.n_samples == PER_SHARD
    with tarfile.open(source) as tar_in, tarfile.open(tmp_path / "00001.tar") as tar_out:
        names = tar_out.getnames()
        keys = [_key(1, i) for i in range(PER_SHARD)]
        assert names == [f"{k}.{ext}" for k in keys for ext in ("jpg", "txt", "orig.txt", "cs.json", "json")]
        for key in keys:
            for ext in ("jpg", "json"):  # images and img2dataset metadata pass through byte for byte
                assert tar_out.extractfile(f"{key}.{ext}").read() == tar_in.extractfile(f"{key}.{ext}").read()
            assert tar_out.extractfile(f"{key}.orig.txt").read() == tar_in.extractfile(f"{key}.txt").read()
            assert tar_out.getmember(f"{key}.txt").mtime == MTIME
    captions = dict(samples)
    records = list(read_sidecars(tmp_path / "00001.tar"))
    assert [r["key"] for r in records] == keys
    for record in records:
        assert (record["mode"], record["p"], record["seed"], record["langs"]) == ("ml", 0.5, 3, ["de", "fr"])
        assert record["seed_key"] == record["key"] and record["original"] == captions[record["key"]]
        assert record["text"] == switcher.switch(captions[record["key"]], record["key"]).text
        for span in record["spans"]:
            assert record["original"][span["src_start"]:span["src_end"]] == span["source"]
            assert record["text"][span["out_start"]:span["out_end"]] == span["replacement"]
            assert span["lang"] in ("de", "fr")
    # per-language counts agree with CodeSwitcher.language_stats over the same captions
    results = [switcher.switch(captions[k], k) for k in keys]
    by_lang = {s.lang: s.n_switched_content for s in switcher.language_stats(results)}
    assert {lang: result.stats.by_lang.get(lang, 0) for lang in by_lang} == by_lang
    assert sum(result.stats.by_lang.values()) == result.stats.n_switched_content > 0


def test_tar_writer_keeps_folders_long_and_unicode_names(tmp_path):

    from csr_core.cs_shards.tar import _TarWriter

    long_name = "d/" + "x" * 120 + ".txt"
    folder = tarfile.TarInfo("d")
    folder.type = tarfile.DIRTYPE
    with open(tmp_path / "t.tar", "wb") as sink:
        writer = _TarWriter(sink)
        for info, data in ((folder, None), (tarfile.TarInfo("k.txt"), b"plain"), (tarfile.TarInfo(long_name), b"x"),
                           (tarfile.TarInfo("k.ü.txt"), "ünïcode".encode())):
            writer.add(info, data)
        writer.close()
    assert (tmp_path / "t.tar").stat().st_size % tarfile.RECORDSIZE == 0
    with tarfile.open(tmp_path / "t.tar") as tar:
        assert tar.getnames() == ["d", "k.txt", long_name, "k.ü.txt"] and tar.getmember("d").isdir()
        assert tar.extractfile("k.ü.txt").read().decode() == "ünïcode"


def test_gzipped_shards_stay_gzipped_and_reproducible(photos, job, tmp_path):
    import gzip

    plain = tmp_path / "a.tar"
    _write_tar(plain, _sample("000000000", photos[0][0], "A dog on the beach .")
               + _sample("000000001", photos[1][0], "A man in a red shirt ."))
    packed = tmp_path / "in" / "a.tar.gz"
    packed.parent.mkdir()
    packed.write_bytes(gzip.compress(plain.read_bytes(), mtime=0))
    first = switch_shard(packed, tmp_path / "one" / "a.tar.gz", job)
    switch_shard(packed, tmp_path / "two" / "a.tar.gz", job)
    switch_shard(plain, tmp_path / "one" / "a.tar", job)
    assert first.stats.n_samples == 2
    assert (tmp_path / "one" / "a.tar.gz").read_bytes() == (tmp_path / "two" / "a.tar.gz").read_bytes()
    assert gzip.decompress((tmp_path / "one" / "a.tar.gz").read_bytes()) == (tmp_path / "one" / "a.tar").read_bytes()


def test_text_keyed_shards_switch_like_the_line_cli(shards, switcher, tmp_path):
    pattern, samples = shards
    source = Path(pattern.split("{")[0]) / "00000.tar"
    switch_shard(source, tmp_path / "00000.tar", SwitchJob(switcher, key="text"))
    records = list(read_sidecars(tmp_path / "00000.tar"))
    assert [r["text"] for r in records] == [switcher.switch(c).text for _, c in samples[:PER_SHARD]]
    assert all(r["seed_key"] is None for r in records)


def test_one_or_two_workers_give_the_same_bytes(shards, job, tmp_path):
    pattern, samples = shards
    one = switch_shards(pattern, tmp_path / "w1", job, workers=1)
    two = switch_shards(pattern, tmp_path / "w2", job, workers=2)
    assert [Path(f.output).name for f in two.files] == [f"{i:05d}.tar" for i in range(N_SHARDS)]  # input order
    for i in range(N_SHARDS):
        assert (tmp_path / "w1" / f"{i:05d}.tar").read_bytes() == (tmp_path / "w2" / f"{i:05d}.tar").read_bytes()
    for name in ("sizes.json", "codeswitch.json"):
        assert (tmp_path / "w1" / name).read_bytes() == (tmp_path / "w2" / name).read_bytes()
    assert one.stats == two.stats and one.stats.n_samples == len(samples)
    # a folder switched with other settings is not mixed with these
    other = SwitchJob(CodeSwitcher(job.switcher.lexicons, "ml", p=0.9, seed=3))
    with pytest.raises(CSRError, match="other settings"):
        switch_shards(pattern, tmp_path / "w1", other)


@pytest.mark.slow
def test_ray_data_path_gives_the_same_bytes(shards, photos, job, tmp_path):
    """SLOW (15-35 s on this 2-core box, mostly Ray start-up): the one Ray test. A local Ray with one CPU, one Ray
    Data task per shard or table; the outputs are byte-identical to the local run's, a bad shard fails the run with
    its own message, and a Ray the caller started is left running."""
    import ray

    pattern, _ = shards
    local = switch_shards(pattern, tmp_path / "local", job)
    table = _tsv(tmp_path / "t.tsv", photos[:10])
    switch_tables(str(table), job, output=tmp_path / "local.tsv")
    bad = tmp_path / "bad" / "00009.tar"
    bad.parent.mkdir()
    bad.write_bytes(b"not a tar" * 100)
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False, configure_logging=False)
    try:
        ray_run = switch_shards(pattern, tmp_path / "ray", job, use_ray=True)
        switch_tables(str(table), job, out_dir=tmp_path / "ray-tables", use_ray=True)
        with pytest.raises(DataError, match=r"00009\.tar is not a tar archive"):
            switch_shards(str(bad), tmp_path / "ray-bad", job, use_ray=True)
        assert ray.is_initialized()
    finally:
        ray.shutdown()
    assert ray_run.stats == local.stats
    for i in range(N_SHARDS):
        assert (tmp_path / "ray" / f"{i:05d}.tar").read_bytes() == (tmp_path / "local" / f"{i:05d}.tar").read_bytes()
    assert (tmp_path / "ray" / "sizes.json").read_bytes() == (tmp_path / "local" / "sizes.json").read_bytes()
    assert (tmp_path / "ray-tables" / "t.tsv").read_bytes() == (tmp_path / "local.tsv").read_bytes()
    assert not (tmp_path / "ray-bad" / "00009.tar").exists()


# ---- caption tables ----------------------------------------------------------------------------------------------------


def _tsv(path: Path, rows: list[tuple[Path, str]], sep: str = "\t") -> Path:
    with open(path, "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, delimiter=sep, lineterminator="\n")
        writer.writerow(["filepath", "caption", "extra"])
        for i, (photo, caption) in enumerate(rows):
            writer.writerow([str(photo), caption, f"x{i}"])
    return path


def test_csv_table_read_back_by_open_clip_csv_dataset(photos, switcher, clip_io, shared_data, tmp_path):
    import pandas as pd
    import torch
    from open_clip_train.data import CsvDataset

    rows = photos[:8] + [(photos[8][0], 'A "big" dog, running\tfast on the beach .')]  # quoting and a tab
    table = _tsv(tmp_path / "train.tsv", rows)
    out = tmp_path / "train.cs.tsv"
    assert _cli([*_lexicon_args(shared_data), "--table", str(table), "--out", str(out), "--quiet"]) == 0
    expected = [switcher.switch(caption, str(i)) for i, (_, caption) in enumerate(rows)]  # no key column: row number
    tokenizer, preprocess = clip_io
    dataset = CsvDataset(str(out), preprocess, img_key="filepath", caption_key="caption", sep="\t",
                         tokenizer=tokenizer)
    assert len(dataset) == len(rows)
    items = [dataset[i] for i in range(len(rows))]
    assert all(image.shape == (3, 32, 32) for image, _ in items)
    assert torch.equal(torch.stack([t for _, t in items]), tokenizer([r.text for r in expected]))
    frame = pd.read_csv(out, sep="\t")
    assert list(frame.columns) == ["filepath", "caption", "extra", "caption_orig", "cs_json"]
    assert frame["caption_orig"].tolist() == [caption for _, caption in rows]
    assert frame["extra"].tolist() == [f"x{i}" for i in range(len(rows))]
    records = [json.loads(value) for value in frame["cs_json"]]
    assert [r["key"] for r in records] == [str(i) for i in range(len(rows))]
    assert [r["spans"] for r in records] == [[s._asdict() for s in r.spans] for r in expected]


def test_parquet_table_keyed_like_the_shards_and_written_as_tsv(shards, photos, switcher, job, clip_io, tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq
    import torch
    from open_clip_train.data import CsvDataset

    pattern, samples = shards
    keys = [key for key, _ in samples]
    table = pa.table({"key": keys, "caption": [c for _, c in samples], "width": list(range(len(samples))),
                      "filepath": [str(photo) for photo, _ in photos]})
    source = tmp_path / "meta.parquet"
    pq.write_table(table, source, row_group_size=7)
    result = switch_table(source, tmp_path / "meta.cs.parquet", SwitchJob(job.switcher, batch_size=5))
    assert result.stats.n_samples == len(samples)
    back = pq.read_table(tmp_path / "meta.cs.parquet")
    assert back.schema.field("width").type == pa.int64() and back["width"].to_pylist() == list(range(len(samples)))
    switched = back["caption"].to_pylist()
    # img2dataset's parquet `key` equals the tar `__key__`: the table and the shards get the same captions
    shard_out = tmp_path / "shards"
    switch_shards(pattern, shard_out, job)
    from_shards = {r["key"]: r["text"] for i in range(N_SHARDS) for r in read_sidecars(shard_out / f"{i:05d}.tar")}
    assert switched == [from_shards[k] for k in keys]
    assert back["caption_orig"].to_pylist() == [c for _, c in samples]

    tsv = tmp_path / "meta.tsv"  # parquet in, TSV out: what open_clip_train's CsvDataset reads
    switch_table(source, tsv, job)
    tokenizer, preprocess = clip_io
    dataset = CsvDataset(str(tsv), preprocess, img_key="filepath", caption_key="caption", tokenizer=tokenizer)
    assert torch.equal(torch.stack([dataset[i][1] for i in range(len(dataset))]), tokenizer(switched))


def test_table_batches_over_two_workers_give_the_same_bytes(photos, job, tmp_path):
    rows = photos * 3
    table = _tsv(tmp_path / "t.csv", rows, sep=",")  # comma-separated: detected, and kept in the output
    one = switch_tables(str(table), SwitchJob(job.switcher, batch_size=2048), output=tmp_path / "one.csv")
    two = switch_tables(str(table), SwitchJob(job.switcher, batch_size=5), output=tmp_path / "two.csv", workers=2)
    assert (tmp_path / "one.csv").read_bytes() == (tmp_path / "two.csv").read_bytes()
    assert one.stats == two.stats and one.stats.n_samples == len(rows)
    assert (tmp_path / "one.csv").read_text(encoding="utf-8").startswith("filepath,caption,extra,caption_orig,cs_json\n")


# ---- failures leave nothing half-written -------------------------------------------------------------------------------


def test_failed_multiworker_job_leaves_no_partial_shard(shards, job, tmp_path):
    pattern, _ = shards
    folder = tmp_path / "in"
    folder.mkdir()
    for i in range(N_SHARDS):
        source = Path(pattern.split("{")[0]) / f"{i:05d}.tar"
        (folder / source.name).write_bytes(source.read_bytes())
    (folder / "00002.tar").write_bytes(b"\xff\xd8\xff\xe0 a JPEG, not a tar" * 50)
    out = tmp_path / "out"
    with pytest.raises(DataError, match=r"00002\.tar is not a tar archive"):
        switch_shards(str(folder / "{00000..00003}.tar"), out, job, workers=2)
    assert not (out / "00002.tar").exists()
    assert _leftovers(out) == []  # the other workers stopped and removed their temp files
    assert not (out / "sizes.json").exists()  # sizes only for a run that finished
    for done in out.glob("*.tar"):  # whatever did finish is complete
        with tarfile.open(done) as tar:
            assert len(tar.getnames()) == 5 * PER_SHARD


def test_killed_job_leaves_no_shard_under_its_final_name(shards, tmp_path):
    """The input shard is a pipe fed half a shard, so the job is surely mid-shard when it is killed (SIGKILL)."""
    pattern, _ = shards
    data = (Path(pattern.split("{")[0]) / "00000.tar").read_bytes()
    fifo = tmp_path / "00000.tar"
    os.mkfifo(fifo)
    out = tmp_path / "out"
    lexicon = tmp_path / "en-de.txt"  # a small lexicon: the job starts in a second
    lexicon.write_text("dog Hund\nman Mann\nbeach Strand\n", encoding="utf-8")
    job = subprocess.Popen([sys.executable, "-m", "csr_core", "codeswitch", "--lexicon", str(lexicon), "--shards",
                            str(fifo), "--out-dir", str(out)], stderr=subprocess.PIPE)
    try:
        with open(fifo, "wb") as pipe:  # blocks until the job opens the shard
            pipe.write(data[: len(data) // 2])
            pipe.flush()
            deadline = time.monotonic() + 60
            while not _leftovers(out) and time.monotonic() < deadline:
                time.sleep(0.02)
            assert _leftovers(out), "the job never started writing"
            job.send_signal(signal.SIGKILL)
            job.wait(timeout=30)
    finally:
        if job.poll() is None:
            job.kill()
            job.wait()
        if job.stderr is not None:
            job.stderr.close()
    assert job.returncode == -signal.SIGKILL
    assert not (out / "00000.tar").exists() and not (out / "sizes.json").exists()
    assert [name.startswith(".00000.tar.") for name in _leftovers(out)] == [True]  # only a hidden temp file


# ---- clear errors ------------------------------------------------------------------------------------------------------


def _one_photo(photos) -> bytes:
    return photos[0][0].read_bytes()


@pytest.mark.parametrize("case, message", [
    ("not-a-tar", r"bad\.tar is not a tar archive"),
    ("empty", r"bad\.tar is not a tar archive"),
    ("missing-caption", r"bad\.tar: sample '000000001' has no \.txt caption \(members: 000000001\.jpg, "
                        r"000000001\.json\)"),
    ("not-utf8", r"bad\.tar: member '000000001\.txt' \(the caption of sample '000000001'\) is not valid UTF-8 "
                 r"\(byte 0xe9 at offset 5\)"),
    ("truncated", r"bad\.tar: member '000000001\.jpg' is truncated"),
    ("no-end-marker", r"bad\.tar: truncated tar: no end-of-archive marker after member '000000000\.json'"),
    ("already-switched", r"bad\.tar: sample '000000000' already has a \.orig\.txt member"),
    ("repeated-member", r"bad\.tar: member '000000000\.txt' repeats the \.txt of sample '000000000'"),
])
def test_malformed_shards_name_shard_and_member(case, message, photos, job, tmp_path):
    photo = _one_photo(photos)
    good = _sample("000000000", photos[0][0], "A dog on the beach .")
    bad = tmp_path / "bad.tar"
    if case == "not-a-tar":
        bad.write_bytes(photo)
    elif case == "empty":
        bad.write_bytes(b"")
    elif case == "missing-caption":
        _write_tar(bad, good + [("000000001.jpg", photo), ("000000001.json", b"{}")])
    elif case == "not-utf8":
        _write_tar(bad, good + [("000000001.jpg", photo), ("000000001.txt", b"A caf\xe9 .")])
    elif case in ("truncated", "no-end-marker"):
        _write_tar(bad, good + _sample("000000001", photos[1][0], "A cat ."))
        whole = bad.read_bytes()
        with tarfile.open(bad) as tar:
            second = tar.getmember("000000001.jpg")
        cut = second.offset_data + 100 if case == "truncated" else second.offset
        bad.write_bytes(whole[:cut])
    elif case == "already-switched":
        _write_tar(bad, good[:2] + [("000000000.orig.txt", b"A dog on the beach .")])
    else:
        _write_tar(bad, good + [("000000000.txt", b"again")])
    out = tmp_path / "out"
    with pytest.raises(DataError, match=message):
        switch_shard(bad, out / "bad.tar", job)
    assert not (out / "bad.tar").exists() and _leftovers(out) == []


def test_missing_captions_can_be_skipped(photos, job, tmp_path):
    photo = _one_photo(photos)
    source = tmp_path / "in.tar"
    _write_tar(source, _sample("000000000", photos[0][0], "A dog .") + [("000000001.jpg", photo)]
               + _sample("000000002", photos[2][0], "A cat ."))
    result = switch_shard(source, tmp_path / "out.tar", SwitchJob(job.switcher, on_missing="skip"))
    assert (result.stats.n_samples, result.stats.n_skipped) == (2, 1)
    with tarfile.open(tmp_path / "out.tar") as tar:
        assert not [n for n in tar.getnames() if n.startswith("000000001")]
        assert len(tar.getnames()) == 10


@pytest.mark.parametrize("case, message", [
    ("no-column", r"t\.tsv has no caption column 'caption' \(columns: filepath, title\)"),
    ("empty-cell", r"t\.tsv, line 3: no caption \(the 'caption' cell is empty\)"),
    ("not-utf8", r"t\.tsv, line 3: the caption \('caption'\) is not valid UTF-8"),
    ("fields", r"t\.tsv, line 5: 1 field\(s\) but the header has 2"),
    ("parquet-null", r"t\.parquet, row 1: no caption"),
    ("not-parquet", r"t\.parquet is not a parquet file"),
    ("already", r"t\.tsv already has a 'caption_orig' column"),
])
def test_malformed_tables_name_file_and_line(case, message, job, tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    source = tmp_path / ("t.parquet" if "parquet" in case else "t.tsv")
    body = {"no-column": b"filepath\ttitle\na.jpg\tA dog\n",
            "empty-cell": b"filepath\tcaption\na.jpg\tA dog\nb.jpg\t\n",
            "not-utf8": b"filepath\tcaption\na.jpg\tA dog\nb.jpg\tA caf\xe9\n",
            "fields": b"filepath\tcaption\na.jpg\tA dog\nb.jpg\t\"two\nlines\"\nc.jpg\n",
            "not-parquet": b"PAR1 not really",
            "already": b"filepath\tcaption\tcaption_orig\tcs_json\na.jpg\tA dog\tA dog\t{}\n"}
    if case == "parquet-null":
        pq.write_table(pa.table({"caption": ["A dog", None]}), source)
    else:
        source.write_bytes(body[case])
    out = tmp_path / "out" / source.name
    with pytest.raises(DataError, match=message):
        switch_table(source, out, job)
    assert not out.exists() and _leftovers(out.parent) == []


def test_table_rows_without_caption_can_be_skipped(shared_data, tmp_path, capsys):
    import pyarrow.parquet as pq

    source = tmp_path / "t.tsv"
    source.write_text("filepath\tcaption\na.jpg\tA dog on the beach .\nb.jpg\t\nc.jpg\tA man .\n", encoding="utf-8")
    out = tmp_path / "t.parquet"  # TSV in, parquet out
    assert _cli([*_lexicon_args(shared_data), "--table", str(source), "--out", str(out), "--on-missing", "skip"]) == 0
    assert "1 tables, 2 captions switched (1 skipped)" in capsys.readouterr().err
    back = pq.read_table(out)
    assert back["filepath"].to_pylist() == ["a.jpg", "c.jpg"]
    assert [json.loads(v)["key"] for v in back["cs_json"].to_pylist()] == ["0", "2"]  # row numbers of the input


def test_cli_argument_errors(shards, shared_data, tmp_path):
    pattern, _ = shards
    base = _lexicon_args(shared_data)
    with pytest.raises(CSRError, match="needs --out-dir"):
        _cli([*base, "--shards", pattern])
    with pytest.raises(CSRError, match="not both"):
        _cli([*base, "--shards", pattern, "--table", "t.tsv", "--out-dir", str(tmp_path)])
    with pytest.raises(CSRError, match="--workers applies to --shards or --table"):
        _cli([*base, "--workers", "2", "--input", str(tmp_path / "x.txt")])
    with pytest.raises(CSRError, match="is the input itself"):
        _cli([*base, "--shards", pattern, "--out-dir", str(Path(pattern).parent)])
