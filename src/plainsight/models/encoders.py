"""Vision encoders: patch-feature grids, pooled features and the point mapping for each image.

Every encoder returns, per image, :class:`Features`: the patch tokens as a
(C, gh, gw) grid (CLS and register tokens removed), a pooled feature, and the
:class:`~plainsight.geometry.PointTransform` from the source image's pixels to the
model input, so readouts sample features at exactly where a point went.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from plainsight import geometry
from plainsight.errors import ModelUnavailable
from plainsight.geometry import PointTransform, PreprocessSpec
from plainsight.models.registry import ModelEntry, missing_local_folder, not_in_hf_cache

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def torch_dtype(dtype: str | torch.dtype) -> torch.dtype:
    if isinstance(dtype, torch.dtype):
        return dtype
    try:
        return DTYPES[dtype]
    except KeyError:
        raise ValueError(f"unknown dtype {dtype!r}; use one of {sorted(DTYPES)}") from None


@dataclass
class Features:
    patches: torch.Tensor  # (C, gh, gw) float32 on CPU
    pooled: torch.Tensor  # (C,)
    transform: PointTransform  # source pixels -> model input pixels (gw·patch × gh·patch)


class Encoder(Protocol):
    name: str
    spec: PreprocessSpec

    def encode(self, images: list[Image.Image]) -> list[Features]: ...


class HFEncoder:
    """A transformers vision backbone: DINOv2 (with or without registers), CLIP / SigLIP vision towers, ViT.

    ``feature_layer=None`` takes ``last_hidden_state`` (after the final layernorm for
    DINOv2 and ViT; CLIP/SigLIP apply no norm there); an int indexes ``hidden_states``
    (0 = embeddings, -2 = the second-to-last block's output, as LLaVA feeds its projector).
    """

    def __init__(
        self,
        name: str,
        model: Any,
        image_processor: Any,
        *,
        feature_layer: int | None = None,
        device: str = "cpu",
        dtype: torch.dtype = torch.float32,
        batch_size: int = 8,
    ):
        self.name = name
        self.model = _vision_tower(model).to(device=device, dtype=dtype).eval()
        self.image_processor = image_processor
        self.feature_layer = feature_layer
        self.device, self.dtype, self.batch_size = device, dtype, batch_size
        self.spec = geometry.spec_from_hf(image_processor)
        config = self.model.config
        self.patch_size = int(getattr(config, "patch_size"))
        self.num_prefix = _num_prefix_tokens(self.model)

    @classmethod
    def from_pretrained(
        cls,
        name: str,
        path_or_id: str,
        *,
        revision: str | None = None,
        feature_layer: int | None = None,
        device: str = "cpu",
        dtype: str | torch.dtype = torch.float32,
        trust_remote_code: bool = False,
        local_files_only: bool = True,
        batch_size: int = 8,
    ) -> "HFEncoder":
        from transformers import AutoImageProcessor, AutoModel

        kwargs = dict(revision=revision, trust_remote_code=trust_remote_code, local_files_only=local_files_only)
        processor = AutoImageProcessor.from_pretrained(path_or_id, **kwargs)
        model = AutoModel.from_pretrained(path_or_id, **kwargs)
        return cls(
            name, model, processor, feature_layer=feature_layer, device=device, dtype=torch_dtype(dtype),
            batch_size=batch_size,
        )  # fmt: skip

    @torch.inference_mode()
    def encode(self, images: list[Image.Image]) -> list[Features]:
        out: list[Features] = []
        for start in range(0, len(images), self.batch_size):
            batch = [im.convert("RGB") for im in images[start : start + self.batch_size]]
            pixels = self.image_processor(images=batch, return_tensors="pt")["pixel_values"]
            pixels = pixels.to(device=self.device, dtype=self.dtype)
            result = self.model(pixel_values=pixels, output_hidden_states=self.feature_layer is not None)
            tokens = result.last_hidden_state if self.feature_layer is None else result.hidden_states[self.feature_layer]
            h_in, w_in = pixels.shape[-2:]
            gh, gw = h_in // self.patch_size, w_in // self.patch_size
            if tokens.shape[1] != self.num_prefix + gh * gw:
                raise RuntimeError(
                    f"{self.name}: {tokens.shape[1]} tokens for a {w_in}x{h_in} input; expected "
                    f"{self.num_prefix} prefix + {gh}x{gw} patches (patch size {self.patch_size})"
                )
            patches = tokens[:, self.num_prefix :].float().reshape(len(batch), gh, gw, -1).permute(0, 3, 1, 2).cpu()
            if self.num_prefix:
                pooled = tokens[:, 0].float().cpu()
            else:
                pooler = getattr(result, "pooler_output", None)
                pooled = (pooler if pooler is not None else tokens.mean(dim=1)).float().cpu()
            for im, grid, pool in zip(batch, patches, pooled):
                transform = geometry.plan(self.spec, im.size)
                if transform.out_size != (w_in, h_in):
                    raise RuntimeError(
                        f"{self.name}: preprocessing model predicts {transform.out_size}, processor produced {(w_in, h_in)}"
                    )
                out.append(Features(grid, pool, transform))
        return out


def _vision_tower(model: Any) -> Any:
    """The vision part of a dual-encoder checkpoint (CLIPModel, SiglipModel), or the model itself."""
    return getattr(model, "vision_model", None) if hasattr(model, "text_model") else model


def _num_prefix_tokens(model: Any) -> int:
    config = model.config
    model_type = getattr(config, "model_type", "")
    if model_type.startswith("siglip"):
        return 0
    return 1 + int(getattr(config, "num_register_tokens", 0) or 0)


class TimmEncoder:
    """A timm ViT; weights come from a local file (``options.checkpoint``), never the hub."""

    def __init__(self, name: str, model: Any, *, feature_layer: int | None = None, device: str = "cpu",
                 dtype: torch.dtype = torch.float32, batch_size: int = 8):  # fmt: skip
        import timm.data

        self.name = name
        self.model = model.to(device=device, dtype=dtype).eval()
        self.feature_layer = feature_layer
        self.device, self.dtype, self.batch_size = device, dtype, batch_size
        # The model's own input size wins over its pretrained_cfg (they differ when img_size is overridden).
        overrides = {"input_size": (3, *model.patch_embed.img_size)} if hasattr(model, "patch_embed") else {}
        config = timm.data.resolve_data_config(overrides, model=model)
        self.transform = timm.data.create_transform(**config, is_training=False)
        self.spec = geometry.spec_from_timm(config)
        self.num_prefix = int(getattr(model, "num_prefix_tokens", 1))

    @classmethod
    def from_entry(cls, entry: ModelEntry, *, device: str = "cpu", dtype: torch.dtype = torch.float32) -> "TimmEncoder":
        import timm

        model_id = entry.source.removeprefix("timm:")
        checkpoint = entry.options.get("checkpoint")
        if not checkpoint:
            raise ModelUnavailable(
                f"timm model {model_id} needs local weights: download them on a machine with hub access "
                "(e.g. timm.create_model(id, pretrained=True) then save_file(model.state_dict(), 'w.safetensors')) "
                f"and set options.checkpoint in [models.{entry.name}]"
            )
        path = (entry.base_dir / checkpoint).resolve()
        if not path.is_file():
            raise ModelUnavailable(f"{path}: checkpoint for timm model {model_id} not found ([models.{entry.name}] options.checkpoint)")
        model = timm.create_model(model_id, pretrained=False, num_classes=0, **entry.options.get("model_kwargs", {}))
        state = _load_state_dict(path)
        model.load_state_dict(state, strict=False)
        return cls(entry.name, model, feature_layer=entry.feature_layer, device=device, dtype=dtype, batch_size=entry.batch_size)

    @torch.inference_mode()
    def encode(self, images: list[Image.Image]) -> list[Features]:
        out: list[Features] = []
        for start in range(0, len(images), self.batch_size):
            batch = [im.convert("RGB") for im in images[start : start + self.batch_size]]
            x = torch.stack([self.transform(im) for im in batch]).to(device=self.device, dtype=self.dtype)
            if self.feature_layer is None:
                tokens = self.model.forward_features(x)
                pooled = self.model.forward_head(tokens, pre_logits=True).float().cpu()
                grids = tokens[:, self.num_prefix :]
                ph, pw = self.model.patch_embed.patch_size
                gh, gw = x.shape[-2] // ph, x.shape[-1] // pw
                grids = grids.float().reshape(len(batch), gh, gw, -1).permute(0, 3, 1, 2).cpu()
            else:
                n_blocks = len(self.model.blocks)
                index = self.feature_layer % n_blocks
                grids = self.model.forward_intermediates(x, indices=[index], intermediates_only=True, output_fmt="NCHW")[0]
                grids = grids.float().cpu()
                pooled = grids.mean(dim=(-1, -2))
            for im, grid, pool in zip(batch, grids, pooled):
                out.append(Features(grid, pool, geometry.plan(self.spec, im.size)))
        return out


def _load_state_dict(path: Path) -> dict[str, torch.Tensor]:
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    return torch.load(path, map_location="cpu", weights_only=True)


class PixelsEncoder:
    """Training-free sanity baseline: normalised cross-correlation of raw grey-level windows.

    The image is resized so its long side is ``work_size``; the feature at each pixel is
    its ``window``×``window`` neighbourhood, zero-mean and L2-normalised, so the cosine
    similarity of two features is their NCC (invariant to affine brightness changes).
    """

    def __init__(self, name: str = "pixels", *, work_size: int = 128, window: int = 9):
        self.name = name
        self.window = window
        self.spec = PreprocessSpec("longest_edge", work_size, resample=Image.Resampling.BILINEAR, source="pixels")

    def encode(self, images: list[Image.Image]) -> list[Features]:
        out = []
        for im in images:
            work = geometry.apply(self.spec, im)
            gray = torch.from_numpy(np.asarray(work.convert("L"), dtype=np.float32) / 255.0)[None, None]
            pad = self.window // 2
            padded = F.pad(gray, (pad, pad, pad, pad), mode="reflect")
            windows = F.unfold(padded, self.window)[0]  # (window², H·W)
            windows = windows - windows.mean(dim=0, keepdim=True)
            windows = windows / windows.norm(dim=0, keepdim=True).clamp_min(1e-6)
            patches = windows.reshape(-1, work.height, work.width)
            thumb = torch.from_numpy(np.asarray(work.resize((8, 8)), dtype=np.float32) / 255.0)
            out.append(Features(patches, thumb.mean(dim=(0, 1)), geometry.plan(self.spec, im.size)))
        return out


def load_encoder(entry: ModelEntry, *, device: str = "cpu", dtype: str | torch.dtype = "float32") -> Encoder:
    """The encoder an entry names; a model that is not present raises ModelUnavailable with the fix."""
    source = entry.resolved_source()
    if source == "pixels":
        return PixelsEncoder(entry.name, **entry.options)
    if source.startswith("timm:"):
        return TimmEncoder.from_entry(entry, device=device, dtype=torch_dtype(dtype))
    missing = missing_local_folder(entry)
    if missing is not None:
        raise missing
    try:
        return HFEncoder.from_pretrained(
            entry.name, source, revision=entry.revision, feature_layer=entry.feature_layer, device=device,
            dtype=dtype, trust_remote_code=entry.trust_remote_code, batch_size=entry.batch_size,
        )  # fmt: skip
    except OSError as exc:
        if entry.is_local_path:
            raise
        raise not_in_hf_cache(entry, exc) from None
