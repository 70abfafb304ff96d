"""The embedded SPair-71k twin: rendered furniture and tableware with exactly projected keypoints.

Per category (chair, lamp, mug, table) ``IMAGES_PER_CATEGORY`` instances, each with
its own proportions, colours and photo textures, turned to its own viewpoint in
front of a blurred photo. Keypoints are projected exactly; one hidden behind the
object or outside the frame is ``null`` in ImageAnnotation and left out of the pair
files, as in SPair. Coordinates are written as floats (SPair's are integers; the
loader reads both) so the ground truth stays exact. Segmentation masks hold the
category's 1-based index in ``CATEGORIES``.
"""

from __future__ import annotations

import json
import zlib
from itertools import combinations
from pathlib import Path

import numpy as np
from PIL import Image

from plainsight.data.spair import FOLDER
from plainsight.embedded.objects import SEMANTIC_CATEGORIES
from plainsight.embedded.scenes import BACKGROUND_PHOTOS, TEXTURE_PHOTOS, random_material, stage

CATEGORIES = tuple(sorted(SEMANTIC_CATEGORIES))
IMAGES_PER_CATEGORY = 10
PAIRS_PER_SPLIT = {"test": 30, "val": 4, "trn": 4}  # per category
SIZES = ((192, 144), (176, 176), (208, 156))
JPEG_QUALITY = 92


def _pose(azimuth: float) -> str:
    if abs(azimuth) < 0.35:
        return "Frontal"
    return "Left" if azimuth < 0 else "Right"


def _write_json(path: Path, obj: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, indent=1) + "\n")


def render_category(category: str, seed: int) -> list[dict]:
    """Every instance of ``category``: name, picture, keypoints by id (None when hidden), box, mask, azimuth."""
    names = None
    images = []
    for i in range(IMAGES_PER_CATEGORY):
        rng = np.random.default_rng([seed, zlib.crc32(category.encode()), i])
        shape = SEMANTIC_CATEGORIES[category](rng, random_material)
        names = names or list(shape.keypoints)
        size = SIZES[int(rng.integers(len(SIZES)))]
        azimuth = float(rng.uniform(-1.2, 1.2))
        staged = stage(shape, size, azimuth=azimuth, elevation=float(rng.uniform(0.2, 0.6)),
                       fill=float(rng.uniform(0.75, 0.95)), rng=rng)  # fmt: skip
        kps = {str(k): (list(staged.points[n]) if staged.visible[n] else None) for k, n in enumerate(names)}
        images.append({"name": f"pst_{category}_{i:02d}", "staged": staged, "kps": kps, "azimuth": azimuth})
    return images


def _pair_record(pair_id: int, category: str, src: dict, trg: dict) -> dict:
    ids = [k for k in src["kps"] if src["kps"][k] is not None and trg["kps"][k] is not None]
    src_box, trg_box = src["staged"].bbox, trg["staged"].bbox
    d_az = abs(src["azimuth"] - trg["azimuth"])
    area = [(b[2] - b[0] + 1) * (b[3] - b[1] + 1) for b in (src_box, trg_box)]
    ratio = max(area) / max(1, min(area))
    return {
        "pair_id": pair_id,
        "filename": f"{pair_id:06d}-{src['name']}-{trg['name']}:{category}",
        "src_imname": f"{src['name']}.jpg",
        "trg_imname": f"{trg['name']}.jpg",
        "src_imsize": [*src["staged"].camera.size, 3],
        "trg_imsize": [*trg["staged"].camera.size, 3],
        "src_bndbox": list(src_box),
        "trg_bndbox": list(trg_box),
        "src_pose": _pose(src["azimuth"]),
        "trg_pose": _pose(trg["azimuth"]),
        "category": category,
        "src_kps": [src["kps"][k] for k in ids],
        "trg_kps": [trg["kps"][k] for k in ids],
        "kps_ids": ids,
        "mirror": 0,
        "viewpoint_variation": int(d_az > 0.5) + int(d_az > 1.2),
        "scale_variation": int(ratio > 1.5) + int(ratio > 2.5),
        "truncation": 0,
        "occlusion": 0,
    }


def build_spair_twin(out_dir: Path, seed: int = 0) -> dict:
    """Write ``out_dir/SPair-71k``; returns counts and the photos used."""
    root = Path(out_dir) / FOLDER
    layout: dict[str, list[str]] = {split: [] for split in PAIRS_PER_SPLIT}
    pair_id = 0
    n_images = 0
    for c_index, category in enumerate(CATEGORIES, start=1):
        instances = render_category(category, seed)
        for inst in instances:
            staged = inst["staged"]
            jpg = root / "JPEGImages" / category / f"{inst['name']}.jpg"
            jpg.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(staged.image).save(jpg, quality=JPEG_QUALITY)
            seg = root / "Segmentation" / category / f"{inst['name']}.png"
            seg.parent.mkdir(parents=True, exist_ok=True)
            mask = Image.fromarray((staged.mask * c_index).astype(np.uint8), mode="L").convert("P")
            mask.save(seg)
            _write_json(root / "ImageAnnotation" / category / f"{inst['name']}.json", {
                "filename": f"{inst['name']}.jpg", "src_database": "plainsight-render", "src_annotation": "exact",
                "src_image": f"{inst['name']}.jpg", "image_width": staged.camera.size[0],
                "image_height": staged.camera.size[1], "image_depth": 3, "category": category,
                "pose": _pose(inst["azimuth"]), "truncated": 0, "occluded": 0, "difficult": 0,
                "bndbox": list(staged.bbox), "kps": inst["kps"], "azimuth_id": int((inst["azimuth"] + np.pi) / (np.pi / 4)),
            })  # fmt: skip
            n_images += 1
        rng = np.random.default_rng([seed, zlib.crc32(category.encode()), 0x5A17])
        all_pairs = list(combinations(range(len(instances)), 2))
        order = rng.permutation(len(all_pairs))
        start = 0
        for split, count in PAIRS_PER_SPLIT.items():
            for k in order[start : start + count]:
                i, j = all_pairs[int(k)]
                src, trg = (instances[i], instances[j]) if rng.uniform() < 0.5 else (instances[j], instances[i])
                pair_id += 1
                record = _pair_record(pair_id, category, src, trg)
                _write_json(root / "PairAnnotation" / split / f"{record['filename']}.json", record)
                layout[split].append(record["filename"])
            start += count
    for split, names in layout.items():
        path = root / "Layout" / "large" / f"{split}.txt"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(f"{n}\n" for n in names))
    from plainsight.tasks.semantic_correspondence import load_spair_items  # the task imports this package's loader

    return {
        "dataset": FOLDER,
        "categories": len(CATEGORIES),
        "images": n_images,
        "pairs": {split: len(names) for split, names in layout.items()},
        "items": {"semantic_correspondence": len(load_spair_items(Path(out_dir), seed=seed))},
        "photos": sorted(set(TEXTURE_PHOTOS) | set(BACKGROUND_PHOTOS)),
    }
