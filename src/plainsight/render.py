"""Visual prompts drawn by our code, BLINK style, and the paper's side-by-side composition.

Point markers: a small red hollow ring centred on the point, its label ("REF",
"A".."D") in white on a black box just above (below when there is no room).
Sizes scale with the image so labels stay readable on 160 px and 1000 px images.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Mapping, Sequence

from PIL import Image, ImageDraw, ImageFont

from plainsight.items import Box, Item, Point

RING_RED = (255, 0, 0)
LABEL_FG = (255, 255, 255)
LABEL_BG = (0, 0, 0)
SEPARATOR = (0, 0, 0)
PAD = (255, 255, 255)
BOX_COLORS = {"red": (255, 0, 0), "blue": (0, 0, 255)}


@lru_cache(maxsize=32)
def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    return ImageFont.load_default(size=size)


def marker_radius(image_size: tuple[int, int]) -> int:
    return max(3, round(min(image_size) / 40))


def draw_point_markers(image: Image.Image, points: Mapping[str, Point], *, radius: int | None = None) -> Image.Image:
    """A copy of ``image`` with a labelled red ring at each point (pixel-index coordinates)."""
    out = image.copy() if image.mode == "RGB" else image.convert("RGB")  # convert() already copies
    draw = ImageDraw.Draw(out)
    r = radius or marker_radius(out.size)
    width = max(1, r // 3)
    for label, (x, y) in points.items():
        cx, cy = x + 0.5, y + 0.5  # continuous centre of the pixel
        draw.ellipse((cx - r, cy - r, cx + r, cy + r), outline=RING_RED, width=width)
        stamp = _label_stamp(label, max(8, round(r * 2.2)), max(1, r // 3))
        bx = round(min(max(0, cx - stamp.width / 2), out.width - stamp.width))
        by = round(cy - r - 2 - stamp.height)
        if by < 0:
            by = round(cy + r + 2)
        out.paste(stamp, (bx, by))
    return out


def draw_item_points(item: Item, images: list[Image.Image]) -> list[Image.Image]:
    """Every image of a point task with its labelled rings (unchanged copies when the source drew them)."""
    if item.markers_drawn:
        return [im.copy() for im in images]
    return [draw_point_markers(im, spec.points) for im, spec in zip(images, item.images)]


@lru_cache(maxsize=256)
def _label_stamp(label: str, font_size: int, pad: int) -> Image.Image:
    """White text on a black box, rendered once per (label, size): text drawing dominates marker cost."""
    font = _font(font_size)
    left, top, right, bottom = font.getbbox(label)
    stamp = Image.new("RGB", (right - left + 2 * pad, bottom - top + 2 * pad), LABEL_BG)
    ImageDraw.Draw(stamp).text((pad - left, pad - top), label, fill=LABEL_FG, font=font)
    return stamp


def compose_side_by_side(
    images: Sequence[Image.Image], *, separator: int | None = None
) -> tuple[Image.Image, list[tuple[int, int]]]:
    """Images left to right with a black separator, shorter ones padded with white at the bottom.

    Returns the canvas and each image's (x0, y0) offset in it.
    """
    height = max(im.height for im in images)
    sep = separator if separator is not None else max(2, round(height / 60))
    width = sum(im.width for im in images) + sep * (len(images) - 1)
    # Start from the separator colour: the images cover the rest, and only short ones need padding.
    canvas = Image.new("RGB", (width, height), SEPARATOR)
    offsets = []
    x = 0
    for im in images:
        canvas.paste(im if im.mode == "RGB" else im.convert("RGB"), (x, 0))
        if im.height < height:
            canvas.paste(PAD, (x, im.height, x + im.width, height))
        offsets.append((x, 0))
        x += im.width + sep
    return canvas, offsets


def draw_boxes(image: Image.Image, boxes: Mapping[str, Box], colors: Mapping[str, tuple[int, int, int]]) -> Image.Image:
    """A copy of ``image`` with each box outlined in its colour (x1, y1, x2, y2 in pixel coordinates)."""
    out = image.convert("RGB").copy()
    draw = ImageDraw.Draw(out)
    width = max(2, round(min(out.size) / 150))
    for label, box in boxes.items():
        draw.rectangle(tuple(box), outline=colors[label], width=width)
    return out


def no_markers(item: Item, images: list[Image.Image]) -> list[Image.Image]:
    """The visual prompt of tasks that mark nothing (odd-one-out, art style): the images themselves."""
    return [im.convert("RGB").copy() for im in images]


def image_strip(images: Sequence[Image.Image], gap: int = 8) -> Image.Image:
    """Images in a row on grey, for people to look at (`plainsight show`, report.html) — not the model's composition."""
    if len(images) == 1:
        return images[0]
    width = sum(im.width for im in images) + gap * (len(images) - 1)
    strip = Image.new("RGB", (width, max(im.height for im in images)), (128, 128, 128))
    x = 0
    for im in images:
        strip.paste(im, (x, 0))
        x += im.width + gap
    return strip
