"""FunKPoint (Lai et al., ICCV 2021), native format as far as it is known (never downloads).

Assumed layout (from a public derivative; the original is shared on request, so the
schema is uncertain and every column name is configurable through
:class:`FunKPointColumns`): ``labels.csv`` with one row per (image, action) holding
five ordered keypoints ``p1_x, p1_y … p5_x, p5_y`` normalised to [0, 1] by the image's
width and height, plus ``image_path`` (relative to the folder, e.g.
``images/<wnid>/0001.jpg``), ``action``, ``object_category``, ``wnid`` and ``difficulty``.
Keypoints with the same index correspond across images of the same action.
"""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from plainsight.data import SOURCES, find_dataset_folder, read_text
from plainsight.errors import DataError

SOURCES.register("funkpoint", "FunKPoint/labels.csv + images")

FOLDER = "FunKPoint"
LABELS = "labels.csv"


@dataclass(frozen=True)
class FunKPointColumns:
    """Column names of labels.csv; ``point_x``/``point_y`` are formats of the 1-based keypoint index."""

    image: str = "image_path"
    action: str = "action"
    category: str = "object_category"
    wnid: str = "wnid"
    point_x: str = "p{i}_x"
    point_y: str = "p{i}_y"
    n_points: int = 5
    normalized: bool = True  # coordinates in [0, 1] of width/height (False: pixels)

    def required(self) -> list[str]:
        points = [f.format(i=i) for i in range(1, self.n_points + 1) for f in (self.point_x, self.point_y)]
        return [self.image, self.action, self.category, *points]


DEFAULT_COLUMNS = FunKPointColumns()


@dataclass(frozen=True)
class FunKPointRow:
    image_path: str  # relative to ``root``
    action: str
    category: str
    wnid: str
    size: tuple[int, int]
    points: tuple[tuple[float, float], ...]  # pixel-index (x, y), keypoint order
    line: int  # line number in labels.csv (header = 1)
    root: Path = field(compare=False)


def find_funkpoint_root(data_root: Path) -> Path:
    """``data_root/FunKPoint`` or ``data_root`` itself, whichever holds labels.csv; else DatasetNotFound."""
    return find_dataset_folder(data_root, FOLDER, LABELS, name="FunKPoint",
                               expect="plus the images it names (assumed format, see plainsight.data.funkpoint)")  # fmt: skip


def _image_size(path: Path, where: str) -> tuple[int, int]:
    try:
        with Image.open(path) as im:
            return im.size
    except FileNotFoundError:
        raise DataError(f"{where}: image {path} not found") from None
    except (UnidentifiedImageError, OSError, SyntaxError) as exc:
        raise DataError(f"{where}: cannot read image {path} ({exc})") from None


def load_rows(data_root: Path, columns: FunKPointColumns = DEFAULT_COLUMNS) -> list[FunKPointRow]:
    """Every labels.csv row, keypoints converted to pixels; errors name the file, the line and the column."""
    root = find_funkpoint_root(data_root)
    path = root / LABELS
    with io.StringIO(read_text(path, "FunKPoint labels (CSV)"), newline="") as fh:
        reader = csv.DictReader(fh)
        header = reader.fieldnames or []
        missing = [c for c in columns.required() if c not in header]
        if missing:
            raise DataError(
                f"{path}: missing column(s) {', '.join(missing)}; the header has {', '.join(header) or 'nothing'} "
                "(FunKPoint's schema is assumed: set FunKPointColumns to match the file)"
            )
        rows = []
        for line, record in enumerate(reader, start=2):
            where = f"{path}:{line}"
            rel = (record[columns.image] or "").strip()
            if not rel:
                raise DataError(f"{where}: column {columns.image!r} is empty")
            size = _image_size(root / rel, where)
            points = []
            for i in range(1, columns.n_points + 1):
                xy = []
                for fmt, extent in ((columns.point_x, size[0]), (columns.point_y, size[1])):
                    name = fmt.format(i=i)
                    try:
                        value = float(record[name])
                    except (TypeError, ValueError):
                        raise DataError(f"{where}: column {name!r} is not a number: {record[name]!r}") from None
                    if not math.isfinite(value):
                        raise DataError(f"{where}: column {name!r} is not a finite number: {record[name]!r}")
                    if columns.normalized and not 0.0 <= value <= 1.0:
                        raise DataError(
                            f"{where}: column {name!r} = {value} is outside [0, 1] (normalised coordinates)"
                        )
                    xy.append(value * extent if columns.normalized else value)
                points.append((xy[0], xy[1]))
            rows.append(
                FunKPointRow(
                    image_path=rel,
                    action=record[columns.action].strip(),
                    category=record[columns.category].strip(),
                    wnid=(record.get(columns.wnid) or "").strip(),
                    size=size,
                    points=tuple(points),
                    line=line,
                    root=root,
                )
            )
    return rows
