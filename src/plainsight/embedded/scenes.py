"""One object in front of a blurred photo: the shared staging of the rendered twins.

``stage`` frames a :class:`~plainsight.embedded.objects.Shape` from a viewpoint
and returns the picture with every keypoint's exact pixel position and visibility,
the object's bounding box and mask.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from PIL import Image, ImageFilter

from plainsight.embedded.objects import Shape
from plainsight.embedded.photos import PHOTOS
from plainsight.embedded.raycast import Camera, Material, render, rotation_y, visible

TEXTURE_PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "china", "flower", "gravel", "immunohistochemistry")
BACKGROUND_PHOTOS = ("china", "flower", "gravel", "camera", "astronaut", "chelsea")


@lru_cache(maxsize=None)
def _photo(name: str, longest: int) -> np.ndarray:
    arr = PHOTOS[name].load()
    img = Image.fromarray(arr)
    scale = longest / max(img.size)
    img = img.resize((max(1, round(img.width * scale)), max(1, round(img.height * scale))), Image.Resampling.LANCZOS)
    return np.asarray(img, dtype=np.float64) / 255.0


def random_material(rng: np.random.Generator) -> Material:
    """A saturated base colour, textured by a packaged photo two times in three."""
    hue = rng.uniform(0, 1)
    color = tuple(float(c) for c in _hsv(hue, rng.uniform(0.35, 0.8), rng.uniform(0.45, 0.95)))
    if rng.uniform() < 1 / 3:
        return Material(color)
    name = TEXTURE_PHOTOS[int(rng.integers(len(TEXTURE_PHOTOS)))]
    tex = _photo(name, 256)
    return Material(color, tex, texture_mix=float(rng.uniform(0.4, 0.7)), texels_per_unit=float(rng.uniform(60, 140)),
                    texture_offset=(float(rng.uniform(0, 256)), float(rng.uniform(0, 256))))  # fmt: skip


def _hsv(h: float, s: float, v: float) -> np.ndarray:
    k = (np.array([5.0, 3.0, 1.0]) + h * 6) % 6
    return v - v * s * np.clip(np.minimum(k, 4 - k), 0, 1)


def background(rng: np.random.Generator, size: tuple[int, int]) -> tuple[np.ndarray, str]:
    """A blurred, dimmed crop of a packaged photo at ``size`` (W, H); returns it and the photo's name."""
    name = BACKGROUND_PHOTOS[int(rng.integers(len(BACKGROUND_PHOTOS)))]
    photo = _photo(name, 2 * max(size))
    h, w = photo.shape[:2]
    cw, ch = size
    x0, y0 = int(rng.integers(0, max(1, w - cw))), int(rng.integers(0, max(1, h - ch)))
    crop = Image.fromarray(np.round(photo[y0 : y0 + ch, x0 : x0 + cw] * 255).astype(np.uint8)).resize(size)
    blurred = np.asarray(crop.filter(ImageFilter.GaussianBlur(3)), dtype=np.float64) / 255.0
    return np.clip(blurred * rng.uniform(0.55, 0.85) + 0.05, 0, 1), name


@dataclass
class Staged:
    image: np.ndarray  # (H, W, 3) uint8
    depth: np.ndarray  # (H, W) view-axis depth, inf on background
    mask: np.ndarray  # (H, W) bool
    points: dict[str, tuple[float, float]]  # keypoint → pixel-index (x, y), rounded to 0.01
    visible: dict[str, bool]
    bbox: tuple[int, int, int, int]  # x1, y1, x2, y2 of the mask, inclusive pixel indices
    camera: Camera
    background_photo: str


def stage(
    shape: Shape,
    size: tuple[int, int],
    *,
    azimuth: float,
    elevation: float,
    fill: float = 0.75,
    rng: np.random.Generator,
    backdrop: np.ndarray | None = None,
) -> Staged:
    """Render ``shape`` turned by ``azimuth`` (radians, 0 = front facing the camera) seen from ``elevation``.

    The camera looks at the centre of the keypoints' bounding box from a distance at
    which that box's bounding sphere fills ``fill`` of the frame's shorter side. The
    background is a blurred packaged photo unless ``backdrop`` ((H, W, 3) floats) is given.
    """
    turned = shape.transformed(rotation_y(azimuth))
    lo, hi = turned.extent()
    centre = (lo + hi) / 2
    radius = float(np.linalg.norm(hi - lo)) / 2
    fov = np.deg2rad(40.0)
    aspect_fov = fov if size[1] <= size[0] else 2 * np.arctan(np.tan(fov / 2) * size[0] / size[1])
    distance = radius / np.tan(aspect_fov / 2 * fill)
    direction = np.array([0.0, np.sin(elevation), np.cos(elevation)])
    eye = centre + distance * direction
    camera = Camera(tuple(eye), tuple(centre), size, fov_y=fov)
    bg, bg_name = background(rng, size) if backdrop is None else (backdrop, "")
    image, depth, index = render(turned.primitives, camera, bg)
    mask = index >= 0
    names = list(turned.keypoints)
    world = np.stack([turned.keypoints[n] for n in names])
    xy, _ = camera.project(world)
    seen = visible(turned.primitives, camera, world)
    ys, xs = np.nonzero(mask)
    bbox = (int(xs.min()), int(ys.min()), int(xs.max()), int(ys.max())) if len(xs) else (0, 0, size[0] - 1, size[1] - 1)
    return Staged(
        image=image,
        depth=depth,
        mask=mask,
        points={n: (round(float(p[0]), 2), round(float(p[1]), 2)) for n, p in zip(names, xy)},
        visible={n: bool(v) for n, v in zip(names, seen)},
        bbox=bbox,
        camera=camera,
        background_photo=bg_name,
    )
