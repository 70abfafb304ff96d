"""Pocket models: deterministic training, the shipped folders and their manifest, and loading through plainsight."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from plainsight.models.loading import load_model
from plainsight.models.registry import ModelEntry
from plainsight.pocket.encoder import EncoderRecipe, TrainSet, train_pocket_encoder

TINY = dict(image_size=32, patch=8, hidden=16, layers=2, heads=2, mlp=32, steps=3, corr_batch=2, odd_batch=1,
            style_batch=1, depth_batch=1, warp_batch=1, warp_points=8)  # fmt: skip


def _toy_train_set() -> TrainSet:
    """A hand-made train set (random images, one item of each objective) so the test needs no rendering."""
    g = torch.Generator().manual_seed(7)
    pixels = torch.randn(8, 3, 32, 32, generator=g)
    pts = np.array([[0.1, -0.2], [0.5, 0.5], [-0.5, 0.3], [0.0, -0.7]], dtype=np.float32)
    depth = np.linspace(-1, 1, 16, dtype=np.float32).reshape(4, 4)
    return TrainSet(
        pixels=pixels, corr=[(0, 1, pts[0], pts, 0)], odd=[([2, 3, 4], 1)], style=[(5, [6, 7], 0)],
        depth=[(0, depth)], counts={}, image_hashes=[],
    )  # fmt: skip


def _train(out: Path, seed: int = 0) -> Path:
    train_pocket_encoder(None, out, EncoderRecipe(seed=seed, **TINY), data=_toy_train_set(), log_every=0)
    return out


def test_encoder_training_is_byte_identical_per_seed(tmp_path):
    torch.set_num_threads(1)
    a, b, c = _train(tmp_path / "a"), _train(tmp_path / "b"), _train(tmp_path / "c", seed=1)
    assert (a / "model.safetensors").read_bytes() == (b / "model.safetensors").read_bytes()
    assert (a / "pocket_encoder.json").read_bytes() == (b / "pocket_encoder.json").read_bytes()
    assert (a / "model.safetensors").read_bytes() != (c / "model.safetensors").read_bytes()


def test_encoder_folder_loads_as_an_encoder_entry(tmp_path):
    from PIL import Image

    folder = _train(tmp_path / "enc")
    encoder = load_model(ModelEntry(name="pocket-encoder", kind="encoder", source=str(folder)))
    (features,) = encoder.encode([Image.new("RGB", (64, 48), (120, 30, 200))])
    assert tuple(features.patches.shape) == (16, 4, 4)
    assert features.pooled.shape == (16,) and torch.isfinite(features.pooled).all()


def test_vlm_folder_loads_and_its_own_tower_reads_the_encoder(tmp_path):
    from PIL import Image

    from plainsight.models.own_tower import OwnTowerEncoder
    from plainsight.models.vlms import VLMRequest
    from plainsight.pocket.vlm import VLMRecipe, build_pocket_vlm

    encoder_dir = _train(tmp_path / "enc")
    folder = build_pocket_vlm(encoder_dir, tmp_path / "vlm", VLMRecipe(text_hidden=32, text_layers=1, text_heads=2))
    entry = ModelEntry(name="pocket-vlm", kind="vlm", source=str(folder), image_mode="separate", pairs_with="own_tower")
    vlm = load_model(entry)
    image = Image.new("RGB", (64, 48), (10, 200, 30))
    (scores,) = vlm.score_letters([VLMRequest(images=[image], prompt="Which? (A) x (B) y", letters=("A", "B"))])
    assert set(scores.logprobs) == {"A", "B"} and all(np.isfinite(v) for v in scores.logprobs.values())
    # The own tower is the encoder's last block without CLS: the encoder entry's patch grid, same numbers.
    tower = OwnTowerEncoder(vlm).encode([image])[0].patches
    alone = load_model(ModelEntry(name="e", kind="encoder", source=str(encoder_dir))).encode([image])[0].patches
    assert torch.allclose(tower, alone, atol=1e-5)


def test_vlm_training_is_byte_identical_per_seed(tmp_path):
    from plainsight.pocket.vlm import VLMRecipe, train_pocket_vlm

    torch.set_num_threads(1)
    encoder_dir = _train(tmp_path / "enc")
    recipe = VLMRecipe(text_hidden=32, text_layers=1, text_heads=2, steps=2, batch_size=2,
                       tasks=("depth", "art_style"))  # fmt: skip
    root = Path(__file__).resolve().parents[1] / "fixtures" / "data"  # format only; the real run uses a train seed
    runs = [train_pocket_vlm(encoder_dir, [root], tmp_path / f"vlm{k}", recipe, log_every=0, limit=4) for k in (0, 1)]
    assert runs[0]["loss"] == runs[1]["loss"]
    assert (tmp_path / "vlm0" / "model.safetensors").read_bytes() == (
        tmp_path / "vlm1" / "model.safetensors"
    ).read_bytes()


def test_vlm_alignment_stage_runs_first_on_its_own_tasks(tmp_path):
    from plainsight.pocket.vlm import VLMRecipe, train_pocket_vlm

    torch.set_num_threads(1)
    encoder_dir = _train(tmp_path / "enc")
    recipe = VLMRecipe(text_hidden=32, text_layers=1, text_heads=2, steps=2, batch_size=2, tasks=("art_style",),
                       align_steps=2, align_tasks=("depth",), warmup=1)  # fmt: skip
    root = Path(__file__).resolve().parents[1] / "fixtures" / "data"
    run = train_pocket_vlm(encoder_dir, [root], tmp_path / "vlm", recipe, log_every=0, limit=4)
    assert [(row["task"], row["align"]) for row in run["loss"]] == [
        ("depth", True),
        ("depth", True),
        ("art_style", False),
        ("art_style", False),
    ]
    assert set(run["gold_balance"]) == {"depth", "art_style"}


# -- the shipped pocket models (fixtures/models/pocket-*) ------------------------------------------------------------
MODELS = Path(__file__).resolve().parents[1] / "fixtures" / "models"


def test_shipped_files_are_the_ones_the_manifest_hashes_and_come_from_the_current_recipe():
    import json
    from dataclasses import asdict

    from plainsight.pocket.build import MANIFEST, POCKET, file_hashes

    manifest = json.loads((MODELS / MANIFEST).read_text())
    assert file_hashes(MODELS) == manifest["files"], "a pocket file changed: rerun `plainsight fixtures pocket`"
    assert manifest["recipe"] == json.loads(json.dumps(asdict(POCKET))), (
        "the recipe in src/plainsight/pocket changed since the shipped build: rerun `plainsight fixtures pocket`"
    )
    assert manifest["disjoint"]["shared"] == 0 and manifest["disjoint"]["train_images"] > 1000
    vlm_record = json.loads((MODELS / "pocket-vlm" / "pocket_vlm.json").read_text())
    encoder_record = json.loads((MODELS / "pocket-encoder" / "pocket_encoder.json").read_text())
    assert vlm_record["recipe"] == manifest["recipe"]["vlm"]
    assert encoder_record["recipe"] == manifest["recipe"]["encoder"]
    assert vlm_record["train_roots"] == [f"train-seed{s}" for s in POCKET.train_seeds]


def test_compare_builds_names_every_file_that_differs(tmp_path):
    import shutil

    from plainsight.pocket.build import compare_builds

    copy = tmp_path / "models"
    for folder in ("pocket-encoder", "pocket-vlm"):
        shutil.copytree(MODELS / folder, copy / folder)
    assert compare_builds(MODELS, copy) == []
    weights = copy / "pocket-vlm" / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 1
    weights.write_bytes(bytes(data))
    (copy / "pocket-encoder" / "config.json").unlink()
    assert compare_builds(MODELS, copy) == ["pocket-encoder/config.json", "pocket-vlm/model.safetensors"]


def test_the_disjointness_check_refuses_the_evaluation_data_as_a_train_split():
    import pytest

    from plainsight.errors import ConfigError
    from plainsight.pocket.build import check_disjoint

    with pytest.raises(ConfigError, match="train images are evaluation images"):
        check_disjoint([Path(__file__).resolve().parents[1] / "fixtures" / "data"], ("art_style",))


def test_the_shipped_vlm_is_a_plain_llava_folder_whose_tower_is_the_shipped_encoder():
    from safetensors.torch import load_file

    vlm = load_file(MODELS / "pocket-vlm" / "model.safetensors")
    encoder = load_file(MODELS / "pocket-encoder" / "model.safetensors")
    tower = {k.split("vision_tower.", 1)[1]: v for k, v in vlm.items() if "vision_tower." in k}
    assert set(tower) == set(encoder)
    for name, tensor in encoder.items():
        assert torch.equal(tower[name], tensor), name


def test_the_shipped_folders_name_no_path_of_the_machine_that_built_them():
    """A build writes the same bytes anywhere: no absolute path (e.g. the temporary encoder folder) in any file."""
    import json

    def strings(value):
        if isinstance(value, dict):
            for v in value.values():
                yield from strings(v)
        elif isinstance(value, list):
            for v in value:
                yield from strings(v)
        elif isinstance(value, str):
            yield value

    for path in sorted(MODELS.glob("pocket-*/*.json")):
        for text in strings(json.loads(path.read_text())):
            assert not text.startswith(("/", "~")) and "/tmp" not in text, (path.name, text)
