"""MOCHI (Bonnen et al., 2024), native parquet format (never downloads).

Layout: ``MOCHI/data/train-00000-of-00001.parquet`` (the Hugging Face release; ``train`` is
its only split). One row per oddity trial: ``dataset``, ``condition``, ``trial`` (its name),
``n_objects`` (images in the trial), ``oddity_index`` (0-based position of the odd image)
and ``images`` (a list of Hugging Face image structs ``{bytes, path}``), plus human and
model statistics (``human_avg``, ``RT_avg``, ``DINOv2G_avg`` …) kept in the item's meta.
Trials have 3 images except the 140 "barense" ones, which have 4: a run takes one size at
a time (3 by default: the paper's chance is 1/3) and counts the others as excluded.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image, UnidentifiedImageError

from plainsight import prompts
from plainsight.data import SOURCES, read_parquet_rows
from plainsight.errors import DataError, DatasetNotFound
from plainsight.items import LETTERS, Item, ItemImage

SOURCES.register("mochi", "MOCHI/data/train-*.parquet")

FOLDER = "MOCHI"
FILE_GLOB = "train-*.parquet"
REQUIRED = ("trial", "n_objects", "oddity_index", "images")
STATISTICS = ("human_avg", "human_sem", "human_std", "RT_avg", "n_subjects", "DINOv2G_avg")


@dataclass
class MochiTrials:
    """The items of the chosen trial size, the files read, and how many trials were left out (by reason)."""

    items: list[Item]
    paths: list[Path]
    excluded: dict[str, int] = field(default_factory=dict)


def find_mochi_files(data_root: Path) -> list[Path]:
    """``train-*.parquet`` under ``MOCHI/data/``, ``data/``, or the folder itself."""
    data_root = Path(data_root)
    for folder in (data_root / FOLDER / "data", data_root / "data", data_root):
        files = sorted(folder.glob(FILE_GLOB))
        if files:
            return files
    raise DatasetNotFound(
        f"{data_root}: no MOCHI found; expected {data_root / FOLDER}/data/train-00000-of-00001.parquet "
        f"(or data/{FILE_GLOB} directly in this folder)"
    )


def _image(cell: Any, where: str) -> tuple[bytes, tuple[int, int]]:
    data = cell.get("bytes") if isinstance(cell, dict) else None
    if not isinstance(data, (bytes, bytearray)) or not data:
        raise DataError(f"{where}: expected an image struct with 'bytes', got {type(cell).__name__}")
    try:
        with Image.open(io.BytesIO(data)) as im:  # PNG in the release; decode whatever it is
            im.verify()
        with Image.open(io.BytesIO(data)) as im:
            return bytes(data), im.size
    except (UnidentifiedImageError, OSError, SyntaxError) as exc:
        raise DataError(f"{where}: cannot decode image bytes ({exc})") from None


def _int_field(row: dict[str, Any], name: str, where: str) -> int:
    value = row.get(name)
    if isinstance(value, bool) or not isinstance(value, int):
        raise DataError(f"{where}: field {name!r} must be an integer, got {value!r}")
    return value


def _statistic(value: Any) -> float | int | None:
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return value
    return None


def load_trials(data_root: Path, *, task: str = "object_3d", n_objects: int = 3) -> MochiTrials:
    """Every trial with ``n_objects`` images as an item (gold = the odd image's letter); the rest counted."""
    paths = find_mochi_files(data_root)
    out = MochiTrials([], paths)
    text, options = prompts.object_3d_prompt(n_objects)
    seen: dict[str, str] = {}
    for path in paths:
        rel = path.relative_to(path.parents[1]).as_posix()
        for n, row in enumerate(read_parquet_rows(path, REQUIRED)):
            trial = row.get("trial")
            where = f"{path} row {n} ({trial})"
            if not isinstance(trial, str) or not trial:
                raise DataError(f"{path} row {n}: field 'trial' must be a non-empty string, got {trial!r}")
            if trial in seen:
                raise DataError(f"{where}: trial {trial!r} appears twice (first at {seen[trial]})")
            seen[trial] = f"{path.name} row {n}"
            count = _int_field(row, "n_objects", where)
            odd = _int_field(row, "oddity_index", where)
            cells = row["images"]
            if not isinstance(cells, list):
                raise DataError(f"{where}: field 'images' must be a list of images, got {type(cells).__name__}")
            if len(cells) != count:
                raise DataError(f"{where}: field 'images' holds {len(cells)} images but 'n_objects' says {count}")
            if not 0 <= odd < count:
                raise DataError(f"{where}: field 'oddity_index' is {odd}; it must be 0-based, below n_objects={count}")
            if count != n_objects:
                reason = f"{count}-image trials"
                out.excluded[reason] = out.excluded.get(reason, 0) + 1
                continue
            images = []
            for i, cell in enumerate(cells):
                data, size = _image(cell, f"{where}: field 'images'[{i}]")
                images.append(ItemImage(f"{rel}#{trial}/images[{i}]", size, data=data))
            stats = {k: _statistic(row.get(k)) for k in STATISTICS if k in row}
            out.items.append(
                Item(
                    id=f"mochi-{trial}",
                    task=task,
                    images=tuple(images),
                    choices=LETTERS[:count],
                    gold=LETTERS[odd],
                    prompt=text,
                    prompt_id=prompts.OBJECT_3D.key,
                    option_texts=options,
                    meta={
                        "source": "mochi",
                        "file": rel,
                        "trial": trial,
                        "dataset": row.get("dataset"),
                        "condition": row.get("condition"),
                        **stats,
                    },
                )  # fmt: skip
            )
    return out
