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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from PIL import Image, UnidentifiedImageError

from plainsight.errors import DataError

Point = tuple[float, float]
Box = tuple[float, float, float, float]

LETTERS = ("A", "B", "C", "D", "E", "F", "G", "H")


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

    def load(self) -> Image.Image:
        """Decode the image as RGB; a missing or corrupt file raises DataError naming it."""
        where = str(self.root / self.path) if self.root is not None else self.path
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
                f"{where}: image is {img.size[0]}x{img.size[1]} but the annotation says "
                f"{self.size[0]}x{self.size[1]}"
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


def canonical_json(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def canonical_hash(obj: Any, length: int = 16) -> str:
    return hashlib.sha256(canonical_json(obj).encode()).hexdigest()[:length]


def item_set_fingerprint(items: list[Item]) -> str:
    return canonical_hash([it.fingerprint() for it in items])


def _num(v: float) -> float | int:
    f = float(v)
    return int(f) if f.is_integer() else round(f, 4)
