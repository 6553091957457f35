"""Security: uploads stay in a private per-session folder with size/type limits, nothing a user sends is executed or
unpickled, browser input reaches the file system only through checks, and the server listens on localhost only.
"""

from __future__ import annotations

import ast
import hashlib
import json
import os
import pickle
import re
import socket
import stat
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from csr_core.errors import DataError, ModelError

from .conftest import REPO, TINY_CONFIG, eval_args, page_files, page_path, run_cli, subprocess_env


class _Payload:
    """Unpickling this runs os.mkdir(marker): the marker directory is proof that code ran."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.mkdir, (str(self.marker),))


# ---------------------------------------------------------------------------------------------------------------------
# uploads


def test_each_session_gets_its_own_private_upload_folder(tmp_path):
    from csr_core.uploads import new_session_dir, remove_session_dir, save_upload

    alice, bob = new_session_dir(tmp_path), new_session_dir(tmp_path)
    assert alice != bob
    for folder in (alice, bob):
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700  # other server users cannot list or read it
    mine = save_upload(alice, "en-de.txt", b"dog hund\n")
    assert mine.parent == alice.resolve()
    assert list(bob.iterdir()) == []  # nothing of Alice's is visible from Bob's folder
    save_upload(bob, "en-de.txt", b"cat katze\n")  # same name, other session: no clash
    assert mine.read_bytes() == b"dog hund\n"
    remove_session_dir(alice)
    assert not alice.exists() and bob.exists()


def test_upload_session_folders_are_private():
    """What the Code-switch page calls (csr_core.uploads.new_session_dir): a fresh 0700 folder per session."""
    from csr_core.uploads import new_session_dir

    one, two = new_session_dir(), new_session_dir()
    try:
        assert one != two and stat.S_IMODE(one.stat().st_mode) == 0o700
    finally:
        for folder in (one, two):
            os.rmdir(folder)


HOSTILE_NAMES = ["../../escape.txt", "/tmp/abs.txt", "..\\..\\win.txt", "a/../../b.txt", "....//x.txt",
                 "%2e%2e%2fencoded.txt", "evil\u202etxt.exe", ".bashrc.txt", "x" * 300 + ".txt"]


@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_no_upload_name_writes_outside_the_session_folder(name, tmp_path):
    """Whatever the name, the bytes land inside the session folder or are refused; nothing is written elsewhere."""
    from csr_core.uploads import save_upload

    session = tmp_path / "srv" / "session"
    session.mkdir(parents=True)
    try:
        stored = save_upload(session, name, b"dog hund\n")
    except DataError:
        stored = None
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    if stored is None:
        assert files == []
    else:
        assert files == [stored] and stored.resolve().parent == session.resolve()


def test_typed_paths_are_confined_to_allowed_folders(tmp_path):
    from csr_core.uploads import check_user_path

    data = tmp_path / "data"
    (data / "mine").mkdir(parents=True)
    outside = tmp_path / "secret"
    outside.mkdir()
    (data / "link").symlink_to(outside)  # a symlink inside the allowed folder that points out of it
    assert check_user_path(data / "mine", [data]) == (data / "mine").resolve()
    for bad in (outside, data / ".." / "secret", data / "link", "/etc/passwd", "~/.ssh", "bad\x00path"):
        with pytest.raises(DataError, match="outside the folders|NUL"):
            check_user_path(bad, [data])


# ---------------------------------------------------------------------------------------------------------------------
# nothing is executed or unpickled

SCANNED = [*sorted((REPO / "csr_core").rglob("*.py")), *page_files(), REPO / "dashboard.py"]
#: (file, call) pairs that are allowed, each with the reason it is safe.
ALLOWED = {
    ("csr_core/languages/uriel.py", "np.load(allow_pickle=True)"):
        "reads the installed urielplus package's own .npz files (path from up.__file__), never user input",
}


def _dotted(node: ast.AST) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f"{_dotted(node.value)}.{node.attr}"
    return "?"


def _kw(call: ast.Call, name: str):
    for keyword in call.keywords:
        if keyword.arg == name:
            return keyword.value.value if isinstance(keyword.value, ast.Constant) else "<dynamic>"
    return None


def _unsafe_calls(path: Path) -> list[tuple[int, str]]:
    """Calls that could run code from data: unpickling, eval/exec, shells, remote code, weights_only off."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if not isinstance(node, ast.Call):
            continue
        name = _dotted(node.func)
        tail = name.rsplit(".", 1)[-1]
        problem = None
        if name in ("eval", "exec", "compile", "__import__") or name in ("os.system", "os.popen"):
            problem = f"{name}()"
        elif re.fullmatch(r"(c?pickle|dill|joblib|marshal|shelve|cloudpickle)\.(load|loads|open|Unpickler)", name):
            problem = f"{name}()"
        elif name.endswith("pd.read_pickle") or tail == "read_pickle":
            problem = f"{name}()"
        elif name.endswith("torch.load") and _kw(node, "weights_only") is not True:
            problem = "torch.load() without weights_only=True"
        elif tail == "load_checkpoint" and _kw(node, "weights_only") is not True:
            problem = f"{name}() without weights_only=True"
        elif name in ("np.load", "numpy.load") and _kw(node, "allow_pickle") not in (None, False):
            problem = "np.load(allow_pickle=True)"
        elif name.endswith("yaml.load") and "Safe" not in str(_kw(node, "Loader")):
            problem = "yaml.load() without SafeLoader"
        elif name.startswith("subprocess.") and _kw(node, "shell") not in (None, False):
            problem = f"{name}(shell=True)"
        elif _kw(node, "trust_remote_code") not in (None, False):
            problem = f"{name}(trust_remote_code=...)"
        elif tail == "import_module" and not (node.args and isinstance(node.args[0], (ast.Constant, ast.JoinedStr))):
            problem = "import_module() of a computed name"
        if problem:
            found.append((node.lineno, problem))
    return found


def test_no_code_path_unpickles_evals_or_shells_out_on_user_data():
    offending = []
    for path in SCANNED:
        rel = path.relative_to(REPO).as_posix()
        for line, problem in _unsafe_calls(path):
            if (rel, problem) not in ALLOWED:
                offending.append(f"{rel}:{line}: {problem}")
    assert not offending, "calls that may execute user data:\n" + "\n".join(offending)
    assert len(SCANNED) > 20  # the scan really looked at the package and the pages


def test_scanner_catches_what_it_should(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("import pickle, torch, numpy as np, subprocess\npickle.loads(b'')\ntorch.load(p)\n"
                   "torch.load(p, weights_only=False)\nnp.load(p, allow_pickle=True)\neval('1')\n"
                   "subprocess.run('ls', shell=True)\nM.from_pretrained('x', trust_remote_code=True)\n"
                   "torch.load(p, weights_only=True)\nnp.load(p)\n")
    lines = [line for line, _ in _unsafe_calls(bad)]
    assert lines == [2, 3, 4, 5, 6, 7, 8]


def test_parquet_reader_refuses_pickled_extension_types():
    """Results are parquet: pyarrow >= 14.0.1 no longer unpickles `arrow.py_extension_type` (CVE-2023-47248)."""
    import pyarrow

    major, minor, patch = (int(re.match(r"\d+", part).group()) for part in pyarrow.__version__.split(".")[:3])
    assert (major, minor, patch) >= (14, 0, 1)


def _tiny_hf_folder(folder: Path) -> Path:
    from transformers import CLIPConfig

    small = dict(hidden_size=32, intermediate_size=37, num_hidden_layers=1, num_attention_heads=2)
    CLIPConfig(text_config=dict(small, vocab_size=100, bos_token_id=0, eos_token_id=1, pad_token_id=1),
               vision_config=dict(small, image_size=30, patch_size=10), projection_dim=16).save_pretrained(folder)
    return folder


@pytest.mark.parametrize("backend", ["hf-folder", "open_clip-local-dir"])
def test_pickle_weights_in_model_folders_are_refused_unexecuted(backend, tmp_path, monkeypatch):
    import torch

    from csr_core.encoders.registry import load_encoder

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    marker = tmp_path / "PWNED"
    folder = tmp_path / "model"
    folder.mkdir()
    if backend == "hf-folder":
        _tiny_hf_folder(folder)
        weights, name = folder / "pytorch_model.bin", f"hf:{folder}"
    else:
        config = json.loads(TINY_CONFIG.read_text())
        (folder / "open_clip_config.json").write_text(json.dumps({"model_cfg": config, "preprocess_cfg": {}}))
        weights, name = folder / "open_clip_pytorch_model.bin", f"open_clip:local-dir:{folder}"
    torch.save({"w": torch.zeros(1), "x": _Payload(marker)}, weights)
    with pytest.raises(ModelError) as error:
        load_encoder(name)
    assert "safely" in str(error.value) or "refused" in str(error.value)
    assert not marker.exists()


def test_pickle_disguised_as_a_cache_shard_is_never_unpickled(tiny_model, tmp_path, monkeypatch):
    """A file dropped into the embedding cache with a valid checksum name but pickle content: set aside, not run."""
    from csr_core.embed_cache import CorruptShardWarning

    cache = tmp_path / "cache"
    monkeypatch.setenv("CSR_CACHE_DIR", str(cache))
    args = eval_args(tiny_model, "--langs", "en", "--out", tmp_path / "results")
    assert run_cli(*args).rc == 0
    (real,) = cache.glob("embeddings/*/image/*.safetensors")
    image_dir = real.parent
    real.unlink()  # so the lookup has to open the planted file
    marker = tmp_path / "PWNED"
    payload = pickle.dumps({"keys": _Payload(marker)})
    planted = image_dir / f"{hashlib.sha256(payload).hexdigest()}.safetensors"
    planted.write_bytes(payload)
    with pytest.warns(CorruptShardWarning, match=planted.name):
        assert run_cli(*args).rc == 0
    assert not marker.exists() and not planted.exists()


# ---------------------------------------------------------------------------------------------------------------------
# browser input never names a server path unchecked


def test_url_parameters_cannot_point_pages_at_server_paths(tmp_path, monkeypatch):
    """A shared link with `?dataset=jsonl:/somewhere` must not make the Code-switch page read that folder."""
    from streamlit.testing.v1 import AppTest

    page = page_path("codeswitch.py")
    target = tmp_path / "probe"
    target.mkdir()
    (target / "captions.jsonl").write_text(json.dumps({"image": "x.jpg", "captions": {"en": ["planted"]}}) + "\n")
    import csr_core.datasets as datasets

    opened = []
    real = datasets.load_jsonl

    def spy(path, *args, **kwargs):
        opened.append(str(path))
        return real(path, *args, **kwargs)

    monkeypatch.setattr(datasets, "load_jsonl", spy)
    at = AppTest.from_file(str(REPO / "dashboard.py"), default_timeout=120)
    at.query_params["dataset"] = f"jsonl:{target}"
    at.switch_page(str(page.relative_to(REPO)))
    at.run()
    assert not at.exception, [e.message for e in at.exception]
    assert at.session_state["cs_dataset"] != f"jsonl:{target}"
    assert opened == []  # the folder named in the URL was never read


def test_pages_store_uploads_only_through_the_checked_saver():
    """Every page with a file uploader hands the bytes to a saver that checks name, type and size."""
    uploader_pages = [p for p in page_files() if "file_uploader(" in p.read_text(encoding="utf-8")]
    assert uploader_pages, "no page takes uploads any more: update this test"
    for page in uploader_pages:
        text = page.read_text(encoding="utf-8")
        assert "save_upload(" in text, f"{page.name} takes uploads without save_upload"
        assert not re.search(r"open\([^)]*upload", text), f"{page.name} opens an upload path itself"


# ---------------------------------------------------------------------------------------------------------------------
# the server listens on localhost only


def _makefile_run_command() -> list[str]:
    text = (REPO / "Makefile").read_text(encoding="utf-8")
    match = re.search(r"^run:.*\n((?:\t.*\n)+)", text, re.MULTILINE)
    assert match, "Makefile has no run target"
    command = next(line for line in match.group(1).splitlines() if "streamlit run" in line)
    return command.strip().split()


def test_makefile_run_binds_to_localhost():
    command = _makefile_run_command()
    assert "--server.address" in command
    assert command[command.index("--server.address") + 1] in ("127.0.0.1", "localhost")
    assert "0.0.0.0" not in command and "--server.enableXsrfProtection" not in command
    assert "--server.enableCORS" not in command


def test_streamlit_config_keeps_xsrf_and_cors_protection():
    from streamlit import config

    config.get_config_options(force_reparse=True)
    assert config.get_option("server.enableXsrfProtection") is True
    assert config.get_option("server.enableCORS") is True
    assert config.get_option("server.address") in (None, "", "127.0.0.1", "localhost")
    assert config.get_option("server.maxUploadSize") <= 200  # MB; csr_core.uploads caps each file lower


def _listening(port: int) -> set[str]:
    """Local addresses (hex, as in /proc/net/tcp*) with a LISTEN socket on `port`."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            local, state = line.split()[1], line.split()[3]
            address, port_hex = local.rsplit(":", 1)
            if state == "0A" and int(port_hex, 16) == port:
                found.add(address)
    return found


def test_server_started_like_make_run_listens_on_loopback_only(tmp_path):
    if not Path("/proc/net/tcp").exists():
        pytest.skip("needs Linux /proc/net/tcp to read the bound address")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = _makefile_run_command()
    streamlit_at = command.index("streamlit")
    args = [sys.executable, "-m", *command[streamlit_at:]]
    args = [str(port) if a == "$(PORT)" else a for a in args]
    args += ["--server.headless", "true", "--server.fileWatcherType", "none"]
    assert "$(" not in " ".join(args), args
    env = subprocess_env(CSR_RESULTS_DIR=str(tmp_path / "results"), CSR_CACHE_DIR=str(tmp_path / "cache"))
    server = subprocess.Popen(args, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 90
        while not _listening(port):
            assert server.poll() is None, "the server exited"
            assert time.monotonic() < deadline, "the server did not start listening"
            time.sleep(0.3)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=30) as reply:
            assert reply.read() == b"ok"
        addresses = _listening(port)
        assert addresses == {"0100007F"}, addresses  # 127.0.0.1 only: not 0.0.0.0, not ::
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
