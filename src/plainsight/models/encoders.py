"""Vision encoders: patch-feature grids, pooled features and the point mapping for each image.

Every encoder returns, per image, :class:`Features`: the patch tokens as a
(C, gh, gw) grid (CLS and register tokens removed), a pooled feature, and the
:class:`~plainsight.geometry.PointTransform` from the source image's pixels to the
model input, so readouts sample features exactly where a point went.

Layer selection (``feature_layer``) follows transformers' ``hidden_states`` indexing
for every backend: 0 is the patch embedding, ``i`` the output of block ``i``
(1-based), -1 the last block's output and -2 the second-to-last block's (LLaVA's
``vision_feature_layer``). ``None`` means the model's final output (see each class).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from plainsight import geometry
from plainsight.errors import ConfigError, ModelUnavailable
from plainsight.geometry import PointTransform, PreprocessSpec
from plainsight.models.backends import BACKENDS, TIMM, Backend
from plainsight.models.registry import ModelEntry, missing_local_folder, not_in_hf_cache

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def torch_dtype(dtype: str | torch.dtype) -> torch.dtype:
    """A torch dtype from its name ("float32", "bfloat16", "float16") or itself."""
    if isinstance(dtype, torch.dtype):
        return dtype
    try:
        return DTYPES[dtype]
    except KeyError:
        raise ValueError(f"unknown dtype {dtype!r}; use one of {sorted(DTYPES)}") from None


@dataclass
class Features:
    """One image's features: ``patches`` (C, gh, gw) and ``pooled`` (C,), float32 on CPU.

    ``transform`` maps source-image pixels to model-input pixels; the input is
    ``gw·patch × gh·patch`` pixels, so ``transform.to_grid`` addresses ``patches`` directly.
    """

    patches: torch.Tensor
    pooled: torch.Tensor
    transform: PointTransform


class Encoder(Protocol):
    name: str
    spec: PreprocessSpec

    def encode(self, images: list[Image.Image]) -> list[Features]:
        """Batched forward(s); one Features per image, in order."""
        ...


def _hidden_state_index(feature_layer: int | None, n_blocks: int, name: str) -> int | None:
    """``feature_layer`` as a non-negative index into ``hidden_states`` (n_blocks + 1 entries)."""
    if feature_layer is None:
        return None
    index = feature_layer + n_blocks + 1 if feature_layer < 0 else feature_layer
    if not 0 <= index <= n_blocks:
        raise ConfigError(
            f"{name}: feature_layer = {feature_layer} is out of range for a model with {n_blocks} blocks "
            f"(use -{n_blocks + 1}..{n_blocks}, or leave it unset for the final output)"
        )
    return index


def _grid(tokens: torch.Tensor, n_prefix: int, gh: int, gw: int, name: str, what: str) -> torch.Tensor:
    """(B, prefix + gh·gw, C) tokens → (B, C, gh, gw) float32 CPU patches, checking the token count."""
    if tokens.shape[1] != n_prefix + gh * gw:
        raise RuntimeError(
            f"{name}: {tokens.shape[1]} tokens for {what}; expected {n_prefix} prefix (CLS/register) + "
            f"{gh}x{gw} patch tokens"
        )
    return tokens[:, n_prefix:].float().reshape(tokens.shape[0], gh, gw, -1).permute(0, 3, 1, 2).contiguous().cpu()


def _input_grid(name: str, height: int, width: int, patch: tuple[int, int]) -> tuple[int, int]:
    """(gh, gw) of an input of ``height`` x ``width`` pixels cut into (ph, pw) patches, which must tile it exactly."""
    ph, pw = patch
    if height % ph or width % pw:
        raise RuntimeError(
            f"{name}: model input {width}x{height} is not a whole number of {pw}x{ph}-pixel patches, so points "
            "cannot be mapped onto the patch grid"
        )
    return height // ph, width // pw


class HFEncoder:
    """A transformers vision backbone: DINOv2 (with or without registers), CLIP / SigLIP towers, ViT.

    ``feature_layer=None`` takes ``last_hidden_state``: after the final layernorm for DINOv2,
    ViT and SigLIP (whose ``post_layernorm`` covers every token), the last block's raw output
    for CLIP (whose ``post_layernorm`` only touches the pooled CLS). An int indexes
    ``hidden_states`` (0 = embeddings, -1 = last block output *before* any final norm,
    -2 = second-to-last block, as LLaVA feeds its projector).

    ``pooled`` does not depend on ``feature_layer``: CLIP's and SigLIP's ``pooler_output``
    (the post-layernormed CLS; the attention-pooling head), otherwise the CLS token of
    ``last_hidden_state`` (DINOv2, ViT), or the mean patch token for a model without either.
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
        self.device, self.dtype, self.batch_size = device, dtype, max(1, int(batch_size))
        try:
            self.spec = geometry.spec_from_hf(image_processor)
        except NotImplementedError as exc:
            raise ConfigError(f"{name}: cannot map points through this image processor ({exc})") from None
        config = self.model.config
        self.model_type = str(getattr(config, "model_type", ""))
        self.patch_size = int(config.patch_size)
        self.num_prefix = _num_prefix_tokens(config)
        self.feature_layer = feature_layer
        self._layer_index = _hidden_state_index(feature_layer, int(config.num_hidden_layers), name)

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
        """Load model and image processor from a local folder or the local HF cache (never downloads by default)."""
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
            result = self.model(pixel_values=pixels, output_hidden_states=self._layer_index is not None)
            if self._layer_index is None:
                tokens = result.last_hidden_state
            else:
                tokens = result.hidden_states[self._layer_index]
            h_in, w_in = pixels.shape[-2:]
            gh, gw = _input_grid(self.name, h_in, w_in, (self.patch_size, self.patch_size))
            grids = _grid(tokens, self.num_prefix, gh, gw, self.name, f"a {w_in}x{h_in} input")
            pooled = self._pooled(result).float().cpu()
            for im, grid, pool in zip(batch, grids, pooled):
                out.append(Features(grid, pool, _checked_plan(self.name, self.spec, im, (w_in, h_in))))
        return out

    @torch.inference_mode()
    def encode_layers(
        self, images: list[Image.Image], count: int = 4
    ) -> list[tuple[list[torch.Tensor], PointTransform]]:
        """Per image: ``count`` patch grids from evenly spaced blocks (probe3d's N/4, N/2, 3N/4, N) and the transform."""
        blocks = probe_blocks(int(self.model.config.num_hidden_layers), count)
        out = []
        for start in range(0, len(images), self.batch_size):
            batch = [im.convert("RGB") for im in images[start : start + self.batch_size]]
            pixels = self.image_processor(images=batch, return_tensors="pt")["pixel_values"]
            pixels = pixels.to(device=self.device, dtype=self.dtype)
            hidden = self.model(pixel_values=pixels, output_hidden_states=True).hidden_states
            h_in, w_in = pixels.shape[-2:]
            gh, gw = _input_grid(self.name, h_in, w_in, (self.patch_size, self.patch_size))
            grids = [_grid(hidden[b], self.num_prefix, gh, gw, self.name, f"a {w_in}x{h_in} input") for b in blocks]
            for i, im in enumerate(batch):
                out.append(([g[i] for g in grids], _checked_plan(self.name, self.spec, im, (w_in, h_in))))
        return out

    def _pooled(self, result: Any) -> torch.Tensor:
        pooler = getattr(result, "pooler_output", None)
        if pooler is not None and self.model_type.startswith(("clip", "siglip")):
            return pooler
        if self.num_prefix:
            return result.last_hidden_state[:, 0]
        return result.last_hidden_state.mean(dim=1)


def probe_blocks(n_blocks: int, count: int) -> list[int]:
    """1-based block indices (``hidden_states`` indices) evenly spaced to the last: 24 blocks, 4 → [6, 12, 18, 24]."""
    return [max(1, round(n_blocks * k / count)) for k in range(1, count + 1)]


def _checked_plan(name: str, spec: PreprocessSpec, image: Image.Image, produced: tuple[int, int]) -> PointTransform:
    """The point mapping for an image, checked against the input size the real preprocessing produced."""
    transform = geometry.plan(spec, image.size)
    if transform.out_size != produced:
        raise RuntimeError(
            f"{name}: the preprocessing model ({spec.describe()}) predicts a {transform.out_size[0]}x"
            f"{transform.out_size[1]} input for a {image.width}x{image.height} image, but the model's own "
            f"preprocessing produced {produced[0]}x{produced[1]}"
        )
    return transform


def _vision_tower(model: Any) -> Any:
    """The vision part of a dual-encoder checkpoint (CLIPModel, SiglipModel), or the model itself."""
    if hasattr(model, "text_model") and hasattr(model, "vision_model"):
        return model.vision_model
    return model


def _num_prefix_tokens(config: Any) -> int:
    """Tokens before the patch tokens: CLS (none for SigLIP) plus DINOv2's register tokens."""
    if str(getattr(config, "model_type", "")).startswith("siglip"):
        return 0
    return 1 + int(getattr(config, "num_register_tokens", 0) or 0)


class TimmEncoder:
    """A timm ViT; weights come from a local file (``options.checkpoint``), never the hub.

    The input is timm's own eval transform for the model's data config.
    ``feature_layer=None``: ``forward_features`` (after the final norm); an int: the output
    of that block via ``forward_intermediates`` (no norm), indexed like ``hidden_states``
    (-1 = last block, -2 = second-to-last; 0, the embeddings, is not available from timm).
    ``pooled`` is ``forward_head(pre_logits=True)`` of the final features (CLS or the
    model's global pool). Prefix tokens (CLS, registers) are dropped via ``num_prefix_tokens``.
    """

    def __init__(self, name: str, model: Any, *, feature_layer: int | None = None, device: str = "cpu",
                 dtype: torch.dtype = torch.float32, batch_size: int = 8, model_id: str | None = None):  # fmt: skip
        import timm.data

        self.name = name
        self.model = model.to(device=device, dtype=dtype).eval()
        self.device, self.dtype, self.batch_size = device, dtype, max(1, int(batch_size))
        if not hasattr(model, "patch_embed") or not hasattr(model, "forward_intermediates"):
            raise ConfigError(f"{name}: TimmEncoder supports timm ViTs (patch_embed + forward_intermediates)")
        model_id = (
            model_id or (getattr(model, "pretrained_cfg", None) or {}).get("architecture") or type(model).__name__
        )
        # The model's own input size wins over its pretrained_cfg (they differ when img_size is overridden).
        config = timm.data.resolve_data_config({"input_size": (3, *model.patch_embed.img_size)}, model=model)
        self.transform = timm.data.create_transform(**config, is_training=False)
        self.spec = geometry.spec_from_timm(config, source=f"{TIMM}{model_id}")
        self.patch_size = tuple(int(p) for p in model.patch_embed.patch_size)
        self.num_prefix = int(getattr(model, "num_prefix_tokens", 1))
        self.feature_layer = feature_layer
        index = _hidden_state_index(feature_layer, len(model.blocks), name)
        if index == 0:
            raise ConfigError(
                f"{name}: feature_layer = {feature_layer} (the patch embedding) is not available from timm"
            )
        self._block = None if index is None else index - 1

    @classmethod
    def from_entry(cls, entry: ModelEntry, *, device: str = "cpu", dtype: torch.dtype = torch.float32) -> "TimmEncoder":
        """Build ``timm:<id>`` with ``options.model_kwargs`` and load ``options.checkpoint`` (safetensors or weights-only .pth)."""
        import timm

        model_id = entry.source.removeprefix(TIMM)
        checkpoint = entry.options.get("checkpoint")
        if not checkpoint:
            raise ModelUnavailable(
                f"timm model {model_id} needs local weights (the suite never downloads): on a machine with hub access "
                f"run `timm.create_model('{model_id}', pretrained=True)` and save its state_dict with "
                "safetensors.torch.save_file(model.state_dict(), 'weights.safetensors'), then set "
                f'options.checkpoint = "weights.safetensors" in [models.{entry.name}]'
            )
        path = (entry.base_dir / Path(checkpoint).expanduser()).resolve()
        if not path.is_file():
            raise ModelUnavailable(
                f"{path}: checkpoint for timm model {model_id} not found ([models.{entry.name}] options.checkpoint)"
            )
        try:
            model = timm.create_model(
                model_id, pretrained=False, num_classes=0, **entry.options.get("model_kwargs", {})
            )
        except (RuntimeError, TypeError, ValueError) as exc:  # timm raises RuntimeError for an unknown id
            raise ConfigError(
                f"[models.{entry.name}] source {entry.source!r}: cannot build the timm model ({exc})"
            ) from None
        _load_weights(model, path, entry.name)
        return cls(entry.name, model, feature_layer=entry.feature_layer, device=device, dtype=dtype,
                   batch_size=entry.batch_size, model_id=model_id)  # fmt: skip

    @torch.inference_mode()
    def encode(self, images: list[Image.Image]) -> list[Features]:
        out: list[Features] = []
        for start in range(0, len(images), self.batch_size):
            batch = [im.convert("RGB") for im in images[start : start + self.batch_size]]
            x = torch.stack([self.transform(im) for im in batch]).to(device=self.device, dtype=self.dtype)
            h_in, w_in = x.shape[-2:]
            gh, gw = _input_grid(self.name, h_in, w_in, self.patch_size)
            if self._block is None:
                final = self.model.forward_features(x)
                grids = _grid(final, self.num_prefix, gh, gw, self.name, f"a {w_in}x{h_in} input")
            else:
                final, inter = self.model.forward_intermediates(x, indices=[self._block], output_fmt="NCHW")
                grids = inter[0].float().cpu()
                if tuple(grids.shape[-2:]) != (gh, gw):
                    raise RuntimeError(f"{self.name}: block output grid {tuple(grids.shape[-2:])} != {(gh, gw)}")
            pooled = self.model.forward_head(final, pre_logits=True).float().cpu()
            for im, grid, pool in zip(batch, grids, pooled):
                out.append(Features(grid, pool, _checked_plan(self.name, self.spec, im, (w_in, h_in))))
        return out

    @torch.inference_mode()
    def encode_layers(
        self, images: list[Image.Image], count: int = 4
    ) -> list[tuple[list[torch.Tensor], PointTransform]]:
        """Per image: ``count`` block outputs (probe3d's N/4, N/2, 3N/4, N) as patch grids, and the transform."""
        indices = [b - 1 for b in probe_blocks(len(self.model.blocks), count)]
        out = []
        for start in range(0, len(images), self.batch_size):
            batch = [im.convert("RGB") for im in images[start : start + self.batch_size]]
            x = torch.stack([self.transform(im) for im in batch]).to(device=self.device, dtype=self.dtype)
            h_in, w_in = x.shape[-2:]
            unique = sorted(set(indices))
            _, inter = self.model.forward_intermediates(x, indices=unique, output_fmt="NCHW")
            by_block = {b: t.float().cpu() for b, t in zip(unique, inter)}
            for i, im in enumerate(batch):
                out.append(([by_block[b][i] for b in indices], _checked_plan(self.name, self.spec, im, (w_in, h_in))))
        return out


def _load_weights(model: Any, path: Path, entry_name: str) -> None:
    """Load a state dict (safetensors, or a .pth read with weights_only=True) strictly, minus the classifier."""
    from timm.models import load_state_dict

    try:
        state = load_state_dict(str(path), weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unreadable file is the user's to fix
        raise ConfigError(
            f"{path}: cannot read the checkpoint ([models.{entry_name}] options.checkpoint): {exc}"
        ) from None
    classifier = (getattr(model, "pretrained_cfg", None) or {}).get("classifier") or "head"
    classifiers = classifier if isinstance(classifier, (list, tuple)) else [classifier]
    state = {k: v for k, v in state.items() if not any(k.startswith(f"{c}.") for c in classifiers)}
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise ConfigError(
            f"{path}: checkpoint does not match the model ([models.{entry_name}]): missing {sorted(missing)[:5]}, "
            f"unexpected {sorted(unexpected)[:5]} — check source and options.model_kwargs"
        )


class PixelsEncoder:
    """Training-free sanity baseline: normalised cross-correlation of raw grey-level windows.

    The image is resized so its long side is ``work_size`` (aspect kept); the feature at each
    pixel is its ``window``×``window`` grey-level neighbourhood (reflection-padded at the
    border), zero-mean and L2-normalised, so the cosine similarity of two features is their NCC
    (invariant to affine brightness changes). ``pooled`` is the same for the whole image: the
    8×8 grey thumbnail, zero-mean and L2-normalised (cosine = NCC of the thumbnails, a layout
    and silhouette descriptor).
    """

    def __init__(self, name: str = "pixels", *, work_size: int = 128, window: int = 9):
        if window < 1 or window % 2 == 0:
            raise ConfigError(f"{name}: window must be an odd positive number of pixels, got {window}")
        self.name = name
        self.window = int(window)
        self.spec = PreprocessSpec("longest_edge", int(work_size), resample=Image.Resampling.BILINEAR, source="pixels")

    def encode(self, images: list[Image.Image]) -> list[Features]:
        out = []
        for im in images:
            work = geometry.apply(self.spec, im)
            gray = torch.from_numpy(np.asarray(work.convert("L"), dtype=np.float32) / 255.0)[None, None]
            pad = self.window // 2
            # Reflection needs the image to be larger than the pad; tiny slivers fall back to edge replication.
            mode = "reflect" if min(work.size) > pad else "replicate"
            padded = F.pad(gray, (pad, pad, pad, pad), mode=mode)
            windows = F.unfold(padded, self.window)[0]  # (window², H·W)
            windows = windows - windows.mean(dim=0, keepdim=True)
            windows = windows / windows.norm(dim=0, keepdim=True).clamp_min(1e-6)
            patches = windows.reshape(-1, work.height, work.width)
            out.append(Features(patches, _thumbnail_ncc(work), geometry.plan(self.spec, im.size)))
        return out


def _thumbnail_ncc(image: Image.Image, side: int = 8) -> torch.Tensor:
    thumb = torch.from_numpy(
        np.asarray(image.convert("L").resize((side, side), Image.Resampling.BOX), dtype=np.float32)
    )
    flat = thumb.flatten() - thumb.mean()
    return flat / flat.norm().clamp_min(1e-6)


def load_pixels_encoder(
    entry: ModelEntry, *, device: str = "cpu", dtype: str | torch.dtype = "float32"
) -> PixelsEncoder:
    """The ``pixels`` baseline with the entry's options (work_size, window)."""
    try:
        return PixelsEncoder(entry.name, **entry.options)
    except TypeError as exc:
        raise ConfigError(f"[models.{entry.name}] options: {exc} (pixels takes work_size, window)") from None


def load_timm_encoder(entry: ModelEntry, *, device: str = "cpu", dtype: str | torch.dtype = "float32") -> TimmEncoder:
    """A ``timm:<id>`` entry (local weights from ``options.checkpoint``)."""
    return TimmEncoder.from_entry(entry, device=device, dtype=torch_dtype(dtype))


def load_hf_encoder(entry: ModelEntry, *, device: str = "cpu", dtype: str | torch.dtype = "float32") -> HFEncoder:
    """A transformers encoder from a local folder or an HF id in the local cache; a model that is not present
    raises ModelUnavailable saying how to provide it."""
    missing = missing_local_folder(entry)
    if missing is not None:
        raise missing
    try:
        return HFEncoder.from_pretrained(
            entry.name, entry.resolved_source(), revision=entry.revision, feature_layer=entry.feature_layer,
            device=device, dtype=dtype, trust_remote_code=entry.trust_remote_code, batch_size=entry.batch_size,
        )  # fmt: skip
    except OSError as exc:
        if entry.is_local_path:
            raise
        raise not_in_hf_cache(entry, exc) from None


def hf_preprocess_spec(entry: ModelEntry) -> PreprocessSpec:
    """The geometry of an HF model's image processor, read from its processor files only (no weights)."""
    from transformers import AutoImageProcessor

    processor = AutoImageProcessor.from_pretrained(entry.resolved_source(), local_files_only=True,
                                                   trust_remote_code=entry.trust_remote_code)  # fmt: skip
    return geometry.spec_from_hf(processor)


def _spec_once_loaded(load: Callable[..., Any]) -> Callable[[ModelEntry], PreprocessSpec]:
    """The spec of the loaded encoder (pixels loads nothing; a timm model has no processor files to read)."""
    return lambda entry: load(entry).spec


BACKENDS.register("encoder:pixels", Backend(load_pixels_encoder, _spec_once_loaded(load_pixels_encoder)))
BACKENDS.register("encoder:timm", Backend(load_timm_encoder, _spec_once_loaded(load_timm_encoder)))
BACKENDS.register("encoder:hf", Backend(load_hf_encoder, hf_preprocess_spec))
