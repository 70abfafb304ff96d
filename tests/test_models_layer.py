"""The models layer's two registries: backends named from an entry's kind and source, and VLM family profiles."""

from __future__ import annotations

from pathlib import Path

import pytest

from plainsight.models.backends import BACKENDS
from plainsight.models.families import FAMILIES, profile_for
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


def test_registered_profiles_and_the_generic_default():
    llava = profile_for("llava")
    assert llava is FAMILIES.get("llava")
    assert (llava.own_tower, llava.probe_grid, llava.nested_images) == ("vision_tower", True, False)
    assert profile_for("idefics3").nested_images and profile_for("smolvlm").nested_images
    assert profile_for("paligemma").prompt_format == "paligemma"
    assert profile_for("qwen2_vl").component_paths("projector") == ("visual.merger",)
    unknown = profile_for("some_new_vlm")
    assert unknown.model_type == "some_new_vlm" and "some_new_vlm" not in FAMILIES
    assert (unknown.own_tower, unknown.probe_grid, unknown.nested_images) == (None, False, False)
    assert unknown.prompt_format == "chat_template"
    assert unknown.component_paths("llm") == ("language_model", "text_model")  # searched under every known name
