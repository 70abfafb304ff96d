"""Encoders: patch grids, layer selection, prefix tokens, batching; the pixels NCC baseline; timm weights."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import hf_config_dir
from PIL import Image

from plainsight.errors import ModelUnavailable
from plainsight.models.encoders import HFEncoder, PixelsEncoder, TimmEncoder, load_encoder
from plainsight.models.registry import ModelEntry

COMMON = dict(hidden_size=32, num_hidden_layers=3, num_attention_heads=2, intermediate_size=64, image_size=32, patch_size=8)


def save_encoder(tmp_path: Path, kind: str) -> Path:
    from transformers import (
        BitImageProcessorPil, CLIPImageProcessorPil, CLIPVisionConfig, CLIPVisionModel, Dinov2Config, Dinov2Model,
        Dinov2WithRegistersConfig, Dinov2WithRegistersModel, SiglipImageProcessorPil, SiglipVisionConfig,
        SiglipVisionModel, ViTConfig, ViTModel,
    )  # fmt: skip

    torch.manual_seed(0)
    crop = dict(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    model, proc = {
        "dinov2": lambda: (Dinov2Model(Dinov2Config(**COMMON)), BitImageProcessorPil(**crop)),
        "dinov2_reg": lambda: (
            Dinov2WithRegistersModel(Dinov2WithRegistersConfig(**COMMON, num_register_tokens=4)),
            BitImageProcessorPil(**crop),
        ),
        "clip": lambda: (CLIPVisionModel(CLIPVisionConfig(**COMMON)), CLIPImageProcessorPil(**crop)),
        "siglip": lambda: (SiglipVisionModel(SiglipVisionConfig(**COMMON)), SiglipImageProcessorPil(size={"height": 32, "width": 32})),
        "vit": lambda: (ViTModel(ViTConfig(**COMMON), add_pooling_layer=False), BitImageProcessorPil(**crop)),
    }[kind]()
    folder = tmp_path / kind
    model.save_pretrained(folder)
    proc.save_pretrained(folder)
    return folder


def photo(w: int = 48, h: int = 40, seed: int = 0) -> Image.Image:
    return Image.fromarray(np.random.default_rng(seed).integers(0, 255, (h, w, 3), dtype=np.uint8))


@pytest.mark.parametrize("kind, prefix", [("dinov2", 1), ("dinov2_reg", 5), ("clip", 1), ("siglip", 0), ("vit", 1)])
def test_grid_layer_selection_and_prefix_tokens(tmp_path: Path, kind: str, prefix: int):
    enc = HFEncoder.from_pretrained(kind, str(save_encoder(tmp_path, kind)), feature_layer=-2)
    assert enc.num_prefix == prefix
    image = photo()
    feats = enc.encode([image])[0]
    assert feats.patches.shape == (32, 4, 4) and feats.transform.out_size == (32, 32)
    pixels = enc.image_processor(images=[image], return_tensors="pt")["pixel_values"]
    with torch.inference_mode():
        hidden = enc.model(pixel_values=pixels, output_hidden_states=True).hidden_states[-2]
    expected = hidden[0, prefix:].reshape(4, 4, 32).permute(2, 0, 1)
    assert torch.allclose(feats.patches, expected, atol=1e-5)
    wrong_layer = hidden.new_tensor(0) + enc.model(pixel_values=pixels, output_hidden_states=True).hidden_states[-1]
    assert not torch.allclose(feats.patches, wrong_layer[0, prefix:].reshape(4, 4, 32).permute(2, 0, 1), atol=1e-3)


def test_batching_matches_one_by_one(tmp_path: Path):
    enc = HFEncoder.from_pretrained("d", str(save_encoder(tmp_path, "dinov2")), batch_size=3)
    images = [photo(48 + 4 * i, 40, seed=i) for i in range(4)]
    batched = enc.encode(images)
    for image, feats in zip(images, batched):
        single = enc.encode([image])[0]
        assert torch.allclose(feats.patches, single.patches, atol=1e-5)
        assert torch.allclose(feats.pooled, single.pooled, atol=1e-5)


def test_real_dinov2_config_gives_a_16x16_grid():
    from transformers import AutoConfig, AutoImageProcessor, AutoModel

    folder = hf_config_dir("facebook__dinov2-small")
    config = AutoConfig.from_pretrained(folder)
    config.hidden_size, config.num_hidden_layers, config.num_attention_heads, config.intermediate_size = 32, 2, 4, 64
    enc = HFEncoder("dinov2-small", AutoModel.from_config(config), AutoImageProcessor.from_pretrained(folder))
    feats = enc.encode([photo(320, 240)])[0]
    assert feats.patches.shape == (32, 16, 16)
    assert not feats.transform.contains((5, 120))  # 4:3 image, short side 256, centre crop 224: the left edge is cut


def test_pixels_ncc_is_invariant_to_affine_brightness():
    enc = PixelsEncoder(work_size=64, window=9)
    base = np.asarray(photo(64, 48), dtype=np.float64)
    brighter = Image.fromarray(np.clip(base * 0.5 + 60, 0, 255).astype(np.uint8))
    a, b = enc.encode([Image.fromarray(base.astype(np.uint8)), brighter])
    ncc = (a.patches * b.patches).sum(0)
    assert float(ncc[10:-10, 10:-10].mean()) > 0.98
    self_sim = (a.patches * a.patches).sum(0)
    assert torch.allclose(self_sim[5:-5, 5:-5], torch.ones_like(self_sim[5:-5, 5:-5]), atol=1e-4)


def test_timm_encoder_needs_local_weights_and_loads_them(tmp_path: Path):
    import timm
    from safetensors.torch import save_file

    kwargs = dict(img_size=32, patch_size=8, embed_dim=32, depth=2, num_heads=2)
    entry = ModelEntry("t", "encoder", "timm:vit_tiny_patch16_224", options={"model_kwargs": kwargs}, base_dir=tmp_path)
    with pytest.raises(ModelUnavailable, match="options.checkpoint"):
        load_encoder(entry)
    torch.manual_seed(0)
    model = timm.create_model("vit_tiny_patch16_224", pretrained=False, num_classes=0, **kwargs)
    save_file(model.state_dict(), str(tmp_path / "w.safetensors"))
    entry = ModelEntry("t", "encoder", "timm:vit_tiny_patch16_224", base_dir=tmp_path,
                       options={"model_kwargs": kwargs, "checkpoint": "w.safetensors"})  # fmt: skip
    enc = load_encoder(entry)
    assert isinstance(enc, TimmEncoder)
    feats = enc.encode([photo(64, 48)])[0]
    assert feats.patches.shape == (32, 4, 4)
    assert torch.allclose(enc.model.patch_embed.proj.weight, model.patch_embed.proj.weight)


def test_missing_hf_model_names_the_fix(tmp_path: Path):
    entry = ModelEntry("x", "encoder", "facebook/dinov2-giant-not-cached", base_dir=tmp_path)
    with pytest.raises(ModelUnavailable, match="huggingface-cli download facebook/dinov2-giant-not-cached"):
        load_encoder(entry)
