"""Points through preprocessing: resize, centre crop, letterbox, composition, homographies.

A point ``(x, y)`` is in pixel-index coordinates (pixel centres at integers); its
continuous position is ``c = x + 0.5``. Every preprocessing step here is an
axis-aligned affine map on continuous positions, ``c' = c · scale + offset``, which
is exactly how PIL / torchvision resampling (``align_corners=False``) moves pixel
centres: a resize from ``n`` to ``m`` pixels has ``scale = m / n``; a crop or pad
is a whole-pixel translation. The normalised sampling position for
``grid_sample(align_corners=False)`` is ``2 · c' / W − 1``.

The output sizes and crop offsets replicate transformers 5.24's image processors
(both backends) and torchvision's transforms (timm), including their different
rounding of odd differences; see :data:`CROP_STYLES`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Callable, Sequence

import numpy as np
from PIL import Image

Size = tuple[int, int]  # (width, height)

RESIZE_MODES = ("none", "shortest_edge", "longest_edge", "shortest_longest", "keep_ratio", "exact")

# How a centre crop places the image when the lengths differ by an odd number of pixels:
# (how far the image moves left/up when it is cropped, how far it moves right/down when it is padded).
_FLOOR: Callable[[int], int] = lambda d: d // 2  # noqa: E731
_CEIL: Callable[[int], int] = lambda d: (d + 1) // 2  # noqa: E731
_ROUND: Callable[[int], int] = lambda d: int(round(d / 2.0))  # noqa: E731  (Python rounds half to even)
CROP_STYLES: dict[str, tuple[Callable[[int], int], Callable[[int], int]]] = {
    "transformers": (_FLOOR, _CEIL),  # image_transforms.center_crop (PIL backend)
    "transformers-torchvision": (_FLOOR, _FLOOR),  # TorchvisionBackend.center_crop
    "torchvision": (_ROUND, _FLOOR),  # torchvision.transforms.CenterCrop (timm's eval transform)
}

# timm's DEFAULT_CROP_PCT, kept here so geometry does not import timm.
TIMM_DEFAULT_CROP_PCT = 0.875


@dataclass(frozen=True)
class PreprocessSpec:
    """The geometric part of an image processor: optional letterbox, then resize, then optional centre crop.

    ``resize``:
      - ``"none"``;
      - ``"shortest_edge"``: short side to ``size``, long side ``int(size · long / short)``;
      - ``"longest_edge"``: long side to ``size``, short side rounded (our own baselines);
      - ``"shortest_longest"``: ``size = (short, long)``, transformers' ``get_size_with_aspect_ratio``;
      - ``"keep_ratio"``: ``size = (height, width)``, timm's ``ResizeKeepRatio`` (short side matches);
      - ``"exact"``: ``size = (height, width)``.
    ``crop``: centre crop (height, width), padding with black where the image is smaller;
    ``crop_style`` picks the rounding of odd differences (:data:`CROP_STYLES`).
    ``letterbox``: pad to a centred square with ``fill`` first ((max − w) // 2 left, the rest right).
    ``fill``: the processor's normalisation mean as 0–255 RGB, the colour any letterbox pads with
    (LLaVA's ``expand2square``; :func:`letterbox_for`).
    ``source``: where the spec came from (a processor class name, ``timm:<id>``), recorded in reports.
    """

    resize: str
    size: int | tuple[int, int] | None = None
    crop: tuple[int, int] | None = None
    letterbox: bool = False
    fill: tuple[int, int, int] = (0, 0, 0)
    resample: int = Image.Resampling.BICUBIC
    source: str = ""
    crop_style: str = "transformers"

    def __post_init__(self) -> None:
        for name in ("size", "crop", "fill"):  # tuples, so a spec is hashable (plans are cached per spec and size)
            if isinstance(getattr(self, name), list):
                object.__setattr__(self, name, tuple(getattr(self, name)))
        if self.resize not in RESIZE_MODES:
            raise ValueError(f"PreprocessSpec.resize is {self.resize!r}; expected one of {RESIZE_MODES}")
        pair = self.resize in ("shortest_longest", "keep_ratio", "exact")
        if self.resize != "none" and self.size is None:
            raise ValueError(f"PreprocessSpec.size is required for resize {self.resize!r}")
        if self.resize != "none" and (isinstance(self.size, (tuple, list)) and len(self.size) == 2) != pair:
            shape = "a pair" if pair else "one edge length"
            raise ValueError(f"PreprocessSpec.size is {self.size!r}; resize {self.resize!r} takes {shape}")
        if self.crop is not None and len(self.crop) != 2:
            raise ValueError(f"PreprocessSpec.crop is {self.crop!r}; expected (height, width)")
        if self.crop_style not in CROP_STYLES:
            raise ValueError(f"PreprocessSpec.crop_style is {self.crop_style!r}; expected one of {sorted(CROP_STYLES)}")

    def describe(self) -> str:
        """Short human-readable summary, e.g. ``CLIPImageProcessorPil: shortest_edge 224 + centre crop 224``."""
        steps = ["letterbox"] if self.letterbox else []
        if self.resize != "none":
            size = "x".join(str(s) for s in self.size) if isinstance(self.size, (tuple, list)) else str(self.size)
            steps.append(f"{self.resize} {size}")
        if self.crop is not None:
            ch, cw = self.crop
            steps.append(f"centre crop {ch}" if ch == cw else f"centre crop {ch}x{cw}")
        text = " + ".join(steps) or "no resize"
        return f"{self.source}: {text}" if self.source else text


@dataclass(frozen=True)
class PointTransform:
    """``c' = c · scale + offset`` on continuous coordinates (``c = x + 0.5``); ``in_size`` / ``out_size`` are (W, H)."""

    scale: tuple[float, float]
    offset: tuple[float, float]
    in_size: Size
    out_size: Size

    @staticmethod
    def identity(size: Size) -> "PointTransform":
        return PointTransform((1.0, 1.0), (0.0, 0.0), _size(size), _size(size))

    @staticmethod
    def translation(dx: float, dy: float, in_size: Size, out_size: Size) -> "PointTransform":
        """Move points by (dx, dy) pixels, e.g. an image pasted at (dx, dy) of a larger canvas."""
        return PointTransform((1.0, 1.0), (float(dx), float(dy)), _size(in_size), _size(out_size))

    @staticmethod
    def resize(in_size: Size, out_size: Size) -> "PointTransform":
        """A resample from ``in_size`` to ``out_size`` pixels (scale out/in per axis on continuous coordinates)."""
        (wi, hi), (wo, ho) = _size(in_size), _size(out_size)
        return PointTransform((wo / wi, ho / hi), (0.0, 0.0), (wi, hi), (wo, ho))

    def map(self, p: Sequence[float]) -> tuple[float, float]:
        """Pixel-index coordinates of ``p`` in the output image."""
        x = (p[0] + 0.5) * self.scale[0] + self.offset[0] - 0.5
        y = (p[1] + 0.5) * self.scale[1] + self.offset[1] - 0.5
        return float(x), float(y)

    def map_many(self, pts: np.ndarray) -> np.ndarray:
        """(N, 2) pixel-index points → (N, 2) pixel-index points in the output."""
        pts = np.asarray(pts, dtype=np.float64).reshape(-1, 2)
        return (pts + 0.5) * np.asarray(self.scale) + np.asarray(self.offset) - 0.5

    def contains(self, p: Sequence[float], margin: float = 0.0) -> bool:
        """Whether ``p`` lands inside the output, at least ``margin`` pixels from its border.

        On continuous coordinates: ``margin <= c' < W − margin`` (and the same vertically), i.e.
        with ``margin = 0`` the point falls in one of the output's pixels.
        """
        x, y = self.map(p)
        w, h = self.out_size
        return margin <= x + 0.5 < w - margin and margin <= y + 0.5 < h - margin

    def to_grid(self, p: Sequence[float]) -> tuple[float, float]:
        """Normalised [-1, 1] coordinates of ``p`` for ``grid_sample(align_corners=False)`` on the output: ``2c'/W − 1``."""
        x, y = self.map(p)
        return 2.0 * (x + 0.5) / self.out_size[0] - 1.0, 2.0 * (y + 0.5) / self.out_size[1] - 1.0

    def then(self, other: "PointTransform") -> "PointTransform":
        """This transform followed by ``other`` (whose input must be this transform's output)."""
        if tuple(self.out_size) != tuple(other.in_size):
            raise ValueError(
                f"cannot compose: this transform outputs {self.out_size}, the next expects {other.in_size}"
            )
        sx = self.scale[0] * other.scale[0]
        sy = self.scale[1] * other.scale[1]
        ox = self.offset[0] * other.scale[0] + other.offset[0]
        oy = self.offset[1] * other.scale[1] + other.offset[1]
        return PointTransform((sx, sy), (ox, oy), self.in_size, other.out_size)


def _size(size: Sequence[int]) -> Size:
    w, h = int(size[0]), int(size[1])
    if w <= 0 or h <= 0:
        raise ValueError(f"image size must be positive, got {tuple(size)}")
    return w, h


def _resize_size(spec: PreprocessSpec, size: Size) -> Size:
    """Output (W, H) of the resize step, with the rounding transformers / torchvision / timm use."""
    out = _raw_resize_size(spec, size)
    if min(out) < 1:
        raise ValueError(f"{spec.describe()} resizes a {size[0]}x{size[1]} image to {out[0]}x{out[1]} pixels")
    return out


def _raw_resize_size(spec: PreprocessSpec, size: Size) -> Size:
    w, h = size
    mode = spec.resize
    if mode == "none":
        return w, h
    if mode == "exact":
        eh, ew = spec.size  # type: ignore[misc]
        return int(ew), int(eh)
    if mode == "shortest_edge":
        # transformers.image_transforms.get_resize_output_image_size(default_to_square=False) == torchvision Resize(int)
        target = int(spec.size)  # type: ignore[arg-type]
        short, long = (w, h) if w <= h else (h, w)
        new_short, new_long = target, int(target * long / short)
        return (new_short, new_long) if w <= h else (new_long, new_short)
    if mode == "longest_edge":
        target = int(spec.size)  # type: ignore[arg-type]
        if w >= h:
            return target, max(1, int(round(h * target / w)))
        return max(1, int(round(w * target / h))), target
    if mode == "shortest_longest":
        return _size_with_aspect_ratio(w, h, *map(int, spec.size))  # type: ignore[arg-type]
    if mode == "keep_ratio":
        # timm.data.transforms.ResizeKeepRatio (longest=0): the side that needs less scaling meets its target.
        th, tw = spec.size  # type: ignore[misc]
        ratio = min(h / th, w / tw)
        return int(round(w / ratio)), int(round(h / ratio))
    raise ValueError(f"unknown resize mode {mode!r}")


def _size_with_aspect_ratio(w: int, h: int, size: int, max_size: int) -> Size:
    """transformers.image_transforms.get_size_with_aspect_ratio, returning (W, H)."""
    raw_size = None
    if max(h, w) / min(h, w) * size > max_size:
        raw_size = max_size * min(h, w) / max(h, w)
        size = int(round(raw_size))
    if (h <= w and h == size) or (w <= h and w == size):
        return w, h
    if w < h:
        return size, int((raw_size if raw_size is not None else size) * h / w)
    return int((raw_size if raw_size is not None else size) * w / h), size


def _crop_shift(in_len: int, crop_len: int, style: str) -> int:
    """Where the image's first pixel lands in a centre crop of ``crop_len`` (negative: cut off at the start)."""
    cut, pad = CROP_STYLES[style]
    if crop_len > in_len:
        return pad(crop_len - in_len)
    return -cut(in_len - crop_len)


def plan(spec: PreprocessSpec, size: Size) -> PointTransform:
    """How the processor described by ``spec`` moves the points of an image of ``size`` = (W, H) to its input."""
    return _plan(spec, _size(size))


@lru_cache(maxsize=256)  # every item of a dataset asks for the same few (spec, size) plans
def _plan(spec: PreprocessSpec, size: Size) -> PointTransform:
    transform = PointTransform.identity(size)
    if spec.letterbox:
        side = max(size)
        dx, dy = (side - size[0]) // 2, (side - size[1]) // 2
        transform = transform.then(PointTransform.translation(dx, dy, size, (side, side)))
    current = transform.out_size
    transform = transform.then(PointTransform.resize(current, _resize_size(spec, current)))
    if spec.crop is not None:
        ch, cw = int(spec.crop[0]), int(spec.crop[1])
        w, h = transform.out_size
        shift = (_crop_shift(w, cw, spec.crop_style), _crop_shift(h, ch, spec.crop_style))
        transform = transform.then(PointTransform.translation(*shift, (w, h), (cw, ch)))
    return transform


def visible_share(spec: PreprocessSpec, size: Size, region: tuple[float, float, float, float] | None = None) -> float:
    """The share of ``region`` = (x0, y0, x1, y1) of an image of ``size`` that survives the preprocessing.

    ``region`` is in continuous coordinates (pixel edges; the whole image is (0, 0, W, H), the
    default); 1.0 when nothing of it is cropped away, 0.0 when all of it is.
    """
    t = plan(spec, size)
    x0, y0, x1, y1 = region if region is not None else (0.0, 0.0, float(t.in_size[0]), float(t.in_size[1]))
    if x1 <= x0 or y1 <= y0:
        raise ValueError(f"empty region {region}")
    (sx, sy), (ox, oy) = t.scale, t.offset
    left, right, top, bottom = x0 * sx + ox, x1 * sx + ox, y0 * sy + oy, y1 * sy + oy
    w, h = t.out_size
    kept_x = max(0.0, min(right, w) - max(left, 0.0)) / (right - left)
    kept_y = max(0.0, min(bottom, h) - max(top, 0.0)) / (bottom - top)
    return _whole(kept_x) * _whole(kept_y)


def _whole(share: float) -> float:
    """Float round-off at an edge (a scale of 336/160) is not a crop."""
    return 1.0 if share > 1.0 - 1e-9 else share


@dataclass(frozen=True)
class Letterbox:
    """An image of ``size`` pasted at ``offset`` on a ``canvas`` of ``fill`` colour (centred)."""

    size: Size
    canvas: Size
    offset: tuple[int, int]
    fill: tuple[int, int, int]

    def transform(self) -> PointTransform:
        return PointTransform.translation(*self.offset, self.size, self.canvas)

    def apply(self, image: Image.Image) -> Image.Image:
        if tuple(image.size) != tuple(self.size):
            raise ValueError(f"letterbox planned for {self.size}, image is {image.size}")
        canvas = Image.new("RGB", self.canvas, tuple(self.fill))
        canvas.paste(image.convert("RGB"), self.offset)
        return canvas


def letterbox_for(spec: PreprocessSpec, size: Size) -> Letterbox | None:
    """The centred padding after which the preprocessing keeps all of an image of ``size``; None when
    it already does.

    The image is padded with ``spec.fill`` (the processor's mean colour) to the crop's aspect
    ratio, as LLaVA's ``expand2square`` pads to a square; where the processor also crops a margin
    of a matching image (resize 256 then crop 224), the canvas grows until that margin is padding.
    """
    size = _size(size)
    if spec.crop is None or visible_share(spec, size) >= 1.0:
        return None
    if spec.resize == "none":
        raise ValueError(
            f"{spec.describe()}: a crop with no resize cuts a {size[0]}x{size[1]} image however it is padded"
        )
    ch, cw = int(spec.crop[0]), int(spec.crop[1])
    w, h = size
    canvas = (w, max(h, math.ceil(w * ch / cw))) if w * ch >= h * cw else (max(w, math.ceil(h * cw / ch)), h)
    for _ in range(64):
        offset = ((canvas[0] - w) // 2, (canvas[1] - h) // 2)
        region = (float(offset[0]), float(offset[1]), float(offset[0] + w), float(offset[1] + h))
        if visible_share(spec, canvas, region) >= 1.0:
            return Letterbox(size, canvas, offset, tuple(int(c) for c in spec.fill))  # type: ignore[arg-type]
        t = plan(spec, canvas)
        # Grow by how much the image's mapped extent overshoots the output, plus a pixel for rounding.
        left, top = offset[0] * t.scale[0] + t.offset[0], offset[1] * t.scale[1] + t.offset[1]
        right, bottom = left + w * t.scale[0], top + h * t.scale[1]
        grow = max((right - left) / max(min(right, t.out_size[0]) - max(left, 0.0), 1e-9),
                   (bottom - top) / max(min(bottom, t.out_size[1]) - max(top, 0.0), 1e-9))  # fmt: skip
        canvas = (math.ceil(canvas[0] * grow) + 1, math.ceil(canvas[1] * grow) + 1)
    raise ValueError(f"{spec.describe()}: no letterbox keeps a {w}x{h} image whole")


def letterboxed(spec: PreprocessSpec, image: Image.Image) -> tuple[Image.Image, PointTransform]:
    """The image padded as :func:`letterbox_for` says (unchanged when nothing would be cropped) and the
    transform from its own pixels to the model's input."""
    box = letterbox_for(spec, image.size)
    if box is None:
        return image, plan(spec, image.size)
    return box.apply(image), box.transform().then(plan(spec, box.canvas))


def apply(spec: PreprocessSpec, image: Image.Image) -> Image.Image:
    """The geometric part of the preprocessing in pixel space: the model's input before normalisation.

    The output has ``plan(spec, image.size).out_size``; crops pad with black, as the processors do.
    """
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
        ch, cw = int(spec.crop[0]), int(spec.crop[1])
        shift = (_crop_shift(image.width, cw, spec.crop_style), _crop_shift(image.height, ch, spec.crop_style))
        canvas = Image.new("RGB", (cw, ch), (0, 0, 0))
        canvas.paste(image, shift)
        image = canvas
    return image


def _get(obj: Any, key: str) -> Any:
    if obj is None:
        return None
    if isinstance(obj, dict):
        return obj.get(key)
    return getattr(obj, key, None)


# Methods of the transformers backends that decide geometry; a processor overriding any of them
# (dynamic resizing, tiling, crop_pct logic: Qwen2-VL, Idefics3, LLaVA-NeXT, ConvNeXT, ...) is not modelled.
_GEOMETRY_METHODS = ("resize", "center_crop", "pad", "_preprocess", "preprocess", "process_image")


def spec_from_hf(image_processor: Any) -> PreprocessSpec:
    """The geometry of a transformers 5.x image processor that resizes and optionally centre-crops.

    Covers the processors that use their backend's own steps (CLIP*, Bit* (DINOv2), Siglip*, ViT*,
    DeiT*, ...) on both the PIL and torchvision backends, plus LLaVA's pad-to-square
    (``LlavaImageProcessor*`` with ``do_pad``). Processors with their own resizing or tiling
    raise NotImplementedError naming the class.
    """
    from transformers.image_processing_backends import PilBackend, TorchvisionBackend

    cls = type(image_processor)
    name = cls.__name__
    if issubclass(cls, PilBackend):
        base, crop_style = PilBackend, "transformers"
    elif issubclass(cls, TorchvisionBackend):
        base, crop_style = TorchvisionBackend, "transformers-torchvision"
    else:
        raise NotImplementedError(f"{name}: not a transformers 5.x PIL/torchvision image processor")
    own = [m for m in _GEOMETRY_METHODS if getattr(cls, m, None) is not getattr(base, m, None)]
    letterbox = False
    mean = _get(image_processor, "image_mean") or (0.0, 0.0, 0.0)
    fill = tuple(int(m * 255) for m in mean)  # LLaVA's expand2square colour
    if own == ["_preprocess"] and name.startswith("LlavaImageProcessor"):
        # LLaVA's pad_to_square: centred, (max - w) // 2 left, filled with the mean colour (both backends).
        letterbox = bool(_get(image_processor, "do_pad"))
    elif own:
        raise NotImplementedError(f"{name}: its own {', '.join(own)} (dynamic resizing or tiling) is not modelled")
    elif _get(image_processor, "do_pad"):
        raise NotImplementedError(f"{name}: do_pad (padding to pad_size) is not modelled")

    size = _get(image_processor, "size")
    if not _get(image_processor, "do_resize") or size is None:
        resize, rsize = "none", None
    elif _get(size, "shortest_edge") and _get(size, "longest_edge"):
        resize, rsize = "shortest_longest", (int(_get(size, "shortest_edge")), int(_get(size, "longest_edge")))
    elif _get(size, "shortest_edge"):
        resize, rsize = "shortest_edge", int(_get(size, "shortest_edge"))
    elif _get(size, "height") and _get(size, "width"):
        resize, rsize = "exact", (int(_get(size, "height")), int(_get(size, "width")))
    else:
        raise NotImplementedError(f"{name}: size {dict(size) if hasattr(size, 'keys') else size} is not modelled")
    crop = None
    if _get(image_processor, "do_center_crop"):
        crop_size = _get(image_processor, "crop_size")
        crop = (int(_get(crop_size, "height")), int(_get(crop_size, "width")))
    return PreprocessSpec(
        resize, rsize, crop=crop, letterbox=letterbox, fill=fill, resample=_pil_resample(_get(image_processor, "resample")),
        source=name, crop_style=crop_style,
    )  # fmt: skip


def _pil_resample(resample: Any) -> int:
    """A PIL resampling filter from a PIL enum/int or a torchvision InterpolationMode (bicubic when unset)."""
    if resample is None:
        return int(Image.Resampling.BICUBIC)
    try:
        return int(resample)
    except (TypeError, ValueError):
        name = str(getattr(resample, "value", resample)).upper()
        return int(getattr(Image.Resampling, name, Image.Resampling.BICUBIC))


_TIMM_INTERPOLATION = {
    "bicubic": Image.Resampling.BICUBIC,
    "bilinear": Image.Resampling.BILINEAR,
    "nearest": Image.Resampling.NEAREST,
    "lanczos": Image.Resampling.LANCZOS,
    "box": Image.Resampling.BOX,
    "hamming": Image.Resampling.HAMMING,
}


def spec_from_timm(data_config: dict, source: str = "timm") -> PreprocessSpec:
    """The geometry of timm's eval transform (``transforms_imagenet_eval``) for a resolved data config.

    ``center`` (default): resize so the crop fits at ``input_size / crop_pct`` (short side for a square
    input, ``ResizeKeepRatio`` otherwise), then torchvision's ``CenterCrop``; ``squash``: resize both
    sides to ``input_size / crop_pct``, then crop. ``border`` and ``crop_border_pixels`` raise
    NotImplementedError.
    """
    _, h, w = data_config["input_size"]
    crop_pct = float(data_config.get("crop_pct") or TIMM_DEFAULT_CROP_PCT)
    crop_mode = data_config.get("crop_mode") or "center"
    if data_config.get("crop_border_pixels"):
        raise NotImplementedError("timm crop_border_pixels is not modelled")
    interpolation = data_config.get("interpolation", "bilinear")
    if interpolation not in _TIMM_INTERPOLATION:
        raise ValueError(
            f"timm data config: interpolation {interpolation!r} is not one of {sorted(_TIMM_INTERPOLATION)}"
        )
    scale_h, scale_w = math.floor(h / crop_pct), math.floor(w / crop_pct)
    fill = tuple(int(m * 255) for m in data_config.get("mean") or (0.0, 0.0, 0.0))
    common = dict(crop=(int(h), int(w)), resample=_TIMM_INTERPOLATION[interpolation], source=source, crop_style="torchvision",
                  fill=fill)  # fmt: skip
    if crop_mode == "squash":
        return PreprocessSpec("exact", (scale_h, scale_w), **common)  # type: ignore[arg-type]
    if crop_mode != "center":
        raise NotImplementedError(f"timm crop_mode {crop_mode!r} is not modelled")
    if scale_h == scale_w:
        return PreprocessSpec("shortest_edge", scale_h, **common)  # type: ignore[arg-type]
    return PreprocessSpec("keep_ratio", (scale_h, scale_w), **common)  # type: ignore[arg-type]


def apply_homography(H: np.ndarray, pts: np.ndarray) -> np.ndarray:
    """Map (N, 2) pixel-index points through a 3×3 homography (HPatches: ``H_1_k`` maps image 1 → image k)."""
    H = np.asarray(H, dtype=np.float64)
    if H.shape != (3, 3):
        raise ValueError(f"homography must be 3x3, got shape {H.shape}")
    pts = np.asarray(pts, dtype=np.float64).reshape(-1, 2)
    homog = np.concatenate([pts, np.ones((pts.shape[0], 1))], axis=1) @ H.T
    return homog[:, :2] / homog[:, 2:3]


def sample_points(feature_map: Any, grid_xy: Any) -> Any:
    """Bilinearly sample a (C, gh, gw) feature map at (N, 2) normalised coords → (N, C) float32.

    ``grid_sample(align_corners=False)``: -1 and +1 are the outer edges of the grid, cell centres sit
    at ``2(i + 0.5)/g − 1``. Between an edge and the first cell centre the border cell's value is
    used (``padding_mode="border"``) rather than fading towards zero.
    """
    import torch
    import torch.nn.functional as F

    fmap = torch.as_tensor(feature_map).float()
    if fmap.ndim != 3:
        raise ValueError(f"feature map must be (C, gh, gw), got shape {tuple(fmap.shape)}")
    grid = torch.as_tensor(np.asarray(grid_xy, dtype=np.float32) if not torch.is_tensor(grid_xy) else grid_xy)
    grid = grid.to(device=fmap.device, dtype=torch.float32).reshape(1, 1, -1, 2)
    sampled = F.grid_sample(fmap[None], grid, mode="bilinear", padding_mode="border", align_corners=False)
    return sampled[0, :, 0, :].T
