"""The shared vocabulary: an evaluation item and the images it is made of.

Coordinates everywhere are *pixel-index* coordinates in an image's own pixels:
``(x, y)`` with x to the right, y down, and integer values at pixel centres, so
the top-left pixel's centre is ``(0, 0)`` and its continuous extent is
``[-0.5, 0.5)``. This is HPatches' convention; the normalised position used by
feature sampling is ``(x + 0.5) / W`` (see :mod:`plainsight.geometry`).
"""

from __future__ import annotations

import hashlib
import io
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from PIL import Image, UnidentifiedImageError

from plainsight.errors import DataError

Point = tuple[float, float]
Box = tuple[float, float, float, float]

LETTERS = ("A", "B", "C", "D", "E", "F", "G", "H")
UNRECOVERED = "unrecovered_markers"  # meta key: why an item's marker coordinates are unknown (BLINK)


@dataclass(frozen=True)
class ItemImage:
    """One image of an item: where it comes from and the geometry annotated on it.

    ``path`` is relative to the data folder (posix separators) and names the
    source file; ``data`` holds encoded bytes when the source is a container
    (e.g. a parquet cell), in which case ``path`` names the container and field.
    """

    path: str
    size: tuple[int, int]  # (width, height)
    points: Mapping[str, Point] = field(default_factory=dict)
    boxes: Mapping[str, Box] = field(default_factory=dict)
    root: Path | None = field(default=None, compare=False, repr=False)
    data: bytes | None = field(default=None, compare=False, repr=False)

    @property
    def location(self) -> str:
        """Where the image is read from, as messages name it: the file's full path where the data folder is known."""
        return str(self.root / self.path) if self.root is not None else self.path

    def load(self) -> Image.Image:
        """Decode the image as RGB; a missing or corrupt file raises DataError naming it."""
        where = self.location
        try:
            if self.data is not None:
                img = Image.open(io.BytesIO(self.data))
            else:
                if self.root is None:
                    raise DataError(f"{self.path}: image has no data folder to resolve against")
                img = Image.open(self.root / self.path)
            img.load()
        except FileNotFoundError as exc:
            raise DataError(f"{where}: image file not found") from exc
        except (UnidentifiedImageError, OSError, SyntaxError) as exc:
            raise DataError(f"{where}: cannot decode image ({exc})") from exc
        img = img.convert("RGB")
        if img.size != tuple(self.size):
            raise DataError(
                f"{where}: image is {img.size[0]}x{img.size[1]} but the annotation says {self.size[0]}x{self.size[1]}"
            )
        return img

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"path": self.path, "size": list(self.size)}
        out["points"] = {k: [_num(v[0]), _num(v[1])] for k, v in self.points.items()}
        if self.boxes:
            out["boxes"] = {k: [_num(c) for c in v] for k, v in self.boxes.items()}
        return out


@dataclass(frozen=True)
class Item:
    """A multiple-choice evaluation item shared by the VLM and the vision readout.

    ``images`` are clean where the source has them; ``markers_drawn`` says the
    source images already carry their visual prompt (BLINK, CV-Bench), so the
    renderer must not draw it again. ``gold`` is one of ``choices``.
    """

    id: str
    task: str
    images: tuple[ItemImage, ...]
    choices: tuple[str, ...]
    gold: str
    prompt: str
    prompt_id: str
    option_texts: tuple[str, ...] = ()
    markers_drawn: bool = False
    meta: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.gold not in self.choices:
            raise DataError(f"item {self.id}: gold {self.gold!r} is not among choices {self.choices}")

    @property
    def gold_index(self) -> int:
        return self.choices.index(self.gold)

    def load_images(self) -> list[Image.Image]:
        return [im.load() for im in self.images]

    def to_json(self) -> dict[str, Any]:
        """The `plainsight items --json` record of this item."""
        return {
            "id": self.id,
            "task": self.task,
            "choices": list(self.choices),
            "gold": self.gold,
            "prompt_id": self.prompt_id,
            "markers_drawn": self.markers_drawn,
            "images": [im.to_json() for im in self.images],
            "meta": dict(self.meta),
        }

    def fingerprint(self) -> str:
        """Hash of everything that defines the item (not the pixel bytes)."""
        payload = self.to_json() | {"prompt": self.prompt, "option_texts": list(self.option_texts)}
        return canonical_hash(payload)


def out_of_image(item: Item) -> str | None:
    """Why an item's annotated geometry does not fit its images, or None when it does.

    A point must lie on the image: ``-0.5 <= x < W - 0.5`` and ``-0.5 <= y < H - 0.5`` (the
    pixel-index convention of this module), with finite coordinates. A box ``(x1, y1, x2, y2)``
    must be finite, not inverted, and overlap the image's extent ``[-0.5, W - 0.5) × [-0.5, H - 0.5)``
    at all — datasets' boxes often overhang the border by a pixel or two, which the readouts clip, so
    only a box with nothing inside the image is a fault. Sizes are the annotated ones
    (:meth:`ItemImage.load` checks them against the file). The one place this is checked: the runner
    calls it before any model sees the item, so every role counts the same items as data faults.
    """
    for index, image in enumerate(item.images, 1):
        w, h = image.size
        where = f"{image.location}: image {index} of item {item.id} ({w}x{h})"
        for label, point in image.points.items():
            x, y = (float(c) for c in point)
            if not (math.isfinite(x) and math.isfinite(y)):
                return f"{where}: point {label} ({x}, {y}) is not finite"
            if not (-0.5 <= x < w - 0.5 and -0.5 <= y < h - 0.5):
                return f"{where}: point {label} ({x:g}, {y:g}) lies outside the image"
        for label, box in image.boxes.items():
            x1, y1, x2, y2 = (float(c) for c in box)
            if not all(math.isfinite(c) for c in (x1, y1, x2, y2)):
                return f"{where}: box {label} {list(box)} is not finite"
            if x2 < x1 or y2 < y1:
                return f"{where}: box {label} {list(box)} is inverted"
            if x2 < -0.5 or y2 < -0.5 or x1 >= w - 0.5 or y1 >= h - 0.5:
                return f"{where}: box {label} {list(box)} lies outside the image"
    return None


def canonical_json(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def canonical_hash(obj: Any, length: int = 16) -> str:
    return hashlib.sha256(canonical_json(obj).encode()).hexdigest()[:length]


def item_set_fingerprint(items: list[Item]) -> str:
    return canonical_hash([it.fingerprint() for it in items])


def _num(v: float) -> float | int:
    f = float(v)
    return int(f) if f.is_integer() else round(f, 4)
