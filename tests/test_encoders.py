"""Encoders: patch grids, layer selection, prefix tokens, batching; the pixels NCC baseline; timm weights."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import hf_config_dir
from plainsight.errors import ConfigError, ModelUnavailable
from plainsight.models.encoders import HFEncoder, PixelsEncoder, TimmEncoder
from plainsight.models.loading import load_encoder
from plainsight.models.registry import ModelEntry

TINY = dict(
    hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64, image_size=32, patch_size=8
)
CROP = dict(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
PREFIX = {"dinov2": 1, "dinov2_reg": 5, "clip": 1, "siglip": 0, "vit": 1, "clip_dual": 1, "siglip_dual": 0}


def build(kind: str):
    """A tiny random model of a family and its matching *Pil image processor."""
    import transformers as tf

    torch.manual_seed(0)
    text = dict(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64)
    return {
        "dinov2": lambda: (tf.Dinov2Model(tf.Dinov2Config(**TINY)), tf.BitImageProcessorPil(**CROP)),
        "dinov2_reg": lambda: (
            tf.Dinov2WithRegistersModel(tf.Dinov2WithRegistersConfig(**TINY, num_register_tokens=4)),
            tf.BitImageProcessorPil(**CROP),
        ),
        "clip": lambda: (tf.CLIPVisionModel(tf.CLIPVisionConfig(**TINY)), tf.CLIPImageProcessorPil(**CROP)),
        "siglip": lambda: (
            tf.SiglipVisionModel(tf.SiglipVisionConfig(**TINY)),
            tf.SiglipImageProcessorPil(size={"height": 32, "width": 32}),
        ),
        "vit": lambda: (tf.ViTModel(tf.ViTConfig(**TINY)), tf.ViTImageProcessorPil(size={"height": 32, "width": 32})),
        "clip_dual": lambda: (
            tf.CLIPModel(tf.CLIPConfig(vision_config=TINY, text_config=text, projection_dim=16)),
            tf.CLIPImageProcessorPil(**CROP),
        ),
        "siglip_dual": lambda: (
            tf.SiglipModel(tf.SiglipConfig(vision_config=TINY, text_config=text)),
            tf.SiglipImageProcessorPil(size={"height": 32, "width": 32}),
        ),
    }[kind]()


def save_encoder(tmp_path: Path, kind: str) -> Path:
    model, processor = build(kind)
    folder = tmp_path / kind
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder


def photo(w: int = 48, h: int = 40, seed: int = 0) -> Image.Image:
    return Image.fromarray(np.random.default_rng(seed).integers(0, 255, (h, w, 3), dtype=np.uint8))


def reference_outputs(enc: HFEncoder, image: Image.Image):
    pixels = enc.image_processor(images=[image], return_tensors="pt")["pixel_values"]
    with torch.inference_mode():
        return enc.model(pixel_values=pixels, output_hidden_states=True)


def as_grid(tokens: torch.Tensor, prefix: int) -> torch.Tensor:
    return tokens[0, prefix:].reshape(4, 4, -1).permute(2, 0, 1)


@pytest.mark.parametrize("kind", list(PREFIX))
def test_layer_selection_drops_prefix_tokens(tmp_path: Path, kind: str):
    """feature_layer=-2 is hidden_states[-2] without CLS/registers; the grid and transform match the 32 px input."""
    enc = HFEncoder.from_pretrained(kind, str(save_encoder(tmp_path, kind)), feature_layer=-2)
    prefix = PREFIX[kind]
    assert enc.num_prefix == prefix
    image = photo()
    feats = enc.encode([image])[0]
    assert feats.patches.shape == (32, 4, 4) and feats.pooled.shape == (32,)
    assert feats.transform.out_size == (32, 32) and feats.transform.in_size == image.size
    hidden = reference_outputs(enc, image).hidden_states
    assert len(hidden) == 3  # embeddings + 2 blocks
    assert torch.allclose(feats.patches, as_grid(hidden[-2], prefix), atol=1e-5)
    assert not torch.allclose(feats.patches, as_grid(hidden[-1], prefix), atol=1e-3)  # not the last layer
    if prefix:  # keeping one token too many (CLS) shifts the grid by one cell
        shifted = hidden[-2][0, prefix - 1 : prefix - 1 + 16].reshape(4, 4, -1).permute(2, 0, 1)
        assert not torch.allclose(feats.patches, shifted, atol=1e-3)


@pytest.mark.parametrize("kind", ["dinov2", "siglip", "clip"])
def test_default_layer_is_the_final_output(tmp_path: Path, kind: str):
    """None = last_hidden_state: DINOv2/SigLIP apply a final norm to every token, CLIP does not."""
    enc = HFEncoder.from_pretrained(kind, str(save_encoder(tmp_path, kind)))
    image = photo()
    feats = enc.encode([image])[0]
    ref = reference_outputs(enc, image)
    prefix = PREFIX[kind]
    assert torch.allclose(feats.patches, as_grid(ref.last_hidden_state, prefix), atol=1e-5)
    normed = not torch.allclose(ref.last_hidden_state, ref.hidden_states[-1], atol=1e-4)
    assert normed == (kind != "clip")
    expected_pooled = ref.pooler_output[0] if kind in ("siglip", "clip") else ref.last_hidden_state[0, 0]
    assert torch.allclose(feats.pooled, expected_pooled, atol=1e-5)


def test_out_of_range_layer_is_a_config_error(tmp_path: Path):
    folder = str(save_encoder(tmp_path, "dinov2"))
    assert HFEncoder.from_pretrained("d", folder, feature_layer=-3)._layer_index == 0  # the embeddings
    with pytest.raises(ConfigError, match="feature_layer = -4 is out of range"):
        HFEncoder.from_pretrained("d", folder, feature_layer=-4)


def test_batching_matches_one_by_one(tmp_path: Path):
    enc = HFEncoder.from_pretrained("d", str(save_encoder(tmp_path, "dinov2")), batch_size=3)
    images = [photo(48 + 4 * i, 40, seed=i) for i in range(4)]
    batched = enc.encode(images)
    assert len(batched) == 4
    for image, feats in zip(images, batched):
        single = enc.encode([image])[0]
        assert torch.allclose(feats.patches, single.patches, atol=1e-5)
        assert torch.allclose(feats.pooled, single.pooled, atol=1e-5)
        assert feats.transform == single.transform
    assert not torch.allclose(batched[0].patches, batched[1].patches)


@pytest.mark.parametrize("folder, grid", [("facebook__dinov2-small", 16), ("openai__clip-vit-large-patch14", 16)])
def test_real_configs_give_their_native_grid(folder: str, grid: int):
    """Real configs (shrunk widths) and real processors: 224 px / patch 14 = 16x16; a 4:3 image loses its sides."""
    from transformers import AutoConfig, AutoImageProcessor, AutoModel

    path = hf_config_dir(folder)
    config = AutoConfig.from_pretrained(path)
    shrink = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64)
    subs = [getattr(config, name) for name in ("vision_config", "text_config") if hasattr(config, name)]
    for sub in subs or [config]:
        for key, value in shrink.items():
            setattr(sub, key, value)
    if hasattr(config, "projection_dim"):
        config.projection_dim = 16
    enc = HFEncoder(folder, AutoModel.from_config(config), AutoImageProcessor.from_pretrained(path))
    feats = enc.encode([photo(320, 240)])[0]
    assert feats.patches.shape == (32, grid, grid) and feats.transform.out_size == (224, 224)
    assert not feats.transform.contains((5, 120)) and feats.transform.contains((160, 120))


def test_pixels_ncc_is_one_on_itself_and_invariant_to_affine_brightness():
    enc = PixelsEncoder(work_size=64, window=9)
    base = np.asarray(photo(64, 48), dtype=np.float64)
    brighter = Image.fromarray(np.clip(base * 0.5 + 60, 0, 255).round().astype(np.uint8))
    darker = Image.fromarray(np.clip(255 - base, 0, 255).astype(np.uint8))  # a < 0 flips the correlation
    a, b, c = enc.encode([Image.fromarray(base.astype(np.uint8)), brighter, darker])
    assert a.patches.shape == (81, 48, 64) and a.transform.out_size == (64, 48)
    self_sim = (a.patches * a.patches).sum(0)
    assert torch.allclose(self_sim, torch.ones_like(self_sim), atol=1e-4)
    assert float((a.patches * b.patches).sum(0).min()) > 0.98
    assert float((a.patches * c.patches).sum(0).max()) < -0.99
    # pooled: the NCC vector of the 8×8 grey thumbnail — unit length, unchanged by brightness, flipped by inversion
    assert a.pooled.shape == (64,) and abs(float(a.pooled.norm()) - 1) < 1e-5
    assert float(a.pooled @ b.pooled) > 0.98 and float(a.pooled @ c.pooled) < -0.98


def test_pixels_ncc_matches_a_direct_computation():
    enc = PixelsEncoder(work_size=40, window=5)
    image = photo(40, 30, seed=3)
    feats = enc.encode([image])[0]
    gray = np.asarray(image.convert("L"), dtype=np.float64) / 255
    win = gray[10:15, 20:25].ravel() - gray[10:15, 20:25].mean()
    other = gray[3:8, 7:12].ravel() - gray[3:8, 7:12].mean()
    ncc = float(win @ other / np.linalg.norm(win) / np.linalg.norm(other))
    assert float(feats.patches[:, 12, 22] @ feats.patches[:, 5, 9]) == pytest.approx(ncc, abs=1e-5)


def test_pixels_options_are_checked():
    with pytest.raises(ConfigError, match="pixels takes"):
        load_encoder(ModelEntry("p", "encoder", "pixels", options={"size": 3}))
    assert load_encoder(ModelEntry("p", "encoder", "pixels", options={"work_size": 32})).spec.size == 32


TIMM_KWARGS = dict(img_size=32, patch_size=8, embed_dim=32, depth=2, num_heads=2)


def timm_entry(tmp_path: Path, **options) -> ModelEntry:
    return ModelEntry(
        "t", "encoder", "timm:vit_tiny_patch16_224", base_dir=tmp_path, options={"model_kwargs": TIMM_KWARGS, **options}
    )


def saved_timm_model(tmp_path: Path, **overrides):
    import timm
    from safetensors.torch import save_file

    torch.manual_seed(0)
    model = timm.create_model(
        "vit_tiny_patch16_224", pretrained=False, num_classes=10, **(TIMM_KWARGS | overrides)
    ).eval()
    save_file(model.state_dict(), str(tmp_path / "w.safetensors"))
    return model


def test_timm_encoder_needs_local_weights(tmp_path: Path):
    with pytest.raises(ModelUnavailable, match="options.checkpoint") as err:
        load_encoder(timm_entry(tmp_path))
    assert "vit_tiny_patch16_224" in str(err.value) and "[models.t]" in str(err.value)
    with pytest.raises(ModelUnavailable, match="not found"):
        load_encoder(timm_entry(tmp_path, checkpoint="missing.safetensors"))


def test_timm_encoder_loads_weights_and_selects_layers(tmp_path: Path):
    model = saved_timm_model(tmp_path)
    final = load_encoder(timm_entry(tmp_path, checkpoint="w.safetensors"))
    assert isinstance(final, TimmEncoder) and final.spec.source == "timm:vit_tiny_patch16_224"
    image = photo(64, 48)
    feats = final.encode([image])[0]
    assert feats.patches.shape == (32, 4, 4) and feats.transform.out_size == (32, 32)
    x = final.transform(image)[None]
    with torch.inference_mode():
        tokens = model.forward_features(x)
        after_block0 = model.blocks[0](model.norm_pre(model._pos_embed(model.patch_embed(x))))
    assert torch.allclose(feats.patches, as_grid(tokens, 1), atol=1e-5)  # weights really loaded, CLS dropped
    assert torch.allclose(feats.pooled, tokens[0, 0], atol=1e-5)
    entry = ModelEntry("t", "encoder", "timm:vit_tiny_patch16_224", base_dir=tmp_path, feature_layer=-2,
                       options={"model_kwargs": TIMM_KWARGS, "checkpoint": "w.safetensors"})  # fmt: skip
    second_last = load_encoder(entry).encode([image])[0]
    assert torch.allclose(second_last.patches, as_grid(after_block0, 1), atol=1e-5)
    assert torch.allclose(second_last.pooled, feats.pooled, atol=1e-5)  # pooled is always the final one


def test_timm_checkpoint_of_another_model_is_refused(tmp_path: Path):
    saved_timm_model(tmp_path, depth=3)
    with pytest.raises(ConfigError, match="does not match the model"):
        load_encoder(timm_entry(tmp_path, checkpoint="w.safetensors"))


def test_missing_hf_model_names_the_fix(tmp_path: Path):
    entry = ModelEntry("x", "encoder", "facebook/dinov2-giant-not-cached", base_dir=tmp_path)
    with pytest.raises(ModelUnavailable, match="huggingface-cli download facebook/dinov2-giant-not-cached"):
        load_encoder(entry)
    with pytest.raises(ModelUnavailable, match="model folder not found"):
        load_encoder(ModelEntry("x", "encoder", "./no-such-folder", base_dir=tmp_path))


def test_half_precision_returns_float32_close_to_full_precision(tmp_path: Path):
    folder = str(save_encoder(tmp_path, "dinov2"))
    full = HFEncoder.from_pretrained("d", folder).encode([photo()])[0]
    half = HFEncoder.from_pretrained("d", folder, dtype="bfloat16").encode([photo()])[0]
    assert half.patches.dtype == torch.float32 and half.pooled.dtype == torch.float32
    cos = torch.nn.functional.cosine_similarity(full.patches.flatten(1), half.patches.flatten(1), dim=0)
    assert float(cos.min()) > 0.98
