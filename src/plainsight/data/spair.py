"""SPair-71k, native format (never downloads).

Layout: ``SPair-71k/{JPEGImages,ImageAnnotation,Segmentation}/<category>/`` plus
``PairAnnotation/<split>/<pair name>.json`` and ``Layout/large/<split>.txt`` (one pair
name per line, ``<id>-<src>-<trg>:<category>``; splits ``trn``/``val``/``test``).
Keypoints are absolute pixel coordinates, x then y, index-aligned with ``kps_ids``;
``ImageAnnotation`` lists every keypoint of an image (``null`` = not visible).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from PIL import Image

from plainsight.data import SOURCES, is_number, read_text
from plainsight.errors import DataError, DatasetNotFound

SOURCES.register("spair", "SPair-71k/ (PairAnnotation/test)")

FOLDER = "SPair-71k"
SPLITS = ("trn", "val", "test")
PAIR_FIELDS = ("src_imname", "trg_imname", "category", "src_kps", "trg_kps", "kps_ids", "src_imsize", "trg_imsize",
               "src_bndbox", "trg_bndbox")  # fmt: skip

Point = tuple[float, float]


@dataclass(frozen=True)
class SPairPair:
    """One pair file, checked: keypoints by id on both images (visible in both), sizes (W, H), boxes."""

    name: str
    category: str
    src_path: str  # relative to ``root``
    trg_path: str
    src_size: tuple[int, int]
    trg_size: tuple[int, int]
    src_kps: dict[str, Point]
    trg_kps: dict[str, Point]
    src_bbox: tuple[float, float, float, float]
    trg_bbox: tuple[float, float, float, float]
    root: Path = field(compare=False)
    trg_all_kps: dict[str, Point] = field(default_factory=dict)  # every visible target keypoint (ImageAnnotation)
    info: dict[str, Any] = field(default_factory=dict)  # viewpoint/scale variation, truncation, occlusion, poses


def find_spair_root(data_root: Path) -> Path:
    """The SPair-71k folder: ``data_root/SPair-71k`` or ``data_root`` itself; else DatasetNotFound."""
    data_root = Path(data_root)
    for candidate in (data_root / FOLDER, data_root):
        if (candidate / "PairAnnotation").is_dir() and (candidate / "JPEGImages").is_dir():
            return candidate
    raise DatasetNotFound(
        f"{data_root}: no SPair-71k found; expected {data_root / FOLDER}/ (or this folder) holding "
        "PairAnnotation/<split>/*.json, JPEGImages/<category>/, Layout/large/<split>.txt"
    )


def pair_names(root: Path, split: str) -> list[str]:
    """Pair names of ``split`` from ``Layout/large/<split>.txt``, else every file in ``PairAnnotation/<split>/``."""
    if split not in SPLITS:
        raise DataError(f"SPair split {split!r} is not one of {SPLITS}")
    layout = root / "Layout" / "large" / f"{split}.txt"
    if layout.is_file():
        return [
            line.strip()
            for line in read_text(layout, "SPair split list (one pair name a line)").splitlines()
            if line.strip()
        ]
    folder = root / "PairAnnotation" / split
    if not folder.is_dir():
        raise DatasetNotFound(f"{root}: SPair split {split!r} has neither {layout} nor {folder}/")
    return sorted(p.stem for p in folder.glob("*.json"))


def _read_json(path: Path) -> dict[str, Any]:
    text = read_text(path, "SPair JSON annotation")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise DataError(f"{path}: expected a JSON object, got {type(data).__name__}")
    return data


def _points(path: Path, key: str, value: Any) -> list[Point]:
    if not isinstance(value, list):
        raise DataError(f"{path}: field {key!r} must be a list of [x, y], got {type(value).__name__}")
    out = []
    for i, p in enumerate(value):
        if not (isinstance(p, (list, tuple)) and len(p) == 2 and all(is_number(c) for c in p)):
            raise DataError(
                f"{path}: field {key!r}[{i}] must be [x, y] finite numbers (true/false are not numbers), got {p!r}"
            )
        out.append((float(p[0]), float(p[1])))
    return out


def _size(path: Path, key: str, value: Any) -> tuple[int, int]:
    if not (
        isinstance(value, list)
        and len(value) >= 2
        and all(isinstance(c, int) and not isinstance(c, bool) and c > 0 for c in value[:2])
    ):
        raise DataError(f"{path}: field {key!r} must be [W, H, C] positive integers, got {value!r}")
    return int(value[0]), int(value[1])


@lru_cache(maxsize=4096)  # pairs share images: each JPEG's header is read once
def _jpeg_size(image: Path) -> tuple[int, int] | None:
    try:
        with Image.open(image) as im:
            return im.size
    except (OSError, SyntaxError):
        return None  # missing or undecodable: the item's data fault, reported when it is scored


def _check_image_size(path: Path, key: str, image: Path, size: tuple[int, int]) -> None:
    """The annotated size must be the JPEG's: keypoints, boxes and the items' distractor spacing are in its pixels.

    A mismatch is an error naming both files (not a correction: which of the two is right is not ours to guess).
    """
    actual = _jpeg_size(image)
    if actual is not None and actual != tuple(size):
        raise DataError(f"{path}: field {key!r} says {size[0]}x{size[1]} but {image} is {actual[0]}x{actual[1]}")


def _box(path: Path, key: str, value: Any) -> tuple[float, float, float, float]:
    if not (isinstance(value, list) and len(value) == 4 and all(is_number(c) for c in value)):
        raise DataError(f"{path}: field {key!r} must be [x1, y1, x2, y2] finite numbers, got {value!r}")
    x1, y1, x2, y2 = (float(c) for c in value)
    if x2 < x1 or y2 < y1:
        raise DataError(f"{path}: field {key!r} has x2 < x1 or y2 < y1: {value!r}")
    return x1, y1, x2, y2


def read_pair(root: Path, split: str, name: str) -> SPairPair:
    """One ``PairAnnotation/<split>/<name>.json``, validated; errors name the file and the field."""
    path = root / "PairAnnotation" / split / f"{name}.json"
    data = _read_json(path)
    missing = [k for k in PAIR_FIELDS if k not in data]
    if missing:
        raise DataError(f"{path}: missing field(s) {', '.join(missing)}")
    category = str(data["category"])
    ids = [str(i) for i in data["kps_ids"]] if isinstance(data["kps_ids"], list) else None
    if ids is None:
        raise DataError(f"{path}: field 'kps_ids' must be a list")
    src, trg = _points(path, "src_kps", data["src_kps"]), _points(path, "trg_kps", data["trg_kps"])
    if not (len(src) == len(trg) == len(ids)):
        raise DataError(f"{path}: src_kps ({len(src)}), trg_kps ({len(trg)}) and kps_ids ({len(ids)}) differ in length")
    if len(set(ids)) != len(ids):
        raise DataError(f"{path}: field 'kps_ids' repeats an id: {ids}")
    src_size, trg_size = _size(path, "src_imsize", data["src_imsize"]), _size(path, "trg_imsize", data["trg_imsize"])
    for key, pts, (w, h) in (("src_kps", src, src_size), ("trg_kps", trg, trg_size)):
        for i, (x, y) in enumerate(pts):
            if not (-0.5 <= x <= w - 0.5 and -0.5 <= y <= h - 0.5):
                raise DataError(f"{path}: field {key!r}[{i}] = ({x}, {y}) lies outside the {w}x{h} image")
    trg_name = str(data["trg_imname"])
    for key, name_key, size in (("src_imsize", "src_imname", src_size), ("trg_imsize", "trg_imname", trg_size)):
        _check_image_size(path, key, root / "JPEGImages" / category / str(data[name_key]), size)
    trg_all = _visible_keypoints(root / "ImageAnnotation" / category / f"{Path(trg_name).stem}.json")
    info_keys = ("viewpoint_variation", "scale_variation", "truncation", "occlusion", "src_pose", "trg_pose", "mirror")
    return SPairPair(
        name=name,
        category=category,
        src_path=f"JPEGImages/{category}/{data['src_imname']}",
        trg_path=f"JPEGImages/{category}/{trg_name}",
        src_size=src_size,
        trg_size=trg_size,
        src_kps=dict(zip(ids, src)),
        trg_kps=dict(zip(ids, trg)),
        src_bbox=_box(path, "src_bndbox", data["src_bndbox"]),
        trg_bbox=_box(path, "trg_bndbox", data["trg_bndbox"]),
        root=root,
        trg_all_kps=trg_all or dict(zip(ids, trg)),
        info={k: data[k] for k in info_keys if k in data},
    )


def _visible_keypoints(path: Path) -> dict[str, Point]:
    """Visible keypoints of an ``ImageAnnotation`` file (``{}`` when the file is absent)."""
    if not path.is_file():
        return {}
    data = _read_json(path)
    kps = data.get("kps")
    if not isinstance(kps, dict):
        raise DataError(f"{path}: field 'kps' must be an object of id → [x, y] or null")
    out = {}
    for key, value in kps.items():
        if value is None:
            continue
        out[str(key)] = _points(path, f"kps.{key}", [value])[0]
    return out


def load_pairs(data_root: Path, split: str = "test") -> list[SPairPair]:
    """Every pair of ``split`` in Layout order."""
    root = find_spair_root(data_root)
    return [read_pair(root, split, name) for name in pair_names(root, split)]
