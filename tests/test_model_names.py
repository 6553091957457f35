"""csr-mini names: one grammar, parsed and formatted in csr_core.model_names, round-tripping through files."""

from __future__ import annotations

import pytest

from csr_core.errors import ModelError
from csr_core.model_names import CsrMiniName, file_stem, model_family


@pytest.mark.parametrize("name, tower, arm, seed, top, canonical, explicit, filename", [
    ("csr-mini", "minilm", "en", 0, 0, "csr-mini", "csr-mini:en/s0", "minilm-en-s0.safetensors"),
    ("csr-mini-m", "e5", "en", 0, 0, "csr-mini-m", "csr-mini-m:en/s0", "e5-en-s0.safetensors"),
    ("csr-mini:mlcs-de-fr-cs", "minilm", "mlcs-de-fr-cs", 0, 0, "csr-mini:mlcs-de-fr-cs", "csr-mini:mlcs-de-fr-cs/s0",
     "minilm-mlcs-de-fr-cs-s0.safetensors"),
    ("csr-mini-m:translate-train/s2", "e5", "translate-train", 2, 0, "csr-mini-m:translate-train/s2",
     "csr-mini-m:translate-train/s2", "e5-translate-train-s2.safetensors"),
    ("csr-mini:en/s0+top2", "minilm", "en", 0, 2, "csr-mini:en/s0+top2", "csr-mini:en/s0+top2",
     "minilm-en-top2-s0.safetensors"),
])
def test_parse_format_and_file_round_trip(name, tower, arm, seed, top, canonical, explicit, filename):
    parsed = CsrMiniName.parse(name)
    assert (parsed.tower, parsed.arm, parsed.seed, parsed.top_layers) == (tower, arm, seed, top)
    assert parsed.canonical == canonical and parsed.explicit == explicit and parsed.heads_filename == filename
    assert CsrMiniName.parse(parsed.canonical) == CsrMiniName.parse(parsed.explicit) == parsed
    assert CsrMiniName.from_file(filename) == parsed


@pytest.mark.parametrize("bad", ["csr-mini:", "csr-mini:EN", "csr-mini:en/s", "csr-mini:en/sx", "open_clip:ViT-B-32",
                                 "csr-mini:en+top", "csr-mini-x"])
def test_bad_names_are_refused_with_the_grammar(bad):
    with pytest.raises(ModelError, match="not a csr-mini name"):
        CsrMiniName.parse(bad)
    assert CsrMiniName.try_parse(bad) is None


def test_other_files_are_not_heads_and_families_group_arms():
    assert CsrMiniName.from_file("README.md") is None and CsrMiniName.from_file("e5-en-s0.json") is None
    assert model_family("csr-mini-m:blcs-de/s3") == "csr-mini-m" and model_family("csr-mini:en/s0+top2") == "csr-mini"
    assert model_family("open_clip-config:/x/tiny.json@/runs/arm.safetensors") == "open_clip-config:/x/tiny.json"
    with pytest.raises(ModelError, match="arm"):
        CsrMiniName("minilm", "Bad Arm")


@pytest.mark.parametrize("model_id, stem", [("laion/CLIP-ViT-B-32", "laion-CLIP-ViT-B-32"),
                                            ("  odd name!:v1 ", "odd-name-v1"), ("ViT-B-32.json", "ViT-B-32.json")])
def test_model_ids_become_one_path_component(model_id, stem):
    assert file_stem(model_id) == stem and "/" not in file_stem(model_id)
