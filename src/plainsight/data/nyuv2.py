"""NYU Depth V2, the labelled set, native format (never downloads): the depth probe's training data.

``nyu_depth_v2_labeled.mat`` is MATLAB v7.3, i.e. HDF5, and h5py reverses MATLAB's axes:
``images`` (MATLAB 480×640×3×N) reads as (N, 3, 640, 480) and ``depths`` / ``rawDepths``
(480×640×N, metres) as (N, 640, 480); :class:`NYUv2` transposes them back to (H, W, 3) and
(H, W). ``splits.mat`` (MATLAB v5) holds ``trainNdxs`` and ``testNdxs``, 1-based. Frames
are read one at a time, so the 2.8 GB file is never loaded whole.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from plainsight.data import find_dataset_folder
from plainsight.errors import DataError

FOLDER = "nyuv2"  # the usual folder name; "NYUv2/" is accepted too
ALT_FOLDER = "NYUv2"
LABELED = "nyu_depth_v2_labeled.mat"
SPLITS = "splits.mat"


@dataclass
class NYUv2:
    """An open labelled .mat with its official split (0-based indices)."""

    path: Path
    train: np.ndarray
    test: np.ndarray
    size: tuple[int, int]  # (W, H)
    count: int

    def frame(self, index: int, *, raw: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """(image (H, W, 3) uint8, depth (H, W) float32 metres; 0 = no measurement) of frame ``index`` (0-based)."""
        import h5py

        with h5py.File(self.path, "r") as f:
            image = np.asarray(f["images"][index]).transpose(2, 1, 0)
            depth = np.asarray(f["rawDepths" if raw else "depths"][index], dtype=np.float32).T
        return np.ascontiguousarray(image), np.ascontiguousarray(depth)


def find_nyuv2(data_root: Path) -> Path:
    """``data_root/nyuv2/`` (or ``NYUv2/``) or ``data_root`` holding nyu_depth_v2_labeled.mat; else DatasetNotFound."""
    if (Path(data_root) / ALT_FOLDER / LABELED).is_file():
        return Path(data_root) / ALT_FOLDER
    return find_dataset_folder(data_root, FOLDER, LABELED, name="NYUv2", expect=f"with {SPLITS} beside it")


def open_nyuv2(data_root: Path) -> NYUv2:
    """Check the file's fields and shapes and read the split; errors name the file and the field."""
    import h5py
    import scipy.io

    folder = find_nyuv2(data_root)
    path = folder / LABELED
    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        raise DataError(f"{path}: not an HDF5 (MATLAB v7.3) file ({exc})") from None
    with f:
        for key in ("images", "depths"):
            if key not in f:
                raise DataError(f"{path}: missing field {key!r} (it has {', '.join(sorted(f.keys()))})")
        images, depths = f["images"], f["depths"]
        if images.ndim != 4 or images.shape[1] != 3:
            raise DataError(f"{path}: field 'images' has h5py shape {images.shape}; expected (N, 3, W, H)")
        n, _, w, h = images.shape
        if depths.shape != (n, w, h):
            raise DataError(
                f"{path}: field 'depths' has h5py shape {depths.shape}; expected {(n, w, h)} to match 'images'"
            )
        if "rawDepths" in f and f["rawDepths"].shape != (n, w, h):
            raise DataError(f"{path}: field 'rawDepths' has h5py shape {f['rawDepths'].shape}; expected {(n, w, h)}")
    split_path = folder / SPLITS
    if not split_path.is_file():
        raise DataError(f"{split_path}: split file not found (the official NYUv2 split, trainNdxs/testNdxs)")
    try:
        split = scipy.io.loadmat(split_path)
    except (ValueError, OSError, NotImplementedError) as exc:
        raise DataError(f"{split_path}: cannot read ({exc})") from None
    indices = []
    for key in ("trainNdxs", "testNdxs"):
        if key not in split:
            raise DataError(f"{split_path}: missing field {key!r}")
        one_based = np.asarray(split[key]).astype(np.int64).ravel()
        if one_based.size and (one_based.min() < 1 or one_based.max() > n):
            raise DataError(f"{split_path}: field {key!r} has indices outside 1..{n} (they are 1-based)")
        indices.append(one_based - 1)
    return NYUv2(path, indices[0], indices[1], (w, h), n)
