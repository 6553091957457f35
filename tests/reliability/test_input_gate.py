"""The input gate and the CLI's clean exits, through the paths a user hits: FIFOs and devices refused instead of read
forever, gzip bombs stopped while inflating, hostile JSON and meta.json named, argument errors found before any work,
an unusable cache only warned about, codeswitch output written atomically, and Ctrl-C a one-line cancel."""

from __future__ import annotations

import gzip
import json
import os
import platform
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest

from csr_core.errors import DataError, LexiconError

from .conftest import cli_command, run_cli, run_cli_subprocess, subprocess_env, REPO

LEXICON = "dog hund\ncat katze\nbeach strand\n"


def _jsonl_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "ds"
    folder.mkdir()
    return folder


def _special(kind: str, path: Path) -> None:
    if kind == "fifo":
        os.mkfifo(path)
    else:
        path.symlink_to("/dev/zero")


@pytest.mark.parametrize("kind, said", [("fifo", "FIFO"), ("dev-zero", "device")])
def test_a_fifo_or_device_as_captions_or_lexicon_is_refused_not_read(tmp_path, kind, said):
    folder = _jsonl_folder(tmp_path)
    _special(kind, folder / "captions.jsonl")
    with pytest.raises(DataError, match=f"captions.jsonl: is (a|an) .*{said}"):
        from csr_core.datasets import load_dataset

        load_dataset(f"jsonl:{folder}")
    lexicon = tmp_path / "en-de.txt"
    _special(kind, lexicon)
    # a child process: were the gate missing it would hang (FIFO) or fill memory (/dev/zero) until the timeout
    result = run_cli_subprocess("codeswitch", "--lexicon", f"de={lexicon}", "--langs", "de", "--quiet", timeout=60)
    assert result.rc == 2 and said in result.err and "Traceback" not in result.err, result.text


def test_a_gzip_bomb_lexicon_is_stopped_while_inflating(tmp_path):
    bomb = tmp_path / "en-de.txt.gz"
    bomb.write_bytes(gzip.compress(("dog hund\n" * 1_000_000).encode()))  # 9 MB of text in ~30 kB
    assert bomb.stat().st_size < 100_000
    result = run_cli_subprocess("codeswitch", "--lexicon", f"de={bomb}", "--langs", "de", "--quiet",
                                CSR_MAX_INPUT_MB="2", timeout=60)
    assert result.rc == 2 and "inflates to more than the 2 MiB input limit" in result.err, result.text
    from csr_core.lexicon import Lexicon

    assert len(Lexicon.from_file(bomb, "en", "de")) == 1  # under the default limit the same file loads


def test_a_gzip_bomb_upload_is_refused_on_upload_and_nothing_is_stored(tmp_path):
    from csr_core.uploads import save_upload

    bomb = gzip.compress(b"dog hund\n" * 500_000)  # 4.5 MB of text in a few kB: under the 50 MiB upload limit
    with pytest.raises(DataError, match="inflates to more than the 1 MiB"):
        save_upload(tmp_path / "session", "en-de.txt.gz", bomb, max_inflated_bytes=1 << 20)
    assert not [p for p in (tmp_path / "session").rglob("*") if p.is_file()]
    stored = save_upload(tmp_path / "session", "en-de.txt.gz", bomb, max_inflated_bytes=8 << 20)
    assert stored.read_bytes() == bomb


def test_a_truncated_gzip_is_named_not_an_eoferror(tmp_path):
    captions = tmp_path / "captions.txt.gz"
    captions.write_bytes(gzip.compress(b"a dog on the beach\n" * 200)[:-12])
    lexicon = tmp_path / "en-de.txt"
    lexicon.write_text(LEXICON)
    result = run_cli("codeswitch", "--lexicon", str(lexicon), "--input", str(captions), "--quiet")
    assert result.rc == 2 and "gzip data ends early" in result.err and str(captions) in result.err, result.text


def test_deeply_nested_json_is_named_in_captions_and_model_configs(tmp_path):
    from csr_core.datasets import load_dataset

    folder = _jsonl_folder(tmp_path)
    good = json.dumps({"image": "a.jpg", "captions": {"en": ["a dog"]}})
    (folder / "captions.jsonl").write_text(good + "\n" + "[" * 100_000 + "]" * 100_000 + "\n")
    with pytest.raises(DataError, match=r"captions.jsonl:2: JSON nested deeper than 100 levels"):
        load_dataset(f"jsonl:{folder}", verify_images="none")
    config = tmp_path / "deep.json"
    config.write_text('{"embed_dim": ' + "[" * 100_000 + "]" * 100_000 + "}")
    result = run_cli("eval", "--model", f"open_clip-config:{config}", "--quiet")
    assert result.rc == 2 and "deep.json: JSON nested deeper" in result.err, result.text



def test_deeply_nested_json_in_a_heads_file_metadata_is_named(tmp_path):
    """A user's heads file is safetensors, but its metadata strings are JSON: nesting them 100k deep used to raise
    RecursionError from the loader."""
    import torch
    from safetensors.torch import save_file

    from csr_core.encoders.csr_mini import HEADS_FORMAT, ProjectionHeads
    from csr_core.errors import ModelError

    path = tmp_path / "deep.safetensors"
    save_file({"w": torch.zeros(2)}, str(path),
              metadata={"format": HEADS_FORMAT, "config": "[" * 100_000 + "]" * 100_000})
    with pytest.raises(ModelError, match=r"deep.safetensors: metadata 'config': JSON nested deeper than 100"):
        ProjectionHeads.load(path)

def test_a_binary_file_as_a_model_config_is_named(tmp_path):
    binary = tmp_path / "ls"
    binary.write_bytes(b"\x7fELF\x02\x01\x01\x00" + bytes(range(256)) * 4)
    result = run_cli("eval", "--model", f"open_clip-config:{binary}", "--quiet")
    assert result.rc == 2 and f"{binary} looks binary" in result.err and "Traceback" not in result.err, result.text


@pytest.mark.parametrize("meta, said", [
    (b"{\"name\": \"caf\xe9\"}", "meta.json is not valid utf-8 text (byte 0xe9 at line 1)"),
    (json.dumps({"provenance": ["de", "machine"]}).encode(), "'provenance' must be an object"),
    (json.dumps({"image_sources": "flickr8k"}).encode(), "'image_sources' must be a list of strings"),
    (json.dumps({"aligned": ["en", 3]}).encode(), "'aligned' must hold non-empty strings"),
    (json.dumps({"provenance": {"de": 1}}).encode(), "provenance of 'de' must be a non-empty string"),
    (None, "meta.json: is a folder"),
])
def test_a_hostile_meta_json_is_named_with_its_field(tmp_path, meta, said):
    from csr_core.datasets import load_dataset

    folder = _jsonl_folder(tmp_path)
    (folder / "captions.jsonl").write_text(json.dumps({"image": "a.jpg", "captions": {"en": ["a dog"]}}) + "\n")
    if meta is None:
        (folder / "meta.json").mkdir()
    else:
        (folder / "meta.json").write_bytes(meta)
    with pytest.raises(DataError, match=re.escape(said)):
        load_dataset(f"jsonl:{folder}", verify_images="none")


@pytest.mark.parametrize("argv, said", [
    (["eval", "--model", "csr-mini", "--seed", "-1"], "seed must be between 0 and 4294967295"),
    (["eval", "--model", "csr-mini", "--seed", "18446744073709551616"], "seed must be between 0 and"),
    (["eval", "--model", "csr-mini", "--k", "1", "5", "5"], "K lists 5 more than once"),
    (["eval", "--model", "csr-mini", "--langs", "en,de,en"], "langs lists en more than once"),
    (["eval", "--model", "csr-mini", "--settings", "cs-queries", "--cs-ps", "0.5", "0.5"],
     "cs probabilities lists 0.5"),
    (["eval", "--model", "csr-mini", "--out", ""], "--out: must not be empty"),
    (["codeswitch", "--langs", "de", "--seed", "-1"], "seed must be between 0 and"),
    (["finetune", "--lr", "nan"], "lr must be a finite number > 0, got nan"),
    (["experiment", "--threads", "0", "--report-only"], "--threads must be >= 1"),
])
def test_argument_errors_are_found_before_any_work(argv, said):
    result = run_cli_subprocess(*argv, timeout=120)
    assert result.rc == 2 and said in result.err and "Traceback" not in result.err, result.text
    assert "encode" not in result.err  # nothing was embedded before the refusal


def test_an_unusable_cache_dir_warns_and_the_eval_completes(tmp_path, tiny_model):
    from .conftest import eval_args

    not_a_folder = tmp_path / "cache-is-a-file"
    not_a_folder.write_text("x")
    result = run_cli_subprocess(*eval_args(tiny_model, "--out", str(tmp_path / "results"), photos=12),
                                CSR_CACHE_DIR=str(not_a_folder), timeout=300)
    assert result.rc == 0, result.text
    assert "cannot be read (Not a directory); continuing without it" in result.err
    assert len(list((tmp_path / "results" / "runs").iterdir())) == 1


def test_codeswitch_output_is_checked_first_and_written_atomically(tmp_path):
    lexicon = tmp_path / "en-de.txt"
    lexicon.write_text(LEXICON)
    captions = tmp_path / "captions.txt"
    captions.write_text("a dog on the beach\na cat\n")
    base = ["codeswitch", "--lexicon", str(lexicon), "--input", str(captions), "--p", "1", "--quiet"]
    folder = tmp_path / "out-folder"
    folder.mkdir()
    result = run_cli(*base, "--output", str(folder))
    assert result.rc == 2 and "is a folder" in result.err
    result = run_cli(*base, "--output", str(tmp_path / "missing" / "out.txt"))
    assert result.rc == 2 and "does not exist" in result.err
    out = tmp_path / "out.txt"
    out.write_text("the previous output\n")
    result = run_cli("codeswitch", "--lexicon", str(tmp_path / "nope.txt"), "--input", str(captions),
                     "--output", str(out))
    assert result.rc == 2 and out.read_text() == "the previous output\n"  # a failed run loses nothing
    assert run_cli(*base, "--output", str(out)).rc == 0
    assert out.read_text().splitlines() == ["a hund on the strand", "a katze"]
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_a_space_separated_header_is_not_loaded_as_a_pair():
    from csr_core.lexicon import Lexicon

    for header, body in (("source target", "dog hund"), ("en de", "dog hund"), ("de en", "hund dog")):
        lexicon = Lexicon.from_bytes(f"{header}\n{body}\ncat katze\n".encode(), "en-de.txt", "en", "de")
        assert "source" not in lexicon and "en" not in lexicon and "de" not in lexicon
        assert lexicon.report is not None and lexicon.report.header is not None
    with pytest.raises(LexiconError):
        Lexicon.from_bytes(b"source target\n", "en-de.txt", "en", "de")  # a header alone is an empty lexicon


def _default_sigint() -> None:
    """In the child before exec: Ctrl-C as a terminal delivers it. A runner started in the background of a
    non-interactive shell ignores SIGINT, and an ignored signal stays ignored across exec, so Python would never turn it
    into KeyboardInterrupt."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _blocked_reading_stdin(pid: int) -> bool:
    """True while the process sits in read(0, ...) (Linux /proc/PID/syscall: number, then the fd)."""
    read_nr = {"x86_64": "0", "aarch64": "63"}[platform.machine()]
    try:
        fields = Path(f"/proc/{pid}/syscall").read_text().split()
    except OSError:
        return False
    return len(fields) > 1 and fields[0] == read_nr and int(fields[1], 16) == 0


@pytest.mark.skipif(platform.system() != "Linux" or platform.machine() not in ("x86_64", "aarch64")
                    or not Path("/proc/self/syscall").exists(), reason="needs Linux /proc/PID/syscall")
def test_ctrl_c_is_a_one_line_cancel_that_writes_nothing(tmp_path):
    lexicon = tmp_path / "en-de.txt"
    lexicon.write_text(LEXICON)
    out = tmp_path / "out.txt"
    proc = subprocess.Popen(cli_command("codeswitch", "--lexicon", str(lexicon), "--output", str(out)), cwd=REPO,
                            env=subprocess_env(), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, preexec_fn=_default_sigint)
    try:
        proc.stdin.write("a dog\n")
        proc.stdin.flush()  # the captions are half sent: the command is inside its work, waiting for the rest
        deadline = time.monotonic() + 120
        while not _blocked_reading_stdin(proc.pid):
            assert proc.poll() is None and time.monotonic() < deadline, "codeswitch never started reading stdin"
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 130, err
    assert err.strip().splitlines()[-1] == "cancelled; nothing was written" and "Traceback" not in err
    assert not out.exists()
