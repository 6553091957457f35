"""A warm evaluation never builds the model: the encoder's fingerprint comes from the memo of an earlier build, the
vectors from the embedding cache. Any change to what the model is built from builds it again; a memo that no longer
matches the built model is removed with a clear error."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

from tests.reliability.conftest import REPO, comparable_rows, eval_args, subprocess_env

_PROBE = """
import sys
from csr_core.cli import main
rc = main(sys.argv[1:])
print("MODULES", "torch" in sys.modules, "open_clip" in sys.modules)
sys.exit(rc)
"""


def _eval(model: str, out, cache) -> tuple[int, str, str, bool]:
    """`eval` in a fresh process: (rc, stdout, stderr, whether torch was imported)."""
    proc = subprocess.run([sys.executable, "-c", _PROBE, *eval_args(model, "--langs", "en,de", "--out", str(out))],
                          cwd=REPO, env=subprocess_env(CSR_CACHE_DIR=str(cache)), capture_output=True, text=True,
                          timeout=300)
    line = next((x for x in proc.stdout.splitlines() if x.startswith("MODULES")), "MODULES ? ?")
    return proc.returncode, proc.stdout, proc.stderr, line.split()[1] == "True"


def test_a_warm_eval_reads_every_vector_without_importing_torch(tiny_model, tmp_path, shared_data):
    from csr_core.results import ResultsStore

    cache, out = tmp_path / "cache", tmp_path / "results"
    rc, _, err, torch_cold = _eval(tiny_model, out, cache)
    assert rc == 0 and torch_cold, err
    memos = list((cache / "encoder-memo").glob("*.json"))
    assert len(memos) == 1
    rc, _, err, torch_warm = _eval(tiny_model, out, cache)
    assert rc == 0, err
    assert not torch_warm  # neither torch nor open_clip: the model was never built
    store = ResultsStore(out)
    cold, warm = (store.load()[lambda r, m=m: r["run_id"] == m["run_id"]] for m in store.runs())
    assert comparable_rows(cold).equals(comparable_rows(warm))
    fingerprints = {m["fingerprints"]["model"] for m in store.runs()}
    assert len(fingerprints) == 1 and json.loads(memos[0].read_text())["fingerprint"] in fingerprints


def test_a_rewritten_weight_file_builds_the_model_again(tiny_model, tiny_checkpoint, tmp_path, shared_data):
    cache, out = tmp_path / "cache", tmp_path / "results"
    checkpoint = tmp_path / "copy.safetensors"
    shutil.copy(tiny_checkpoint, checkpoint)
    model = tiny_model.rsplit("@", 1)[0] + f"@{checkpoint}"
    assert _eval(model, out, cache)[0] == 0
    checkpoint.write_bytes(checkpoint.read_bytes())  # same bytes, rewritten: its identity (ctime) changes
    rc, _, err, built = _eval(model, out, cache)
    assert rc == 0 and built, err
    assert len(list((cache / "encoder-memo").glob("*.json"))) == 2


def test_a_memo_that_disagrees_with_the_built_model_is_removed_with_a_clear_error(tiny_model, tmp_path, shared_data):
    cache, out = tmp_path / "cache", tmp_path / "results"
    assert _eval(tiny_model, out, cache)[0] == 0
    (memo,) = (cache / "encoder-memo").glob("*.json")
    entry = json.loads(memo.read_text())
    entry["fingerprint"] = "0" * 64  # as if remembered for other weights: no cached vector matches it
    memo.write_text(json.dumps(entry))
    rc, _, err, _ = _eval(tiny_model, out, cache)
    assert rc == 2 and "differs from the one remembered" in err and str(memo) in err, err
    assert not memo.exists()
    rc, _, err, built = _eval(tiny_model, out, cache)
    assert rc == 0 and built, err
    assert os.path.exists(memo)  # remembered again, from the model it built
