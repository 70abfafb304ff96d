"""The models layer's backend registry: backends named from an entry's kind and source."""

from __future__ import annotations

from pathlib import Path

import pytest

from plainsight.models.backends import BACKENDS
from plainsight.models.loading import load_model, preprocess_spec
from plainsight.models.registry import ModelEntry
from plainsight.registry import UnknownName


@pytest.mark.parametrize(
    "kind, source, backend",
    [
        ("encoder", "pixels", "encoder:pixels"),
        ("encoder", "timm:vit_tiny_patch16_224", "encoder:timm"),
        ("encoder", "facebook/dinov2-small", "encoder:hf"),
        ("vlm", "double:oracle", "vlm:double"),
        ("vlm", "prismatic:runs/tiny", "vlm:prismatic"),
        ("vlm", "llava-hf/llava-1.5-7b-hf", "vlm:hf"),
        ("vlm", "./tiny-llava", "vlm:hf"),
    ],
)
def test_each_entry_names_a_registered_backend(kind: str, source: str, backend: str, tmp_path: Path):
    entry = ModelEntry("m", kind, source, base_dir=tmp_path)
    assert entry.backend == backend
    assert backend in BACKENDS


def test_a_local_folder_is_read_by_transformers_whatever_its_name(tmp_path: Path):
    (tmp_path / "timm:odd").mkdir()
    assert ModelEntry("m", "encoder", "timm:odd", base_dir=tmp_path).backend == "encoder:timm"  # a prefix wins
    (tmp_path / "weird:folder").mkdir()
    assert ModelEntry("m", "vlm", "weird:folder", base_dir=tmp_path).backend == "vlm:hf"


@pytest.mark.parametrize("kind, source", [("vlm", "tim:vit_tiny"), ("encoder", "double:oracle"), ("vlm", "pixels")])
def test_a_source_no_backend_reads_lists_the_backends(kind: str, source: str, tmp_path: Path):
    entry = ModelEntry("m", kind, source, base_dir=tmp_path)
    with pytest.raises(UnknownName, match="unknown model backend .*known: encoder:hf, encoder:pixels, encoder:timm"):
        load_model(entry)


def test_load_model_dispatches_by_backend(tmp_path: Path):
    assert type(load_model(ModelEntry("o", "vlm", "double:constant-b", base_dir=tmp_path))).__name__ == "ConstantVLM"
    pixels = ModelEntry("p", "encoder", "pixels", base_dir=tmp_path, options={"work_size": 32})
    assert load_model(pixels).spec.size == 32
    assert preprocess_spec(pixels).size == 32
    assert preprocess_spec(ModelEntry("o", "vlm", "double:oracle", base_dir=tmp_path)) is None

