"""Procedural painting styles: turn a photo into an artwork for the BLINK Art_Style twin.

The Art_Style task shows a reference painting and two candidates: the right one paints
*different content in the same style*, the wrong one paints *the same content in a
different style*. ``stylise`` produces those paintings from packaged photos.

Every style keeps the photo's palette on purpose: marks cover the canvas and take their
colour from the photo, so a painting's colour histogram stays close to its photo's
whatever the style. A readout that only compares colours (content) therefore picks the
wrong candidate, and only a readout of texture (the scale, shape and orientation of the
marks) answers the task; the styles are built so their mark textures stay clearly apart.

Each style draws its own parameters (dot radius, stroke length, number of colours, tile
size, hatch spacing...) from the generator it is given, within ranges that do not overlap
another style's look, and marks are sized relative to a 160-pixel long side so a style
looks the same at any image size.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
from PIL import Image, ImageDraw, ImageFilter
from scipy import ndimage

STYLES: tuple[str, ...] = ("pointillist", "posterised", "brush_strokes", "hatching", "watercolour", "mosaic")

_REFERENCE_SIDE = 160.0  # mark sizes below are in pixels of an image whose long side is this
_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)


def stylise(photo: np.ndarray, style: str, rng: np.random.Generator) -> np.ndarray:
    """Paint ``photo`` (H, W, 3 uint8) in ``style``; returns an (H, W, 3) uint8 artwork drawn with ``rng``."""
    if style not in _PAINTERS:
        raise ValueError(f"unknown style {style!r}; known styles: {', '.join(STYLES)}")
    pixels = np.asarray(photo)
    if pixels.ndim != 3 or pixels.shape[2] != 3 or pixels.dtype != np.uint8:
        raise ValueError(f"photo must be an (H, W, 3) uint8 array, got {pixels.dtype} of shape {pixels.shape}")
    colour = pixels.astype(np.float32) / 255.0
    mark_scale = max(colour.shape[:2]) / _REFERENCE_SIDE
    return _to_uint8(_PAINTERS[style](colour, rng, mark_scale))


# ---------------------------------------------------------------------------------------------------------------------
# styles


def _pointillist(colour: np.ndarray, rng: np.random.Generator, mark_scale: float) -> np.ndarray:
    """Evenly packed round dots of jittered local colour over a pale blurred underpainting that shows between them."""
    height, width = colour.shape[:2]
    radius = rng.uniform(1.8, 2.2) * mark_scale
    cell = radius * rng.uniform(2.0, 2.2)
    underpainting = _lerp(_blur(colour, 3.0 * mark_scale), 1.0, rng.uniform(0.3, 0.4))
    cells = _jittered_cells(rng, height, width, cell, jitter=0.45)
    site_y, site_x = cells.sites()
    dot_colour = _sample(_blur(colour, 1.0 * mark_scale), site_y, site_x).reshape(-1, 3)
    # "slightly jittered": a per-dot lightness shift and a smaller per-channel shift
    dot_colour = dot_colour + rng.normal(0.0, 0.09, (dot_colour.shape[0], 1)) + rng.normal(0.0, 0.02, dot_colour.shape)
    owner, nearest, _ = cells.nearest_sites()
    coverage = _smoothstep(radius + 0.5, radius - 0.5, nearest)[..., None]
    return underpainting * (1.0 - coverage) + dot_colour[owner] * coverage


def _posterised(colour: np.ndarray, rng: np.random.Generator, mark_scale: float) -> np.ndarray:
    """A smoothed photo reduced to a few flat colours of its own, with thin dark outlines on strong edges."""
    colour_count = int(rng.integers(5, 9))
    median_size = max(3, int(round(5 * mark_scale)) | 1)
    smoothed = Image.fromarray(_to_uint8(colour)).filter(ImageFilter.MedianFilter(median_size))
    smoothed = smoothed.filter(ImageFilter.GaussianBlur(rng.uniform(1.1, 1.5) * mark_scale))
    palette, labels = _reduce_palette(smoothed, colour_count, mode_size=max(3, int(round(3 * mark_scale)) | 1))
    flat = palette[labels]
    # outline where neighbouring flat areas differ clearly in lightness (not between near-equal shades)
    lightness = flat @ _LUMA
    threshold = rng.uniform(0.06, 0.09)
    step_down = np.abs(np.diff(lightness, axis=0)) > threshold
    step_right = np.abs(np.diff(lightness, axis=1)) > threshold
    outline = np.zeros(lightness.shape, dtype=bool)
    outline[1:] |= step_down
    outline[:, 1:] |= step_right
    if mark_scale > 1.5:
        outline = ndimage.binary_dilation(outline)
    ink_darkness = rng.uniform(0.15, 0.3)
    return np.where(outline[..., None], flat * ink_darkness, flat)


def _brush_strokes(colour: np.ndarray, rng: np.random.Generator, mark_scale: float) -> np.ndarray:
    """Thick flat-brush strokes along the local edges or a dominant slant, each ridged and streaked by its bristles."""
    height, width = colour.shape[:2]
    stroke_length = rng.uniform(11.0, 15.0) * mark_scale
    stroke_width = rng.uniform(3.6, 4.6) * mark_scale
    angle_jitter = rng.uniform(0.2, 0.3)
    # a right-handed painter's slant, lower left to upper right (image rows grow downwards)
    dominant_angle = -np.pi / 4 + rng.uniform(-0.25, 0.25)
    bristle_period = rng.uniform(2.6, 3.2) * mark_scale

    edge_angle, coherence = _edge_orientation(colour, 2.5 * mark_scale)
    stroke_count = int(2.2 * height * width / (stroke_length * stroke_width))
    centre_y = rng.uniform(0, height, stroke_count)
    centre_x = rng.uniform(0, width, stroke_count)
    iy = np.clip(centre_y.astype(int), 0, height - 1)
    ix = np.clip(centre_x.astype(int), 0, width - 1)
    # follow the photo's clear edges, keep the dominant slant elsewhere
    follows_edge = coherence[iy, ix] > rng.uniform(0.3, 0.9, stroke_count)
    angle = np.where(follows_edge, edge_angle[iy, ix], dominant_angle)
    angle = angle + rng.normal(0.0, angle_jitter, stroke_count)
    stroke_colour = _blur(colour, 1.0 * mark_scale)[iy, ix]
    stroke_colour = stroke_colour + rng.normal(0.0, 0.08, (stroke_count, 1)) + rng.normal(0.0, 0.012, (stroke_count, 3))

    # draw stroke ids, later strokes over earlier ones; id 0 is bare underpainting
    along = np.stack([np.cos(angle), np.sin(angle)], axis=1) * (stroke_length / 2)
    ids = Image.new("I", (width, height), 0)
    pen = ImageDraw.Draw(ids)
    line_width = max(1, int(round(stroke_width)))
    for index in range(stroke_count):
        x, y, dx, dy = centre_x[index], centre_y[index], along[index, 0], along[index, 1]
        pen.line((x - dx, y - dy, x + dx, y + dy), fill=index + 1, width=line_width)
    stroke_id = np.asarray(ids, dtype=np.int64)
    painted = stroke_id > 0
    owner = np.maximum(stroke_id - 1, 0)

    # paint is thicker in the middle of a stroke (lighter ridge, darker flanks) and streaked along it by the bristles
    pixel_y, pixel_x = np.mgrid[0:height, 0:width].astype(np.float32)
    across = -(pixel_x - centre_x[owner]) * np.sin(angle[owner]) + (pixel_y - centre_y[owner]) * np.cos(angle[owner])
    across_fraction = np.clip(across / (stroke_width / 2), -1.0, 1.0)
    ridge = 1.06 - 0.16 * across_fraction**2
    phase = rng.uniform(0.0, 2 * np.pi, stroke_count)[owner]
    streaks = 1.0 + 0.12 * np.sin(2 * np.pi * across / bristle_period + phase)
    strokes = stroke_colour[owner] * (ridge * streaks)[..., None]
    underpainting = _blur(colour, 2.0 * mark_scale)
    return np.where(painted[..., None], strokes, underpainting)


def _hatching(colour: np.ndarray, rng: np.random.Generator, mark_scale: float) -> np.ndarray:
    """Cross-hatching in coloured ink on paper washed with the local colour; darker areas get more, thicker layers."""
    height, width = colour.shape[:2]
    spacing = rng.uniform(3.6, 4.2) * mark_scale
    # the first layer runs the way a right hand hatches, from lower left to upper right
    first_angle = np.pi / 4 + rng.uniform(-0.1, 0.1)
    layer_angles = first_angle + np.array([0.0, np.pi / 2, np.pi / 4, -np.pi / 4]) + rng.normal(0, 0.05, 4)
    layer_thresholds = np.array([0.0, 0.3, 0.55, 0.78])
    local = _blur(colour, 1.2 * mark_scale)
    darkness = 1.0 - local @ _LUMA
    low, high = np.percentile(darkness, [3, 97])
    tone = np.clip((darkness - low) / max(high - low, 1e-3), 0.0, 1.0)

    pixel_y, pixel_x = np.mgrid[0:height, 0:width].astype(np.float32)
    wobble = _smooth_noise(rng, (height, width), 6.0 * mark_scale) * 0.7 * mark_scale
    ink_cover = np.zeros((height, width), dtype=np.float32)
    for angle, threshold in zip(layer_angles, layer_thresholds):
        position = pixel_x * np.cos(angle) + pixel_y * np.sin(angle) + wobble + rng.uniform(0, spacing)
        distance_to_line = np.abs((position / spacing) % 1.0 - 0.5) * spacing
        # a layer starts as a hairline where the tone passes its threshold and thickens as it darkens
        engaged = np.clip((tone - threshold) / 0.12, 0.0, 1.0)
        half_width = (0.35 + 0.45 * tone) * mark_scale * engaged
        ink_cover = np.maximum(ink_cover, np.clip(half_width - distance_to_line + 0.5, 0.0, 1.0) * engaged)
    wash = _lerp(local, 1.0, rng.uniform(0.35, 0.45))
    ink = local * rng.uniform(0.45, 0.6)
    paper_grain = 1.0 + 0.025 * _smooth_noise(rng, (height, width), 0.6)[..., None]
    return (wash * (1.0 - ink_cover[..., None]) + ink * ink_cover[..., None]) * paper_grain


def _watercolour(colour: np.ndarray, rng: np.random.Generator, mark_scale: float) -> np.ndarray:
    """Soft bleeding pigment pools with darker dried edges on grainy paper, a little lighter and paler."""
    height, width = colour.shape[:2]
    bleed = rng.uniform(1.8, 2.6) * mark_scale
    shift_y = _smooth_noise(rng, (height, width), 4.0 * mark_scale) * bleed
    shift_x = _smooth_noise(rng, (height, width), 4.0 * mark_scale) * bleed
    pixel_y, pixel_x = np.mgrid[0:height, 0:width].astype(np.float32)
    coords = np.stack([pixel_y + shift_y, pixel_x + shift_x])
    bled = np.stack([ndimage.map_coordinates(colour[..., c], coords, order=1, mode="nearest") for c in range(3)], -1)
    pigment = _blur(bled, rng.uniform(1.4, 1.9) * mark_scale)

    # pools: washes of a few of the photo's own colours, softened, then mixed back with the bled pigment
    pool_count = int(rng.integers(8, 12))
    palette, pool_id = _reduce_palette(Image.fromarray(_to_uint8(pigment)), pool_count, mode_size=3)
    wash = _lerp(pigment, _blur(palette[pool_id], 1.0 * mark_scale), 0.7)
    # pigment gathers where a pool dries: a darker rim along the borders between pools of clearly different tone
    pool_lightness = (palette @ _LUMA)[pool_id]
    border = np.zeros((height, width), dtype=np.float32)
    border[1:] = np.abs(np.diff(pool_lightness, axis=0))
    border[:, 1:] = np.maximum(border[:, 1:], np.abs(np.diff(pool_lightness, axis=1)))
    border = np.clip(border / 0.12, 0.0, 1.0)
    rim = np.clip(ndimage.gaussian_filter(border, 0.9 * mark_scale) * 2.5, 0.0, 1.0)
    wash = wash * (1.0 - rng.uniform(0.18, 0.26) * rim[..., None])

    # uneven pigment density and the grain of cold-pressed paper
    density = 1.0 + 0.05 * _smooth_noise(rng, (height, width), 8.0 * mark_scale)
    grain = 1.0 + rng.uniform(0.04, 0.05) * _smooth_noise(rng, (height, width), 0.8 * mark_scale)
    grain = grain + 0.03 * _smooth_noise(rng, (height, width), 2.0 * mark_scale)
    wash = wash * (density * grain)[..., None]
    grey = (wash @ _LUMA)[..., None]
    return _lerp(_lerp(wash, grey, rng.uniform(0.12, 0.2)), 1.0, rng.uniform(0.08, 0.14))


def _mosaic(colour: np.ndarray, rng: np.random.Generator, mark_scale: float) -> np.ndarray:
    """Irregular (Voronoi) glazed tiles in their area's mean colour, separated by thin dark grout."""
    height, width = colour.shape[:2]
    tile_size = rng.uniform(10.0, 13.0) * mark_scale
    grout_width = rng.uniform(1.2, 1.5) * mark_scale
    cells = _jittered_cells(rng, height, width, tile_size, jitter=0.8)
    owner, nearest, second = cells.nearest_sites()
    site_count = cells.site_count
    pixel_count = np.bincount(owner.ravel(), minlength=site_count).astype(np.float32)
    tile_colour = np.stack([np.bincount(owner.ravel(), colour[..., c].ravel(), site_count) for c in range(3)], -1)
    tile_colour = tile_colour / np.maximum(pixel_count, 1.0)[:, None]
    tile_colour = tile_colour + rng.normal(0.0, 0.025, (site_count, 1))
    # glazed tiles catch a light from the upper left: each is lighter on that side
    site_y, site_x = cells.sites()
    pixel_y, pixel_x = np.mgrid[0:height, 0:width].astype(np.float32) + 0.5
    toward_light = -((pixel_x - site_x.ravel()[owner]) + (pixel_y - site_y.ravel()[owner])) / tile_size
    tiles = tile_colour[owner] * (1.0 + rng.uniform(0.25, 0.35) * toward_light)[..., None]
    # the gap between the nearest and second-nearest site distances shrinks to zero at a tile border
    grout = _smoothstep(grout_width + 0.5, grout_width - 0.5, (second - nearest))[..., None]
    grout_colour = tiles * rng.uniform(0.2, 0.3)
    return tiles * (1.0 - grout) + grout_colour * grout


_PAINTERS: dict[str, Callable[[np.ndarray, np.random.Generator, float], np.ndarray]] = {
    "pointillist": _pointillist,
    "posterised": _posterised,
    "brush_strokes": _brush_strokes,
    "hatching": _hatching,
    "watercolour": _watercolour,
    "mosaic": _mosaic,
}


# ---------------------------------------------------------------------------------------------------------------------
# shared helpers


class _JitteredCells:
    """One random site per square cell of a grid: the sites of dots (pointillist) and tiles (mosaic)."""

    def __init__(self, site_y: np.ndarray, site_x: np.ndarray, cell: float, height: int, width: int) -> None:
        self.site_y, self.site_x, self.cell, self.height, self.width = site_y, site_x, cell, height, width

    @property
    def site_count(self) -> int:
        return self.site_y.size

    def sites(self) -> tuple[np.ndarray, np.ndarray]:
        return self.site_y, self.site_x

    def nearest_sites(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per pixel: flat index of the nearest site, its distance, and the second-nearest site's distance."""
        pixel_y, pixel_x = np.mgrid[0 : self.height, 0 : self.width].astype(np.float32) + 0.5
        # sites are stored with a one-cell border, so cell (r, c) of the image is entry (r + 1, c + 1)
        row = (pixel_y // self.cell).astype(np.intp) + 1
        col = (pixel_x // self.cell).astype(np.intp) + 1
        grid_width = self.site_y.shape[1]
        nearest = np.full(pixel_y.shape, np.inf, dtype=np.float32)
        second = np.full(pixel_y.shape, np.inf, dtype=np.float32)
        owner = np.zeros(pixel_y.shape, dtype=np.intp)
        for d_row in (-1, 0, 1):
            for d_col in (-1, 0, 1):
                r, c = row + d_row, col + d_col
                distance = np.hypot(self.site_y[r, c] - pixel_y, self.site_x[r, c] - pixel_x)
                closer = distance < nearest
                second = np.where(closer, nearest, np.minimum(second, distance))
                owner = np.where(closer, r * grid_width + c, owner)
                nearest = np.where(closer, distance, nearest)
        return owner, nearest, second


def _jittered_cells(rng: np.random.Generator, height: int, width: int, cell: float, jitter: float) -> _JitteredCells:
    rows = int(np.ceil(height / cell)) + 2
    cols = int(np.ceil(width / cell)) + 2
    offset_y = 0.5 + jitter * (rng.random((rows, cols)) - 0.5)
    offset_x = 0.5 + jitter * (rng.random((rows, cols)) - 0.5)
    site_y = ((np.arange(rows)[:, None] - 1) + offset_y) * cell
    site_x = ((np.arange(cols)[None, :] - 1) + offset_x) * cell
    return _JitteredCells(site_y.astype(np.float32), site_x.astype(np.float32), cell, height, width)


def _reduce_palette(image: Image.Image, colour_count: int, mode_size: int) -> tuple[np.ndarray, np.ndarray]:
    """The image's own ``colour_count`` main colours (median cut) as floats, and each pixel's index into them.

    The palette is found on a half-size copy (fast); every pixel then takes its nearest palette colour, and a mode
    filter of ``mode_size`` removes specks.
    """
    half_size = image.resize((max(1, image.width // 2), max(1, image.height // 2)), Image.Resampling.BOX)
    palette_image = half_size.quantize(colour_count, Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    indexed = image.quantize(palette=palette_image, dither=Image.Dither.NONE).filter(ImageFilter.ModeFilter(mode_size))
    palette = np.asarray(indexed.getpalette()[: 3 * 256], dtype=np.float32).reshape(-1, 3) / 255.0
    return palette, np.asarray(indexed, dtype=np.intp)


def _edge_orientation(colour: np.ndarray, sigma: float) -> tuple[np.ndarray, np.ndarray]:
    """Per pixel: the angle along the local edge (perpendicular to the gradient) and how clear it is (0..1)."""
    lightness = _blur(colour, 1.0) @ _LUMA
    grad_y = ndimage.sobel(lightness, axis=0)
    grad_x = ndimage.sobel(lightness, axis=1)
    tensor_yy = ndimage.gaussian_filter(grad_y * grad_y, sigma)
    tensor_xx = ndimage.gaussian_filter(grad_x * grad_x, sigma)
    tensor_xy = ndimage.gaussian_filter(grad_x * grad_y, sigma)
    gradient_angle = 0.5 * np.arctan2(2 * tensor_xy, tensor_xx - tensor_yy)
    spread = np.hypot(tensor_xx - tensor_yy, 2 * tensor_xy)
    coherence = spread / (tensor_xx + tensor_yy + 1e-4)
    return gradient_angle + np.pi / 2, coherence


def _smooth_noise(rng: np.random.Generator, shape: tuple[int, int], sigma: float) -> np.ndarray:
    """Gaussian-blurred white noise rescaled to unit standard deviation."""
    noise = ndimage.gaussian_filter(rng.standard_normal(shape).astype(np.float32), sigma)
    return noise / max(float(noise.std()), 1e-6)


def _sample(colour: np.ndarray, y: np.ndarray, x: np.ndarray) -> np.ndarray:
    height, width = colour.shape[:2]
    return colour[np.clip(y.astype(np.intp), 0, height - 1), np.clip(x.astype(np.intp), 0, width - 1)]


def _blur(colour: np.ndarray, sigma: float) -> np.ndarray:
    return ndimage.gaussian_filter(colour, (sigma, sigma, 0))


def _lerp(start: np.ndarray, end: np.ndarray | float, amount: float) -> np.ndarray:
    return start + (end - start) * amount


def _smoothstep(edge0: float, edge1: float, value: np.ndarray) -> np.ndarray:
    t = np.clip((value - edge0) / (edge1 - edge0), 0.0, 1.0)
    return t * t * (3 - 2 * t)


def _to_uint8(colour: np.ndarray) -> np.ndarray:
    return np.round(np.clip(colour, 0.0, 1.0) * 255.0).astype(np.uint8)
