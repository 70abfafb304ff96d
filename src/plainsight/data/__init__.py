"""Native-format readers, one module per dataset format, and what they share.

Each reader module registers its format's name in :data:`SOURCES` (with where the format is
looked for); tasks name these formats in ``TaskSpec.sources``. The embedded benchmark's builders
are in :mod:`plainsight.embedded`.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any, Sequence

from plainsight.registry import Registry

EMBEDDED_ENV = "PLAINSIGHT_EMBEDDED_DATA"
# format name → where the reader looks for it under --data-root (`--data-source NAME` picks one)
SOURCES: Registry[str] = Registry("data source")


def find_dataset_folder(data_root: Path, folder: str, marker: str, *, name: str, expect: str) -> Path:
    """``data_root/<folder>`` or ``data_root`` itself, whichever holds ``marker``; else DatasetNotFound.

    ``expect`` completes the message ("expected <data_root>/<folder>/<marker> (or <marker> in this folder) ...").
    """
    from plainsight.errors import DatasetNotFound

    data_root = Path(data_root)
    for candidate in (data_root / folder, data_root):
        if (candidate / marker).is_file():
            return candidate
    raise DatasetNotFound(
        f"{data_root}: no {name} found; expected {data_root / folder / marker} (or {marker} in this folder) {expect}"
    )


def is_number(value: Any) -> bool:
    """A finite int or float from a parsed annotation; a bool is not a number (Python's bool is an int)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def read_text(path: Path, what: str) -> str:
    """The UTF-8 text of ``path`` (``what`` says what it should hold, for the message).

    A missing file or a byte that is not UTF-8 is a DataError naming the file, the byte and where it is.
    """
    from plainsight.errors import DataError

    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise DataError(f"{path}: {what} not found") from None
    except OSError as exc:
        raise DataError(f"{path}: cannot read {what} ({exc.strerror or exc})") from None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise DataError(
            f"{path}: not UTF-8 text (byte 0x{raw[exc.start]:02x} at offset {exc.start}, line {line}); "
            f"expected {what} in UTF-8"
        ) from None


def read_parquet_rows(path: Path, required: Sequence[str] = ()) -> list[dict[str, Any]]:
    """A parquet file's rows as dicts; a corrupt file or a missing required column is a DataError naming it."""
    import pyarrow.parquet as pq

    from plainsight.errors import DataError

    try:
        table = pq.read_table(path)
    except Exception as exc:  # pyarrow raises several types for a corrupt file
        raise DataError(f"{path}: cannot read parquet ({exc})") from None
    missing = [c for c in required if c not in table.column_names]
    if missing:
        raise DataError(f"{path}: missing column(s) {', '.join(missing)}; it has {', '.join(table.column_names)}")
    return table.to_pylist()


def embedded_root() -> Path:
    """The embedded benchmark folder (``fixtures/data`` of the checkout).

    ``$PLAINSIGHT_EMBEDDED_DATA`` overrides it; otherwise the folder is looked
    for above the current directory, then beside the source tree.
    """
    if os.environ.get(EMBEDDED_ENV):
        return Path(os.environ[EMBEDDED_ENV]).resolve()
    candidates = [Path.cwd(), *Path.cwd().parents, Path(__file__).resolve().parents[3]]
    for base in candidates:
        folder = base / "fixtures" / "data"
        if (folder / "ATTRIBUTION.md").is_file():
            return folder
    raise FileNotFoundError(
        "the embedded benchmark (fixtures/data/) was not found above the current directory; "
        f"run from the plainsight checkout, set ${EMBEDDED_ENV}, or pass --data-root"
    )
