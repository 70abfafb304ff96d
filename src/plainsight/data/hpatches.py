"""HPatches sequences, native format (never downloads).

Layout: ``hpatches-sequences-release/{i_*,v_*}/1.ppm … 6.ppm`` plus ``H_1_2 … H_1_6``;
``H_1_k`` maps pixel-index coordinates ``(x, y, 1)`` of image 1 to image k (3×3,
whitespace separated, runs of spaces allowed). ``.png``/``.jpg`` images are accepted too.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from plainsight.data import SOURCES, read_text
from plainsight.errors import DataError, DatasetNotFound

SOURCES.register("hpatches", "hpatches-sequences-release/{i_*,v_*}/")

FOLDER = "hpatches-sequences-release"
IMAGE_EXTS = (".ppm", ".png", ".jpg")
# Scenes the common protocol (d2-net) drops for their resolution.
HIRES_SCENES = frozenset(
    {"i_contruction", "i_crownnight", "i_dc", "i_pencils", "i_whitebuilding", "v_artisans", "v_astronautis", "v_talent"}
)


@dataclass(frozen=True)
class HPatchesPair:
    """Image 1 and image k of one sequence, with the homography between them."""

    sequence: str
    k: int
    ref_path: str  # relative to ``root``, posix
    target_path: str
    ref_size: tuple[int, int]  # (W, H)
    target_size: tuple[int, int]
    H: np.ndarray  # 3×3, image 1 → image k
    root: Path


def _is_sequence(folder: Path) -> bool:
    return folder.is_dir() and (folder / "H_1_2").is_file() and any((folder / f"1{e}").is_file() for e in IMAGE_EXTS)


def find_hpatches_root(data_root: Path) -> Path:
    """The folder HPatches image paths are relative to.

    Accepts a folder holding ``hpatches-sequences-release/``, that folder itself, or one sequence folder;
    anything else raises DatasetNotFound (a DataError) naming the layouts expected.
    """
    return find_sequences(data_root)[0]


def find_sequences(data_root: Path) -> tuple[Path, list[Path]]:
    """``find_hpatches_root``'s folder and the sequence folders found (just one for a sequence folder)."""
    data_root = Path(data_root)
    if not data_root.is_dir():
        raise DataError(f"{data_root}: data folder does not exist")
    if (data_root / FOLDER).is_dir():
        seqs = sorted(p for p in (data_root / FOLDER).iterdir() if _is_sequence(p))
        if seqs:
            return data_root, seqs
    seqs = sorted(p for p in data_root.iterdir() if p.name[:2] in ("i_", "v_") and _is_sequence(p))
    if seqs:
        return data_root, seqs
    if _is_sequence(data_root):
        return data_root.parent, [data_root]
    raise DatasetNotFound(
        f"{data_root}: no HPatches sequences found (it holds: {_listing(data_root)}); expected "
        f"{data_root / FOLDER}/{{i_*,v_*}}/1.ppm..6.ppm + H_1_2..H_1_6, "
        "or the sequences (i_*/, v_*/) directly in the folder, or one sequence folder"
    )


def _listing(folder: Path, limit: int = 8) -> str:
    names = sorted(p.name + ("/" if p.is_dir() else "") for p in folder.iterdir())
    shown = ", ".join(names[:limit]) + (f", … ({len(names)} entries)" if len(names) > limit else "")
    return shown or "nothing"


def read_homography(path: Path) -> np.ndarray:
    """A 3×3 homography from an HPatches ``H_1_k`` file; malformed files raise DataError naming the file."""
    rows = [line.split() for line in read_text(path, "homography file").splitlines() if line.strip()]
    if len(rows) != 3 or any(len(r) != 3 for r in rows):
        raise DataError(f"{path}: expected 3 rows of 3 numbers, got {[len(r) for r in rows]}")
    try:
        H = np.array([[float(v) for v in r] for r in rows], dtype=np.float64)
    except ValueError as exc:
        raise DataError(f"{path}: not a number ({exc})") from None
    if not np.isfinite(H).all():
        raise DataError(f"{path}: homography has non-finite entries")
    if abs(np.linalg.det(H)) < 1e-12:
        raise DataError(f"{path}: homography is singular")
    return H


def _image_path(seq: Path, index: int) -> Path:
    for ext in IMAGE_EXTS:
        candidate = seq / f"{index}{ext}"
        if candidate.is_file():
            return candidate
    raise DataError(f"{seq}: image {index} not found (looked for {', '.join(f'{index}{e}' for e in IMAGE_EXTS)})")


def image_size(path: Path) -> tuple[int, int]:
    """(W, H) from the image header; an unreadable file raises DataError naming it."""
    try:
        with Image.open(path) as im:
            return im.size
    except (UnidentifiedImageError, OSError, SyntaxError) as exc:
        raise DataError(f"{path}: cannot read image ({exc})") from None


def load_pairs(data_root: Path, *, exclude_hires: bool = True) -> list[HPatchesPair]:
    """Every (image 1, image k) pair, sorted by (sequence, k)."""
    root, seqs = find_sequences(data_root)
    pairs = []
    for seq in seqs:
        if exclude_hires and seq.name in HIRES_SCENES:
            continue
        ref = _image_path(seq, 1)
        ref_size = image_size(ref)
        for k in range(2, 7):
            h_path = seq / f"H_1_{k}"
            if not h_path.exists():
                if any((seq / f"{k}{e}").exists() for e in IMAGE_EXTS):
                    raise DataError(f"{h_path}: homography file missing (image {k} is present)")
                continue  # a shorter sequence
            target = _image_path(seq, k)
            pairs.append(
                HPatchesPair(
                    sequence=seq.name,
                    k=k,
                    ref_path=ref.relative_to(root).as_posix(),
                    target_path=target.relative_to(root).as_posix(),
                    ref_size=ref_size,
                    target_size=image_size(target),
                    H=read_homography(h_path),
                    root=root,
                )
            )
    return pairs
