"""BLINK (Fu et al., 2024), native parquet format (never downloads).

Layout: ``BLINK/<Subtask>/val-00000-of-00001.parquet`` (the Hugging Face release);
columns ``idx``, ``question``, ``sub_task``, ``image_1`` … ``image_4`` (Hugging Face image
structs ``{bytes, path}`` or null), ``choices`` (list of strings), ``answer`` (``"(A)"``)
and ``prompt`` (the full multiple-choice prompt). Only ``val`` has answers. The images
already carry their visual prompt (``markers_drawn``); the stored prompt and answer are
used as they are. BLINK stores no coordinates: for the correspondence subtasks the
marker positions are recovered from the pixels (:mod:`plainsight.markers`); an item
whose markers cannot be read unambiguously keeps no points and says why in its meta,
so the VLM still answers it and the vision readout reports it invalid.
"""

from __future__ import annotations

import io
import re
from dataclasses import replace
from pathlib import Path
from typing import Any

from PIL import Image, UnidentifiedImageError

from plainsight.data import SOURCES, read_parquet_rows
from plainsight.errors import DataError, DatasetNotFound
from plainsight.items import LETTERS, UNRECOVERED, Item, ItemImage

SOURCES.register("blink", "BLINK/<Subtask>/val-00000-of-00001.parquet")

FOLDER = "BLINK"
SPLIT = "val"
IMAGE_COLUMNS = ("image_1", "image_2", "image_3", "image_4")
REQUIRED = (
    "idx",
    *IMAGE_COLUMNS,
    "choices",
    "answer",
    "prompt",
)  # the release has all four image columns (null when unused)
ANSWER = re.compile(r"^\(([A-Z])\)$")


def find_subtask_file(data_root: Path, subtask: str) -> Path:
    """``<Subtask>/val-*.parquet`` under ``data_root/BLINK``, ``data_root``, or ``data_root`` = the subtask folder."""
    data_root = Path(data_root)
    folders = [data_root / FOLDER / subtask, data_root / subtask] + ([data_root] if data_root.name == subtask else [])
    for folder in folders:
        files = sorted(folder.glob(f"{SPLIT}-*.parquet"))
        if files:
            return files[0]
    raise DatasetNotFound(
        f"{data_root}: no BLINK {subtask} found; expected {data_root / FOLDER / subtask}/{SPLIT}-00000-of-00001.parquet "
        f"(or {subtask}/ directly in this folder)"
    )


def _image(cell: Any, where: str) -> tuple[bytes, tuple[int, int]] | None:
    if cell is None:
        return None
    data = cell.get("bytes") if isinstance(cell, dict) else None
    if not isinstance(data, (bytes, bytearray)) or not data:
        raise DataError(f"{where}: expected an image struct with 'bytes', got {type(cell).__name__}")
    try:
        with Image.open(io.BytesIO(data)) as im:  # JPEG or PNG: decode the bytes, never assume
            size = im.size
    except (UnidentifiedImageError, OSError, SyntaxError) as exc:
        raise DataError(f"{where}: cannot decode image bytes ({exc})") from None
    return bytes(data), size


def read_rows(path: Path) -> list[dict[str, Any]]:
    """The parquet's rows as dicts, required columns checked."""
    return read_parquet_rows(path, REQUIRED)


def load_items(data_root: Path, subtask: str, *, task: str) -> tuple[list[Item], Path]:
    """Items of one subtask's val split, in file order; returns them and the parquet path."""
    path = find_subtask_file(data_root, subtask)
    rel = path.relative_to(path.parents[1]).as_posix()
    items = []
    for n, row in enumerate(read_rows(path)):
        idx = str(row.get("idx") or f"row{n}")
        where = f"{path} row {n} ({idx})"
        choices = row["choices"]
        if not isinstance(choices, list) or not 2 <= len(choices) <= len(LETTERS):
            raise DataError(f"{where}: field 'choices' must be a list of 2–{len(LETTERS)} options, got {choices!r}")
        match = ANSWER.match(str(row["answer"]).strip())
        letters = LETTERS[: len(choices)]
        if not match or match.group(1) not in letters:
            raise DataError(
                f"{where}: field 'answer' must be one of {['(' + c + ')' for c in letters]}, got {row['answer']!r}"
            )
        if not isinstance(row["prompt"], str) or not row["prompt"].strip():
            raise DataError(f"{where}: field 'prompt' is empty")
        images = []
        for column in IMAGE_COLUMNS:
            decoded = _image(row.get(column), f"{where}: field {column!r}")
            if decoded is not None:
                data, size = decoded
                images.append(ItemImage(f"{rel}#{idx}/{column}", size, data=data))
        if not images:
            raise DataError(f"{where}: no image in {', '.join(IMAGE_COLUMNS)}")
        items.append(
            Item(
                id=idx,
                task=task,
                images=tuple(images),
                choices=letters,
                gold=match.group(1),
                prompt=row["prompt"],
                prompt_id=f"blink.{subtask.lower()}:stored",
                option_texts=tuple(str(c) for c in choices),
                markers_drawn=True,
                meta={"source": "blink", "subtask": subtask, "file": rel},
            )
        )
    return items, path


def load_correspondence_items(data_root: Path, subtask: str, *, task: str) -> list[Item]:
    """A correspondence subtask's items with marker coordinates recovered from the pixels where unambiguous."""
    from plainsight.markers import recover_markers

    items, _ = load_items(data_root, subtask, task=task)
    out = []
    for item in items:
        if len(item.images) != 2:
            raise DataError(
                f"{item.meta['file']} ({item.id}): a correspondence item needs 2 images, it has {len(item.images)}"
            )
        expected = (("REF",), item.choices)
        found, reasons = [], []
        for i, (image, labels) in enumerate(zip(item.images, expected)):
            result = recover_markers(image.load(), labels)
            found.append(result.points or {})
            if not result.ok():
                reasons.append(f"image {i + 1}: {result.reason}")
        if reasons:
            out.append(replace(item, meta={**item.meta, UNRECOVERED: "; ".join(reasons)}))
        else:
            images = tuple(replace(im, points=pts) for im, pts in zip(item.images, found))
            out.append(replace(item, images=images, meta={**item.meta, "markers": "recovered"}))
    return out
