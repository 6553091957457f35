"""Fine-tuning transformers CLIP/BLIP (csr_core.training.hf_ft): tiny real models built from configs, real shared
photos with code-switched captions, real peft LoRA, real accelerate (in-process and under torchrun, 2 CPU processes
over gloo), the real leakage guard."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

pytest.importorskip("peft")
pytest.importorskip("accelerate")

from csr_core.errors import CSRError  # noqa: E402
from csr_core.training.hf_ft import FORMAT, MANIFEST, HFTrainConfig, finetune_hf, read_manifest  # noqa: E402
from testsupport import assert_evaluates_and_guards_training_photos, build_tiny_blip, build_tiny_clip  # noqa: E402


@pytest.fixture(scope="module")
def tiny_clip(tmp_path_factory) -> Path:
    return build_tiny_clip(tmp_path_factory.mktemp("tiny-clip"))


def _config(model: Path, kind: str = "hf", **fields) -> HFTrainConfig:
    base = dict(model=f"{kind}:{model}", arm="mlcs-de-fr-cs", epochs=3, batch_size=16, lr=1e-3, warmup=0, max_photos=16)
    return HFTrainConfig(**(base | fields))


def _weights(folder: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(folder / "model.safetensors"))


@pytest.mark.parametrize("mode", ["lora", "full"])
def test_fine_tuning_trains_the_text_tower_registers_a_model_and_eval_guards_it(mode, shared_data, tiny_clip,
                                                                                 tmp_path):
    from csr_core.datasets import split_image_ids
    from csr_core.encoders.registry import load_encoder

    outcome = finetune_hf(_config(tiny_clip, mode=mode), tmp_path / "models", data_root=shared_data)
    losses = outcome.losses
    assert len(losses) == 3 * (16 * 5 // 16)  # 80 code-switched captions, batch 16, 3 epochs, drop_last
    assert sum(losses[-5:]) < sum(losses[:5])  # the last epoch fits better than the first
    assert outcome.folder.name == f"hf-{tiny_clip.name}-{mode}-mlcs-de-fr-cs-s0"
    assert not (tmp_path / "models" / f"{outcome.folder.name}.work").exists()
    manifest = read_manifest(outcome.folder)
    assert manifest is not None and manifest["format"] == FORMAT and manifest["losses"] == losses
    train_ids = set(split_image_ids("flickr8k-multi30k", shared_data)["train"])
    assert len(manifest["training_image_ids"]) == 16 and set(manifest["training_image_ids"]) <= train_ids

    before, after = _weights(tiny_clip), _weights(outcome.folder)
    assert set(after) == set(before)  # LoRA adapters merged: a plain CLIPModel, loadable anywhere
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert any(k.startswith("text_model.") for k in changed)
    assert not any(k.startswith("vision_model.") for k in changed)  # LiT: the image tower stayed frozen
    if mode == "lora":  # adapters on the attention query/value projections only
        assert changed <= {k for k in before if ".q_proj." in k or ".v_proj." in k}

    encoder = load_encoder(outcome.model_name, device="cpu")
    assert sorted(encoder.training_image_ids) == sorted(manifest["training_image_ids"])
    assert_evaluates_and_guards_training_photos(outcome.model_name, tmp_path / "results")


def test_unlocked_image_tower_trains_too(shared_data, tiny_clip, tmp_path):
    outcome = finetune_hf(_config(tiny_clip, mode="lora", lock_image=False, epochs=1), tmp_path, data_root=shared_data)
    before, after = _weights(tiny_clip), _weights(outcome.folder)
    assert any(k.startswith("vision_model.") and not torch.equal(before[k], after[k]) for k in before)


@pytest.mark.parametrize("mode", ["lora", "full"])
def test_blip_trains_its_itc_text_side(mode, shared_data, tmp_path):
    """BLIP: LoRA adapts the text encoder's self-attention query/value; full trains the text encoder and text_proj
    but never the cross-attention layers the ITC embedding does not run; the image side stays frozen."""
    (tmp_path / "blip").mkdir()
    blip = build_tiny_blip(tmp_path / "blip")
    outcome = finetune_hf(_config(blip, "blip", mode=mode, epochs=2), tmp_path / "models",
                          data_root=shared_data)
    assert outcome.model_name.startswith("blip:")
    before, after = _weights(blip), _weights(outcome.folder)
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed and all(k.startswith(("text_encoder.", "text_proj.")) for k in changed)
    assert not any(".crossattention." in k for k in changed)
    if mode == "lora":
        assert all(k.endswith(("attention.self.query.weight", "attention.self.value.weight")) for k in changed)
    else:
        assert any(k.startswith("text_proj.") for k in changed)


def test_two_torchrun_processes_follow_the_single_process_loss(shared_data, tiny_clip, tmp_path):
    """2 processes x batch 8 against 1 process x batch 16: features gathered with their gradients, so every step's
    loss is the loss of the same 16 rows (the distributed sampler deals batch 2t to rank 0 and 2t+1 to rank 1).
    Step 0 is the same computation; later steps differ by float rounding of the reordered distributed sums grown
    through AdamW (measured here: at most 2e-7 relative over 10 steps), compared at 1e-4."""
    single = finetune_hf(_config(tiny_clip, mode="full", epochs=2, batch_size=16), tmp_path / "one",
                         data_root=shared_data)
    double = finetune_hf(_config(tiny_clip, mode="full", epochs=2, batch_size=8, nproc=2), tmp_path / "two",
                         data_root=shared_data)
    assert double.manifest["command"][1:3] == ["-m", "torch.distributed.run"]
    assert len(double.losses) == len(single.losses) == 2 * 5
    assert double.losses[0] == pytest.approx(single.losses[0], rel=1e-6)
    assert double.losses == pytest.approx(single.losses, rel=1e-4)


def test_a_killed_training_registers_nothing(shared_data, tiny_clip, tmp_path):
    out = tmp_path / "models"
    script = (f"from csr_core.training.hf_ft import HFTrainConfig, finetune_hf\n"
              f"finetune_hf(HFTrainConfig(model='hf:{tiny_clip}', epochs=500, batch_size=8, max_photos=16), "
              f"{str(out)!r}, data_root={str(shared_data)!r})\n")
    child = subprocess.Popen([sys.executable, "-c", script], start_new_session=True,
                             env={**os.environ, "TOKENIZERS_PARALLELISM": "false"})
    name = f"hf-{tiny_clip.name}-lora-en-s0"
    progress = out / f"{name}.work" / "steps.log"
    deadline = time.time() + 240
    while time.time() < deadline and not (progress.is_file() and len(progress.read_text().splitlines()) >= 3):
        assert child.poll() is None, "training ended before it could be killed"
        time.sleep(0.2)
    os.killpg(child.pid, signal.SIGKILL)
    child.wait(timeout=60)
    assert not (out / name).exists() and read_manifest(out / name) is None
    assert not any(p.name.endswith(".tmp") for p in out.iterdir())


def test_bad_configs_are_refused_before_any_work(tmp_path):
    with pytest.raises(CSRError, match="hf:<repo|folder> or blip:"):
        finetune_hf(HFTrainConfig(model="open_clip:ViT-B-32/openai"), tmp_path)
    with pytest.raises(CSRError, match="mode"):
        HFTrainConfig(model="hf:x", mode="qlora")
    assert HFTrainConfig(model="hf:x").lr == 1e-4 and HFTrainConfig(model="hf:x", mode="full").lr == 1e-5
    bad = tmp_path / "m"
    bad.mkdir()
    (bad / MANIFEST).write_text("{not json", encoding="utf-8")
    with pytest.raises(CSRError, match="unreadable training manifest"):
        read_manifest(bad)


def test_cli_fine_tunes_a_transformers_model(shared_data, tiny_clip, tmp_path, capsys):
    from csr_core.cli import main

    out = tmp_path / "models"
    assert main(["finetune", "--model", f"hf:{tiny_clip}", "--mode", "full", "--arm", "blcs-de", "--epochs", "1",
                 "--batch-size", "16", "--max-photos", "16", "--out", str(out), "--quiet"]) == 0
    printed = capsys.readouterr().out
    folder = out / f"hf-{tiny_clip.name}-full-blcs-de-s0"
    assert f"--model hf:{folder}" in printed
    manifest = read_manifest(folder)
    assert manifest["config"]["mode"] == "full" and manifest["config"]["batch_size"] == 16
    assert manifest["config"]["lr"] == 1e-5  # the full-fine-tuning default, not csr-mini's heads lr
