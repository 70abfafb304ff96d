"""Points through preprocessing: resize, centre crop, letterbox, composition, homographies.

A point ``(x, y)`` is in pixel-index coordinates (pixel centres at integers); its
continuous position is ``c = x + 0.5``. Every step here is an axis-aligned affine
map on continuous positions, ``c' = c · scale + offset``, which is exactly how
PIL/transformers resampling moves pixel centres. The normalised sampling position
for ``grid_sample(align_corners=False)`` is ``2 · c' / W − 1``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
from PIL import Image

Size = tuple[int, int]  # (width, height)


@dataclass(frozen=True)
class PreprocessSpec:
    """The geometric part of an image processor.

    ``resize``: "none" | "shortest_edge" | "longest_edge" | "shortest_longest" | "exact".
    ``size``: edge length, (short, long) for "shortest_longest", or (height, width) for "exact".
    ``crop``: centre crop (height, width); ``crop_rounding`` "floor" (transformers) or
    "round" (torchvision transforms, i.e. timm). ``letterbox`` pads to a centred
    square with ``fill`` first (Prismatic).
    """

    resize: str
    size: int | tuple[int, int] | None = None
    crop: tuple[int, int] | None = None
    crop_rounding: str = "floor"
    letterbox: bool = False
    fill: tuple[int, int, int] = (0, 0, 0)
    resample: int = Image.Resampling.BICUBIC
    source: str = ""


@dataclass(frozen=True)
class PointTransform:
    """``c' = c · scale + offset`` on continuous coordinates, from an ``in_size`` image to an ``out_size`` one."""

    scale: tuple[float, float]
    offset: tuple[float, float]
    in_size: Size
    out_size: Size

    @staticmethod
    def identity(size: Size) -> "PointTransform":
        return PointTransform((1.0, 1.0), (0.0, 0.0), tuple(size), tuple(size))

    @staticmethod
    def translation(dx: float, dy: float, in_size: Size, out_size: Size) -> "PointTransform":
        return PointTransform((1.0, 1.0), (float(dx), float(dy)), tuple(in_size), tuple(out_size))

    def map(self, p: Sequence[float]) -> tuple[float, float]:
        """Pixel-index coordinates of ``p`` in the output image."""
        x = (p[0] + 0.5) * self.scale[0] + self.offset[0] - 0.5
        y = (p[1] + 0.5) * self.scale[1] + self.offset[1] - 0.5
        return x, y

    def map_many(self, pts: np.ndarray) -> np.ndarray:
        pts = np.asarray(pts, dtype=np.float64).reshape(-1, 2)
        return (pts + 0.5) * np.asarray(self.scale) + np.asarray(self.offset) - 0.5

    def contains(self, p: Sequence[float], margin: float = 0.0) -> bool:
        """Whether ``p`` lands inside the output (its continuous position within [margin, W − margin])."""
        x, y = self.map(p)
        w, h = self.out_size
        return margin <= x + 0.5 <= w - margin and margin <= y + 0.5 <= h - margin

    def to_grid(self, p: Sequence[float]) -> tuple[float, float]:
        """Normalised [-1, 1] coordinates of ``p`` for ``grid_sample(align_corners=False)`` on the output."""
        x, y = self.map(p)
        return 2.0 * (x + 0.5) / self.out_size[0] - 1.0, 2.0 * (y + 0.5) / self.out_size[1] - 1.0

    def then(self, other: "PointTransform") -> "PointTransform":
        """This transform followed by ``other``."""
        sx = self.scale[0] * other.scale[0]
        sy = self.scale[1] * other.scale[1]
        ox = self.offset[0] * other.scale[0] + other.offset[0]
        oy = self.offset[1] * other.scale[1] + other.offset[1]
        return PointTransform((sx, sy), (ox, oy), self.in_size, other.out_size)


def _resize_size(spec: PreprocessSpec, size: Size) -> Size:
    """Output (W, H) of the resize step, with the rounding transformers / torchvision use."""
    w, h = size
    if spec.resize == "none":
        return w, h
    if spec.resize == "exact":
        eh, ew = spec.size  # type: ignore[misc]
        return int(ew), int(eh)
    if spec.resize == "shortest_edge":
        short, long = (w, h) if w <= h else (h, w)
        new_short, new_long = int(spec.size), max(1, int(int(spec.size) * long / short))  # type: ignore[arg-type]
        return (new_short, new_long) if w <= h else (new_long, new_short)
    if spec.resize == "longest_edge":
        target = int(spec.size)  # type: ignore[arg-type]
        if w >= h:
            return target, max(1, int(round(h * target / w)))
        return max(1, int(round(w * target / h))), target
    if spec.resize == "shortest_longest":
        # transformers.image_utils.get_size_with_aspect_ratio
        short_target, long_target = spec.size  # type: ignore[misc]
        short, long = (w, h) if w <= h else (h, w)
        new_short = short_target
        new_long = int(short_target * long / short)
        if new_long > long_target:
            new_long = long_target
            new_short = max(1, int(long_target * short / long))
        return (new_short, new_long) if w <= h else (new_long, new_short)
    raise ValueError(f"unknown resize mode {spec.resize!r}")


def _crop_offset(in_len: int, crop_len: int, rounding: str) -> int:
    if crop_len > in_len:  # the crop pads: image centred, extra pixel at the end
        return -((crop_len - in_len) // 2)
    if rounding == "round":
        return int(round((in_len - crop_len) / 2.0))
    return (in_len - crop_len) // 2


def plan(spec: PreprocessSpec, size: Size) -> PointTransform:
    """How the processor described by ``spec`` moves the points of an image of ``size`` = (W, H)."""
    size = (int(size[0]), int(size[1]))
    transform = PointTransform.identity(size)
    if spec.letterbox:
        side = max(size)
        dx, dy = (side - size[0]) // 2, (side - size[1]) // 2
        transform = transform.then(PointTransform.translation(dx, dy, size, (side, side)))
    current = transform.out_size
    resized = _resize_size(spec, current)
    transform = transform.then(
        PointTransform((resized[0] / current[0], resized[1] / current[1]), (0.0, 0.0), current, resized)
    )
    if spec.crop is not None:
        ch, cw = spec.crop
        ox = _crop_offset(resized[0], cw, spec.crop_rounding)
        oy = _crop_offset(resized[1], ch, spec.crop_rounding)
        transform = transform.then(PointTransform.translation(-ox, -oy, resized, (cw, ch)))
    return transform


def apply(spec: PreprocessSpec, image: Image.Image) -> Image.Image:
    """The geometric part of the preprocessing, in pixel space (what the model's input looks like)."""
    image = image.convert("RGB")
    if spec.letterbox:
        side = max(image.size)
        canvas = Image.new("RGB", (side, side), tuple(spec.fill))
        canvas.paste(image, ((side - image.width) // 2, (side - image.height) // 2))
        image = canvas
    resized = _resize_size(spec, image.size)
    if resized != image.size:
        image = image.resize(resized, resample=spec.resample)
    if spec.crop is not None:
        ch, cw = spec.crop
        ox = _crop_offset(image.width, cw, spec.crop_rounding)
        oy = _crop_offset(image.height, ch, spec.crop_rounding)
        canvas = Image.new("RGB", (cw, ch), (0, 0, 0))
        canvas.paste(image, (-ox, -oy))
        image = canvas
    return image


def _get(obj: Any, key: str) -> Any:
    if obj is None:
        return None
    if isinstance(obj, dict):
        return obj.get(key)
    return getattr(obj, key, None)


def spec_from_hf(image_processor: Any) -> PreprocessSpec:
    """The geometry of a transformers image processor with resize + optional centre crop.

    Supports the ViT-style processors (CLIP, Bit/DINOv2, SigLIP, ViT, LLaVA's CLIP) of
    both backends. Processors with dynamic resizing or tiling (Qwen2-VL, Idefics3)
    raise NotImplementedError: they never crop, so callers treat them as keeping every point.
    """
    name = type(image_processor).__name__
    if any(tag in name for tag in ("Qwen2VL", "Idefics", "SmolVLM", "Llava", "Pixtral", "InternVL")) and not name.startswith(
        ("CLIP", "Bit", "Siglip", "ViT")
    ):
        raise NotImplementedError(f"{name}: dynamic resizing/tiling is not modelled")
    size = _get(image_processor, "size")
    resample = _get(image_processor, "resample")
    resample = int(resample) if resample is not None else int(Image.Resampling.BICUBIC)
    do_resize = bool(_get(image_processor, "do_resize"))
    if not do_resize or size is None:
        resize, rsize = "none", None
    elif _get(size, "height") and _get(size, "width"):
        resize, rsize = "exact", (int(_get(size, "height")), int(_get(size, "width")))
    elif _get(size, "shortest_edge") and _get(size, "longest_edge"):
        resize, rsize = "shortest_longest", (int(_get(size, "shortest_edge")), int(_get(size, "longest_edge")))
    elif _get(size, "shortest_edge"):
        resize, rsize = "shortest_edge", int(_get(size, "shortest_edge"))
    else:
        raise NotImplementedError(f"{name}: size {dict(size) if hasattr(size, 'keys') else size} is not modelled")
    crop = None
    if _get(image_processor, "do_center_crop"):
        cs = _get(image_processor, "crop_size")
        crop = (int(_get(cs, "height")), int(_get(cs, "width")))
    return PreprocessSpec(resize=resize, size=rsize, crop=crop, resample=resample, source=name)


def spec_from_timm(data_config: dict) -> PreprocessSpec:
    """The geometry of timm's eval transform (resize the short side to size / crop_pct, then centre crop)."""
    _, h, w = data_config["input_size"]
    crop_pct = float(data_config.get("crop_pct") or 1.0)
    crop_mode = data_config.get("crop_mode", "center")
    if crop_mode not in ("center", None):
        raise NotImplementedError(f"timm crop_mode {crop_mode!r} is not modelled")
    resample = {
        "bicubic": Image.Resampling.BICUBIC,
        "bilinear": Image.Resampling.BILINEAR,
        "nearest": Image.Resampling.NEAREST,
    }.get(data_config.get("interpolation", "bicubic"), Image.Resampling.BICUBIC)
    if h == w:
        scale = int(np.floor(h / crop_pct))
        return PreprocessSpec(
            "shortest_edge", scale, crop=(h, w), crop_rounding="round", resample=resample, source="timm eval transform"
        )
    scale_h, scale_w = int(np.floor(h / crop_pct)), int(np.floor(w / crop_pct))
    return PreprocessSpec(
        "exact", (scale_h, scale_w), crop=(h, w), crop_rounding="round", resample=resample, source="timm eval transform"
    )


def apply_homography(H: np.ndarray, pts: np.ndarray) -> np.ndarray:
    """Map (N, 2) pixel-index points through a 3×3 homography (HPatches: image 1 → image k)."""
    pts = np.asarray(pts, dtype=np.float64).reshape(-1, 2)
    homog = np.concatenate([pts, np.ones((pts.shape[0], 1))], axis=1) @ np.asarray(H, dtype=np.float64).T
    return homog[:, :2] / homog[:, 2:3]


def sample_points(feature_map: "Any", grid_xy: "Any") -> "Any":
    """Bilinearly sample a (C, gh, gw) feature map at (N, 2) normalised coords → (N, C) (align_corners=False)."""
    import torch
    import torch.nn.functional as F

    grid = torch.as_tensor(np.asarray(grid_xy, dtype=np.float32)).reshape(1, 1, -1, 2)
    fmap = feature_map.float().unsqueeze(0)
    sampled = F.grid_sample(fmap, grid.to(fmap.device), mode="bilinear", padding_mode="border", align_corners=False)
    return sampled[0, :, 0, :].T
