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
    if pixels.ndim != 3 or pixels.shape[2] != 3:
        raise ValueError(f"photo must be (H, W, 3), got shape {pixels.shape}")
    colour = pixels.astype(np.float32) / 255.0
    mark_scale = max(colour.shape[:2]) / _REFERENCE_SIDE
    painting = _PAINTERS[style](colour, rng, mark_scale)
    return np.round(np.clip(painting, 0.0, 1.0) * 255.0).astype(np.uint8)


# ---------------------------------------------------------------------------------------------------------------------
# styles


def _pointillist(colour: np.ndarray, rng: np.random.Generator, mark_scale: float) -> np.ndarray:
    """Round dots of jittered local colour, touching but not merging, over a pale blurred underpainting."""
    height, width = colour.shape[:2]
    paleness = rng.uniform(0.25, 0.35)
    underpainting = _lerp(_blur(colour, 3.0 * mark_scale), 1.0, paleness)
    dot_colour_source = _blur(colour, 0.8 * mark_scale)
    canvas = underpainting
    # two layers of dots on independent jittered grids: the second fills the gaps of the first
    for layer in range(2):
        radius = rng.uniform(1.6, 2.1) * mark_scale
        cell = radius * rng.uniform(1.9, 2.2)
        cells = _jittered_cells(rng, height, width, cell, jitter=0.7)
        site_y, site_x = cells.sites()
        dot_colour = _sample(dot_colour_source, site_y, site_x)
        # "slightly jittered": a per-dot lightness shift and a smaller per-channel shift
        dot_colour = dot_colour + rng.normal(0.0, 0.07, dot_colour.shape[:-1] + (1,))
        dot_colour = dot_colour + rng.normal(0.0, 0.035, dot_colour.shape)
        owner, nearest, _ = cells.nearest_sites()
        shrink = 1.0 if layer == 0 else 0.8
        coverage = _smoothstep(radius * shrink + 0.5, radius * shrink - 0.5, nearest)[..., None]
        canvas = canvas * (1.0 - coverage) + dot_colour.reshape(-1, 3)[owner] * coverage
    return canvas


def _posterised(colour: np.ndarray, rng: np.random.Generator, mark_scale: float) -> np.ndarray:
    """A smoothed photo reduced to a few flat colours of its own, with thin dark outlines on strong edges."""
    colour_count = int(rng.integers(5, 9))
    median_size = max(3, int(round(rng.uniform(4.5, 6.5) * mark_scale)) | 1)
    smoothed = ndimage.median_filter(colour, size=(median_size, median_size, 1))
    smoothed = _blur(smoothed, 0.8 * mark_scale)
    as_image = Image.fromarray(_to_uint8(smoothed))
    indexed = as_image.quantize(colors=colour_count, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    indexed = indexed.filter(ImageFilter.ModeFilter(max(3, int(round(5 * mark_scale)) | 1)))
    palette = np.asarray(indexed.getpalette()[: 3 * 256], dtype=np.float32).reshape(-1, 3) / 255.0
    labels = np.asarray(indexed, dtype=np.intp)
    flat = palette[labels]
    # outline where neighbouring areas differ strongly in lightness
    lightness = flat @ _LUMA
    threshold = rng.uniform(0.1, 0.16)
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
    """Thick flat-brush strokes laid along the local edge direction, each with bristle streaks along its length."""
    height, width = colour.shape[:2]
    stroke_length = rng.uniform(11.0, 15.0) * mark_scale
    stroke_width = rng.uniform(3.6, 4.6) * mark_scale
    angle_jitter = rng.uniform(0.15, 0.3)
    dominant_angle = rng.uniform(0.0, np.pi)
    bristle_period = rng.uniform(1.6, 2.2) * mark_scale

    edge_angle, coherence = _edge_orientation(colour, 2.5 * mark_scale)
    stroke_count = int(2.2 * height * width / (stroke_length * stroke_width))
    centre_y = rng.uniform(0, height, stroke_count)
    centre_x = rng.uniform(0, width, stroke_count)
    iy = np.clip(centre_y.astype(int), 0, height - 1)
    ix = np.clip(centre_x.astype(int), 0, width - 1)
    # follow the edges where the photo has them, a dominant direction in flat areas
    follow = np.clip(coherence[iy, ix] * 2.0, 0.0, 1.0)
    angle = np.where(follow > rng.random(stroke_count), edge_angle[iy, ix], dominant_angle)
    angle = angle + rng.normal(0.0, angle_jitter, stroke_count)
    stroke_colour = _blur(colour, 1.0 * mark_scale)[iy, ix]
    stroke_colour = stroke_colour + rng.normal(0.0, 0.03, (stroke_count, 1)) + rng.normal(0.0, 0.02, (stroke_count, 3))

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

    # bristle streaks: brightness varies across each stroke, constant along it
    pixel_y, pixel_x = np.mgrid[0:height, 0:width].astype(np.float32)
    across = -(pixel_x - centre_x[owner]) * np.sin(angle[owner]) + (pixel_y - centre_y[owner]) * np.cos(angle[owner])
    phase = rng.uniform(0.0, 2 * np.pi, stroke_count)[owner]
    streaks = 1.0 + 0.09 * np.sin(2 * np.pi * across / bristle_period + phase)
    strokes = stroke_colour[owner] * streaks[..., None]
    underpainting = _blur(colour, 2.0 * mark_scale)
    return np.where(painted[..., None], strokes, underpainting)


def _hatching(colour: np.ndarray, rng: np.random.Generator, mark_scale: float) -> np.ndarray:
    """Pen-and-ink cross-hatching in coloured ink on a paper washed with the local colour; darker areas get more layers."""
    height, width = colour.shape[:2]
    spacing = rng.uniform(3.4, 4.4) * mark_scale
    first_angle = rng.uniform(np.pi / 6, np.pi / 3) * rng.choice([-1.0, 1.0])
    layer_angles = first_angle + np.array([0.0, np.pi / 2, np.pi / 4, -np.pi / 4]) + rng.normal(0, 0.08, 4)
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
    bleed = rng.uniform(2.0, 3.5) * mark_scale
    shift_y = _smooth_noise(rng, (height, width), 4.0 * mark_scale) * bleed
    shift_x = _smooth_noise(rng, (height, width), 4.0 * mark_scale) * bleed
    pixel_y, pixel_x = np.mgrid[0:height, 0:width].astype(np.float32)
    coords = np.stack([pixel_y + shift_y, pixel_x + shift_x])
    bled = np.stack([ndimage.map_coordinates(colour[..., c], coords, order=1, mode="nearest") for c in range(3)], -1)
    pigment = _blur(bled, rng.uniform(1.8, 2.5) * mark_scale)

    # pools: a few washes of the photo's own colours, softened, then mixed back with the bled pigment
    pool_count = int(rng.integers(7, 11))
    indexed = Image.fromarray(_to_uint8(pigment)).quantize(pool_count, Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    palette = np.asarray(indexed.getpalette()[: 3 * 256], dtype=np.float32).reshape(-1, 3) / 255.0
    pools = _blur(palette[np.asarray(indexed, dtype=np.intp)], 1.4 * mark_scale)
    wash = _lerp(pigment, pools, 0.6)
    # pigment gathers where a pool dries: darken along the pools' edges
    edge = ndimage.gaussian_gradient_magnitude(pools @ _LUMA, 1.0 * mark_scale)
    edge = np.clip(edge / max(float(np.percentile(edge, 99)), 1e-3), 0.0, 1.0)
    wash = wash * (1.0 - rng.uniform(0.22, 0.32) * edge[..., None])

    density = 1.0 + 0.05 * _smooth_noise(rng, (height, width), 8.0 * mark_scale)
    grain = 1.0 + rng.uniform(0.05, 0.07) * _smooth_noise(rng, (height, width), 0.7 * mark_scale)
    wash = wash * (density * grain)[..., None]
    grey = (wash @ _LUMA)[..., None]
    return _lerp(_lerp(wash, grey, rng.uniform(0.12, 0.2)), 1.0, rng.uniform(0.08, 0.14))


def _mosaic(colour: np.ndarray, rng: np.random.Generator, mark_scale: float) -> np.ndarray:
    """Irregular (Voronoi) tiles, each flat in its area's mean colour, separated by thin dark grout."""
    height, width = colour.shape[:2]
    tile_size = rng.uniform(8.0, 11.0) * mark_scale
    grout_width = rng.uniform(0.9, 1.2) * mark_scale
    cells = _jittered_cells(rng, height, width, tile_size, jitter=0.8)
    owner, nearest, second = cells.nearest_sites()
    site_count = cells.site_count
    pixel_count = np.bincount(owner.ravel(), minlength=site_count).astype(np.float32)
    tile_colour = np.stack([np.bincount(owner.ravel(), colour[..., c].ravel(), site_count) for c in range(3)], -1)
    tile_colour = tile_colour / np.maximum(pixel_count, 1.0)[:, None]
    tile_colour = tile_colour + rng.normal(0.0, 0.025, (site_count, 1))
    tiles = tile_colour[owner]
    # the gap between nearest and second-nearest site distance is twice the distance to the tile border
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
