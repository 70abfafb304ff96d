"""CV-Bench (Cambrian-1), native format, the 3D Depth rows (never downloads).

Accepted layouts (the release moved between them): ``test_3d.parquet``, ``test.parquet``
(all rows), or ``test_3d.jsonl`` with images under ``img/`` (the ``filename`` field),
in ``data_root/CV-Bench/`` or ``data_root`` itself. Depth rows have two ``choices``, an
``answer`` ``"(A)"`` and ``bbox``: one ``[x1, y1, x2, y2]`` per choice in image pixels,
red box first, blue second; the boxes are already drawn on the image. Distance rows
(and 2D rows) share the files: they are skipped and counted.
"""

from __future__ import annotations

import io
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image, UnidentifiedImageError

from plainsight.data import SOURCES, is_number, read_parquet_rows, read_text
from plainsight.errors import DataError, DatasetNotFound
from plainsight.items import LETTERS, Item, ItemImage

SOURCES.register("cvbench", "CV-Bench/test_3d.parquet, test.parquet or test_3d.jsonl + img/")

FOLDER = "CV-Bench"
FILES = ("test_3d.parquet", "test.parquet", "test_3d.jsonl")
ANSWER = re.compile(r"^\(([AB])\)$")
BOX_LABELS = ("A", "B")  # red, blue


@dataclass
class CVBenchDepth:
    """Depth items of one file, and how many rows of other tasks were skipped (by task name)."""

    items: list[Item]
    path: Path
    skipped: dict[str, int] = field(default_factory=dict)


def find_cvbench_file(data_root: Path) -> Path:
    """The first of FILES in ``data_root/CV-Bench`` or ``data_root``; else DatasetNotFound."""
    data_root = Path(data_root)
    for folder in (data_root / FOLDER, data_root):
        for name in FILES:
            if (folder / name).is_file():
                return folder / name
    raise DatasetNotFound(
        f"{data_root}: no CV-Bench found; expected {data_root / FOLDER}/ (or this folder) holding one of "
        f"{', '.join(FILES)} (the jsonl with its img/ folder)"
    )


def _rows(path: Path) -> list[dict[str, Any]]:
    if path.suffix == ".jsonl":
        rows = []
        for n, line in enumerate(read_text(path, "CV-Bench JSON lines").splitlines(), start=1):
            if not line.strip():
                continue
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise DataError(f"{path}:{n}: not valid JSON ({exc})") from None
        return rows
    return read_parquet_rows(path)


def _image(row: dict[str, Any], root: Path, where: str) -> ItemImage:
    cell = row.get("image")
    if isinstance(cell, dict) and cell.get("bytes"):
        data = bytes(cell["bytes"])
        try:
            with Image.open(io.BytesIO(data)) as im:
                size = im.size
        except (UnidentifiedImageError, OSError, SyntaxError) as exc:
            raise DataError(f"{where}: field 'image': cannot decode image bytes ({exc})") from None
        return ItemImage(f"{row.get('filename') or where}", size, data=data)
    filename = row.get("filename")
    if not isinstance(filename, str) or not filename:
        raise DataError(f"{where}: neither field 'image' (bytes) nor field 'filename' is present")
    try:
        with Image.open(root / filename) as im:
            size = im.size
    except FileNotFoundError:
        raise DataError(f"{where}: field 'filename': image {root / filename} not found") from None
    except (UnidentifiedImageError, OSError, SyntaxError) as exc:
        raise DataError(f"{where}: field 'filename': cannot read image {root / filename} ({exc})") from None
    return ItemImage(filename, size, root=root)


def _boxes(value: Any, size: tuple[int, int], where: str) -> dict[str, tuple[float, float, float, float]]:
    if not (isinstance(value, list) and len(value) == 2):
        raise DataError(f"{where}: field 'bbox' must hold one [x1, y1, x2, y2] per choice (2), got {value!r}")
    boxes = {}
    for label, box in zip(BOX_LABELS, value):
        if not (isinstance(box, list) and len(box) == 4 and all(is_number(c) for c in box)):
            raise DataError(f"{where}: field 'bbox' entry {label} must be [x1, y1, x2, y2] finite numbers, got {box!r}")
        x1, y1, x2, y2 = (float(c) for c in box)
        if not (x1 < x2 and y1 < y2):
            raise DataError(f"{where}: field 'bbox' entry {label} is empty or inverted: {box!r}")
        if x2 <= 0 or y2 <= 0 or x1 >= size[0] or y1 >= size[1]:
            raise DataError(f"{where}: field 'bbox' entry {label} {box!r} lies outside the {size[0]}x{size[1]} image")
        boxes[label] = (x1, y1, x2, y2)
    return boxes


def load_depth(data_root: Path, *, task: str = "depth") -> CVBenchDepth:
    """Every Depth row as an item (markers drawn, stored prompt and answer); other rows counted in ``skipped``."""
    path = find_cvbench_file(data_root)
    root = path.parent
    out = CVBenchDepth([], path)
    for n, row in enumerate(_rows(path)):
        kind = str(row.get("task", ""))
        if kind != "Depth":
            out.skipped[kind or "(no task)"] = out.skipped.get(kind or "(no task)", 0) + 1
            continue
        idx = str(row.get("idx", n))
        where = f"{path} row {n} (idx {idx})"
        for key in ("choices", "answer", "prompt", "bbox"):
            if key not in row:
                raise DataError(f"{where}: missing field {key!r}")
        choices = row["choices"]
        if not (isinstance(choices, list) and len(choices) == 2):
            raise DataError(f"{where}: field 'choices' must list the 2 boxed objects, got {choices!r}")
        match = ANSWER.match(str(row["answer"]).strip())
        if not match:
            raise DataError(f"{where}: field 'answer' must be '(A)' or '(B)', got {row['answer']!r}")
        image = _image(row, root, where)
        boxes = _boxes(row["bbox"], image.size, where)
        out.items.append(
            Item(
                id=f"cvbench-{idx}",
                task=task,
                images=(ItemImage(image.path, image.size, boxes=boxes, root=image.root, data=image.data),),
                choices=LETTERS[:2],
                gold=match.group(1),
                prompt=str(row["prompt"]),
                prompt_id="cvbench.depth:stored",
                option_texts=tuple(str(c) for c in choices),
                markers_drawn=True,
                meta={"source": "cvbench", "file": path.name, "source_dataset": row.get("source_dataset")},
            )
        )
    return out
