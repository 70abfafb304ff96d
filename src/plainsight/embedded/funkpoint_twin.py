"""The embedded FunKPoint twin: rendered tools that share a function, five functional keypoints each.

Three actions with three tools each (Scoop: spoon, ladle, shovel; Mash/Pound: hammer,
pestle, mallet; Brush/Dust: brush, toothbrush, broom), ``INSTANCES`` instances per
tool, tilted and turned, in front of a blurred photo. Written in the assumed FunKPoint
format (labels.csv with normalised p1..p5, images/<wnid>/NNNN.jpg); keypoints are
projected exactly (FunKPoint stores no visibility, so all five are written).
"""

from __future__ import annotations

import csv
import zlib
from pathlib import Path

import numpy as np
from PIL import Image

from plainsight.data.funkpoint import FOLDER, LABELS
from plainsight.embedded.objects import FUNCTIONAL_POINTS, TOOLS_BY_ACTION
from plainsight.embedded.raycast import rotation_z
from plainsight.embedded.scenes import BACKGROUND_PHOTOS, TEXTURE_PHOTOS, random_material, stage

INSTANCES = 14
SIZES = ((160, 160), (144, 192), (192, 144))
JPEG_QUALITY = 92
COLUMNS = ["image_path", "action", "wnid", "object_category", "difficulty"] + [
    f"p{i}_{axis}" for i in range(1, len(FUNCTIONAL_POINTS) + 1) for axis in ("x", "y")
]


def build_funkpoint_twin(out_dir: Path, seed: int = 0) -> dict:
    """Write ``out_dir/FunKPoint``; returns counts and the photos used."""
    root = Path(out_dir) / FOLDER
    rows = []
    for action, tools in TOOLS_BY_ACTION.items():
        for tool, builder in tools.items():
            wnid = f"pst_{tool}"
            for i in range(INSTANCES):
                rng = np.random.default_rng([seed, zlib.crc32(f"{action}|{tool}".encode()), i])
                shape = builder(rng, random_material).transformed(rotation_z(float(rng.uniform(-0.6, 0.6))))
                size = SIZES[int(rng.integers(len(SIZES)))]
                staged = stage(shape, size, azimuth=float(rng.uniform(-0.9, 0.9)),
                               elevation=float(rng.uniform(0.15, 0.5)), fill=float(rng.uniform(0.7, 0.85)), rng=rng)  # fmt: skip
                rel = f"images/{wnid}/{i:04d}.jpg"
                (root / rel).parent.mkdir(parents=True, exist_ok=True)
                Image.fromarray(staged.image).save(root / rel, quality=JPEG_QUALITY)
                w, h = size
                row = {"image_path": rel, "action": action, "wnid": wnid, "object_category": tool,
                       "difficulty": "easy" if sum(staged.visible.values()) == len(FUNCTIONAL_POINTS) else "hard"}  # fmt: skip
                for k, name in enumerate(FUNCTIONAL_POINTS, start=1):
                    x, y = staged.points[name]
                    row[f"p{k}_x"], row[f"p{k}_y"] = repr(x / w), repr(y / h)
                rows.append(row)
    with (root / LABELS).open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    from plainsight.tasks.functional_correspondence import load_funkpoint_items  # the task imports the loader

    return {
        "dataset": FOLDER,
        "rows": len(rows),
        "items": {"functional_correspondence": len(load_funkpoint_items(Path(out_dir), seed=seed))},
        "photos": sorted(set(TEXTURE_PHOTOS) | set(BACKGROUND_PHOTOS)),
    }
