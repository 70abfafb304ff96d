"""The embedded MOCHI twin: oddity trials rendered by our ray caster, in MOCHI's parquet format.

A trial shows one object from two (or, in the 4-image "barense" trials, three) viewpoints
and a similar but different object from another viewpoint. Every object of a trial has the
same plain matte colour in front of the same plain backdrop, so colour and background say
nothing; only 3D shape does. Conditions, after MOCHI's datasets:

- ``shapenet``: furniture and tableware (chair, lamp, mug, table); the odd object is
  another instance of the same category (its own proportions).
- ``shapegen``: abstract objects, a core with 2–4 attached parts; the odd object is the
  same recipe with one or two parts moved, resized or swapped for another primitive.
- ``barense``: 4-image shapegen trials, which a default (3-image) run excludes and counts.

Views of the same object are at least ``MIN_VIEW_GAP`` apart in azimuth. ``oddity_index``
(0-based) is balanced over positions. ``MOCHI/plainsight_truth.jsonl`` records which object
each image shows (a real MOCHI folder has no such file).
"""

from __future__ import annotations

import io
import json
import zlib
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from PIL import Image

from plainsight.data.mochi import FOLDER
from plainsight.embedded.objects import SEMANTIC_CATEGORIES, Shape
from plainsight.embedded.raycast import Material, Primitive, rotation_x, rotation_y, rotation_z
from plainsight.embedded.scenes import stage
from plainsight.tasks.keypoint_items import balanced_slots

SIZE = (128, 128)
TRIALS = {"shapenet": 60, "shapegen": 60, "barense": 12}
MIN_VIEW_GAP = np.deg2rad(40.0)
TRUTH = "plainsight_truth.jsonl"
KINDS = ("box", "sphere", "frustum")
AREA = (0.16, 0.26)  # share of the image the object covers, drawn per view


@dataclass(frozen=True)
class Part:
    """One primitive of an abstract object, in the object frame."""

    kind: str
    center: tuple[float, float, float]
    half: tuple[float, float, float]
    angles: tuple[float, float, float]  # rotations about x, y, z (radians)
    top: float = 1.0


def _random_part(rng: np.random.Generator, core: float) -> Part:
    direction = rng.normal(size=3)
    direction /= np.linalg.norm(direction)
    half = rng.uniform(0.1, 0.22, size=3)
    half[int(rng.integers(3))] = rng.uniform(0.3, 0.5)  # one long axis: parts read as limbs, not bumps
    center = direction * (core + 0.5 * float(half.max()))
    return Part(KINDS[int(rng.integers(3))], tuple(center), tuple(half), tuple(rng.uniform(-np.pi, np.pi, size=3)),
                float(rng.uniform(0.3, 1.0)))  # fmt: skip


def abstract_recipe(rng: np.random.Generator) -> list[Part]:
    """A core primitive with 2–4 attached parts."""
    core_half = rng.uniform(0.28, 0.42, size=3)
    parts = [
        Part(KINDS[int(rng.integers(3))], (0.0, 0.0, 0.0), tuple(core_half), (0.0, float(rng.uniform(0, np.pi)), 0.0))
    ]
    core = float(core_half.mean())
    parts += [_random_part(rng, core) for _ in range(int(rng.integers(2, 5)))]
    return parts


def altered_recipe(parts: list[Part], rng: np.random.Generator) -> list[Part]:
    """The same object with one or two of its attached parts changed: moved, resized or another primitive."""
    out = list(parts)
    core = float(np.mean(parts[0].half))
    for index in rng.choice(np.arange(1, len(parts)), size=min(len(parts) - 1, int(rng.integers(1, 3))), replace=False):
        part = out[index]
        change = int(rng.integers(3))
        if change == 0:
            out[index] = _random_part(rng, core)
        elif change == 1:
            out[index] = replace(part, half=tuple(np.asarray(part.half) * rng.choice([0.55, 1.7], size=3)))
        else:
            other = [k for k in KINDS if k != part.kind]
            out[index] = replace(
                part, kind=other[int(rng.integers(2))], angles=tuple(rng.uniform(-np.pi, np.pi, size=3))
            )
    return out


def realise(parts: list[Part], material: Material) -> Shape:
    """Primitives of a recipe; keypoints are the corners of each part's box (they frame the object)."""
    prims, corners = [], {}
    signs = np.array([[sx, sy, sz] for sx in (-1, 1) for sy in (-1, 1) for sz in (-1, 1)], dtype=float)
    for i, part in enumerate(parts):
        rot = rotation_z(part.angles[2]) @ rotation_y(part.angles[1]) @ rotation_x(part.angles[0])
        prims.append(Primitive(part.kind, part.center, part.half, material, rot, part.top))
        for j, corner in enumerate(signs * np.asarray(part.half)):
            corners[f"p{i}c{j}"] = rot @ corner + np.asarray(part.center)
    return Shape(prims, corners)


def _plain_material(rng: np.random.Generator) -> tuple[Material, np.ndarray]:
    grey = float(rng.uniform(0.55, 0.8))
    tint = rng.uniform(-0.05, 0.05, size=3)
    material = Material(tuple(float(c) for c in np.clip(grey + tint, 0, 1)))
    backdrop = np.full((SIZE[1], SIZE[0], 3), float(rng.uniform(0.85, 1.0)))
    return material, backdrop


def _viewpoints(rng: np.random.Generator, same_views: int) -> list[float]:
    """Azimuths for the repeated object's views, pairwise ≥ MIN_VIEW_GAP apart, then one for the odd object."""
    while True:
        azimuths = rng.uniform(-np.pi, np.pi, size=same_views)
        gaps = [abs((a - b + np.pi) % (2 * np.pi) - np.pi) for i, a in enumerate(azimuths) for b in azimuths[i + 1 :]]
        if min(gaps) >= MIN_VIEW_GAP:
            return [float(a) for a in azimuths] + [float(rng.uniform(-np.pi, np.pi))]


def _objects(condition: str, rng: np.random.Generator, material: Material) -> tuple[Shape, Shape, str]:
    if condition == "shapenet":
        category = sorted(SEMANTIC_CATEGORIES)[int(rng.integers(len(SEMANTIC_CATEGORIES)))]
        build = SEMANTIC_CATEGORIES[category]
        same, odd = build(rng, lambda _: material), build(rng, lambda _: material)
        return _painted(same, material), _painted(odd, material), category
    recipe = abstract_recipe(rng)
    return realise(recipe, material), realise(altered_recipe(recipe, rng), material), "abstract"


def _fill_for_area(shape: Shape, azimuth: float, elevation: float, area: float, rng: np.random.Generator) -> float:
    """The framing at which the object covers about ``area`` of the image (so its size on screen is no cue).

    A small probe render measures the coverage at a reference framing; coverage grows with the
    square of the framing, which stays ≤ 1 so the object is never cut off.
    """
    probe_fill, probe_size = 0.6, (48, 48)
    probe = stage(shape, probe_size, azimuth=azimuth, elevation=elevation, fill=probe_fill, rng=rng,
                  backdrop=np.ones((probe_size[1], probe_size[0], 3)))  # fmt: skip
    covered = max(float(probe.mask.mean()), 1e-3)
    return float(min(1.0, probe_fill * np.sqrt(area / covered)))


def _painted(shape: Shape, material: Material) -> Shape:
    """Every part in the trial's one material (some builders colour details, e.g. a lamp's switch, on their own)."""
    return Shape([replace(p, material=material) for p in shape.primitives], shape.keypoints)


def _png(image: np.ndarray, path: str) -> dict:
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PNG", optimize=True)
    return {"bytes": buf.getvalue(), "path": path}


def render_trial(condition: str, index: int, odd_position: int, seed: int) -> tuple[dict, dict]:
    """One trial's parquet row and truth record."""
    rng = np.random.default_rng([seed, zlib.crc32(condition.encode()), index])
    n_objects = 4 if condition == "barense" else 3
    material, backdrop = _plain_material(rng)
    same, odd, kind = _objects(condition, rng, material)
    azimuths = _viewpoints(rng, n_objects - 1)
    order = [0] * (n_objects - 1)
    order.insert(odd_position, 1)  # 0 = the repeated object, 1 = the odd one
    views = iter(azimuths[:-1])
    trial = f"pst_{condition}{index:03d}"
    images, truth_views = [], []
    for position, which in enumerate(order):
        azimuth = azimuths[-1] if which else next(views)
        elevation = float(rng.uniform(0.15, 0.6))
        shape = odd if which else same
        fill = _fill_for_area(shape, azimuth, elevation, float(rng.uniform(*AREA)), rng)
        staged = stage(shape, SIZE, azimuth=azimuth, elevation=elevation, fill=fill, rng=rng, backdrop=backdrop)
        images.append(_png(staged.image, f"{trial}_{position}.png"))
        truth_views.append(
            {"object": "odd" if which else "same", "azimuth": round(azimuth, 4), "elevation": round(elevation, 4)}
        )
    row = {
        "dataset": condition, "condition": kind, "trial": trial,
        "n_objects": n_objects, "oddity_index": odd_position, "images": images,
        "n_subjects": 0, "human_avg": None, "human_sem": None, "human_std": None, "RT_avg": None,
        "RT_sem": None, "RT_std": None, "DINOv2G_avg": None, "DINOv2G_std": None, "DINOv2G_sem": None,
    }  # fmt: skip
    return row, {"trial": trial, "views": truth_views}


def build_mochi_twin(out_dir: Path, seed: int = 0) -> dict:
    """Write ``out_dir/MOCHI/data/train-00000-of-00001.parquet`` and the truth file."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder = Path(out_dir) / FOLDER
    (folder / "data").mkdir(parents=True, exist_ok=True)
    rows, truth = [], []
    for condition, count in TRIALS.items():
        positions = balanced_slots(count, seed, zlib.crc32(condition.encode()), 4 if condition == "barense" else 3)
        for index in range(count):
            row, record = render_trial(condition, index, int(positions[index]), seed)
            rows.append(row)
            truth.append(record)
    image_type = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
    floats = ["human_avg", "human_sem", "human_std", "RT_avg", "RT_sem", "RT_std", "DINOv2G_avg", "DINOv2G_std",
              "DINOv2G_sem"]  # fmt: skip
    schema = pa.schema(
        [("dataset", pa.string()), ("condition", pa.string()), ("trial", pa.string()), ("n_objects", pa.int64()),
         ("oddity_index", pa.int64()), ("images", pa.list_(image_type)), ("n_subjects", pa.int64())]
        + [(name, pa.float64()) for name in floats]
    )  # fmt: skip
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), folder / "data" / "train-00000-of-00001.parquet")
    (folder / TRUTH).write_text("".join(json.dumps(t, sort_keys=True) + "\n" for t in truth))
    return {"dataset": FOLDER, "trials": {c: n for c, n in TRIALS.items()}, "photos": []}
