"""The embedded depth twins: rendered rooms with exact depth, as CV-Bench Depth items and an NYUv2 training set.

A scene is a textured floor and back wall with four objects (crate, ball, barrel, cone,
pillar; each noun at most once) standing on the floor or on pedestals, seen from a
standing height through a light haze (aerial perspective). The ray caster gives the
depth of every pixel. CV-Bench items pick two objects whose
depths differ clearly (object median depth ratio ≥ ``MIN_RATIO``, and the mean true
depth inside their boxes orders them the same way), outline the first in red and the
second in blue, and ask which is closer with the CV-Bench template; which object is red
is balanced so the answer is A for half the items. Half the items are ones the room
layout alone gets wrong (the NYUv2 twin's mean depth map, what a probe trained on
shuffled targets learns), so the layout prior scores 0.5 and a probe must read the picture. ``plainsight_truth.jsonl`` keeps the
true depths. Further scenes form ``nyuv2/nyu_depth_v2_labeled.mat`` (v7.3 layout, h5py
axis order) with ``splits.mat`` (1-based), the probe's training set.
"""

from __future__ import annotations

import json
import zlib
from pathlib import Path

import numpy as np
from PIL import Image

from plainsight import prompts
from plainsight.data.cvbench import FOLDER as CVBENCH
from plainsight.data.nyuv2 import FOLDER as NYU
from plainsight.data.nyuv2 import LABELED, SPLITS
from plainsight.embedded.raycast import Camera, Material, Primitive, render
from plainsight.embedded.scenes import BACKGROUND_PHOTOS, TEXTURE_PHOTOS, random_material
from plainsight.render import BOX_COLORS, draw_boxes
from plainsight.tasks.keypoint_items import balanced_slots

SIZE = (160, 120)
ITEM_SCENES = 160
ITEMS_PER_SCENE = 2
NYU_SCENES = 48
NYU_TRAIN = 36
MIN_RATIO = 1.2
MIN_PIXELS = 100
MIN_BOX_SIDE = 8
TRUTH = "plainsight_truth.jsonl"
NOUNS = ("crate", "ball", "barrel", "cone", "pillar")


def _object(noun: str, x: float, z: float, s: float, base: float, mat: Material) -> Primitive:
    """The object standing at height ``base`` (0 = the floor, more = on a pedestal)."""
    if noun == "crate":
        return Primitive("box", (x, base + s, z), (s, s, s), mat)
    if noun == "ball":
        return Primitive("sphere", (x, base + s, z), (s, s, s), mat)
    if noun == "barrel":
        return Primitive("frustum", (x, base + s * 1.2, z), (s * 0.8, s * 1.2, s * 0.8), mat, top=1.0)
    if noun == "cone":
        return Primitive("frustum", (x, base + s * 1.3, z), (s, s * 1.3, s), mat, top=0.0)
    return Primitive("box", (x, base + s * 2.0, z), (s * 0.45, s * 2.0, s * 0.45), mat)  # pillar


def scene(rng: np.random.Generator, size: tuple[int, int] = SIZE) -> dict:
    """One room: picture, depth (metres along the view axis), object index map, and the objects' nouns.

    Some objects stand on pedestals, so a closer object is not always lower in the picture.
    """
    floor = Primitive("box", (0.0, -0.05, -3.0), (8.0, 0.05, 8.0), random_material(rng))
    wall = Primitive("box", (0.0, 3.0, -float(rng.uniform(5.5, 8.0))), (8.0, 3.0, 0.05), random_material(rng))
    nouns = [NOUNS[i] for i in rng.permutation(len(NOUNS))[:4]]
    objects, pedestals, placed = [], [], []
    for noun in nouns:
        for _ in range(50):
            x, z, s = float(rng.uniform(-1.6, 1.6)), float(rng.uniform(-4.5, 1.5)), float(rng.uniform(0.22, 0.45))
            if all(np.hypot(x - px, z - pz) > s + ps + 0.25 for px, pz, ps in placed):
                base = float(rng.uniform(0.3, 1.8)) if rng.uniform() < 0.5 else 0.0
                placed.append((x, z, s))
                objects.append(_object(noun, x, z, s, base, random_material(rng)))
                if base > 0:
                    pedestals.append(Primitive("box", (x, base / 2, z), (0.06, base / 2, 0.06), random_material(rng)))
                break
    camera = Camera((float(rng.uniform(-0.4, 0.4)), float(rng.uniform(1.2, 1.7)), 4.2),
                    (0.0, float(rng.uniform(0.2, 0.5)), -1.0), size, fov_y=np.deg2rad(float(rng.uniform(45, 55))))  # fmt: skip
    image, depth, index = render([*objects, floor, wall, *pedestals], camera, np.zeros((size[1], size[0], 3)))
    index = np.where(index < len(objects), index, -1)  # object i keeps index i; floor, wall, pedestals → −1
    # Aerial perspective: surfaces fade towards the haze colour with distance (a cue a single picture carries).
    haze = np.asarray(rng.uniform(0.65, 0.9, 3))
    keep = np.exp(-float(rng.uniform(0.15, 0.25)) * np.where(np.isfinite(depth), depth, 50.0))[..., None]
    image = np.clip(np.round(image * keep + 255 * haze * (1 - keep)), 0, 255).astype(np.uint8)
    return {"image": image, "depth": depth, "index": index, "nouns": nouns[: len(objects)]}


def _box(mask: np.ndarray) -> tuple[int, int, int, int]:
    ys, xs = np.nonzero(mask)
    return int(xs.min()), int(ys.min()), int(xs.max()), int(ys.max())


def depth_pairs(sc: dict, prior: np.ndarray) -> list[tuple[int, int, dict]]:
    """Object pairs (closer, farther, truth) that make a clear depth question.

    ``prior`` is the mean depth map of the training scenes: what a probe that learnt only
    the room layout would predict; each pair records whether that prior orders it right.
    """
    w = sc["depth"].shape[1]
    stats = []
    for i in range(len(sc["nouns"])):
        mask = sc["index"] == i
        if mask.sum() < MIN_PIXELS:
            stats.append(None)
            continue
        box = _box(mask)
        if min(box[2] - box[0], box[3] - box[1]) + 1 < MIN_BOX_SIDE:
            stats.append(None)
            continue
        centre_x = (box[0] + box[2]) / 2
        if not (w * 0.2 <= centre_x <= w * 0.8):  # keep boxes where centre-cropping encoders still see them
            stats.append(None)
            continue
        x1, y1, x2, y2 = box
        stats.append({"box": box, "median": float(np.median(sc["depth"][mask])),
                      "box_mean": float(np.mean(sc["depth"][y1 : y2 + 1, x1 : x2 + 1])),
                      "prior_mean": float(np.mean(prior[y1 : y2 + 1, x1 : x2 + 1]))})  # fmt: skip
    pairs = []
    for i in range(len(stats)):
        for j in range(len(stats)):
            a, b = stats[i], stats[j]
            if i == j or a is None or b is None or b["median"] < a["median"] * MIN_RATIO:
                continue
            if b["box_mean"] <= a["box_mean"] * 1.05:
                continue  # the box mean must order them too, or a box-averaging readout cannot be right
            pairs.append((i, j, {"closer": a, "farther": b, "prior_right": a["prior_mean"] < b["prior_mean"]}))
    return pairs


def build_cvbench_twin(out_dir: Path, seed: int = 0) -> dict:
    """Write ``out_dir/CV-Bench`` (test_3d.jsonl + img/3D/depth/*.png) and its truth file."""
    root = Path(out_dir) / CVBENCH
    (root / "img" / "3D" / "depth").mkdir(parents=True, exist_ok=True)
    prior = layout_prior(Path(out_dir))
    by_prior: dict[bool, list] = {True: [], False: []}
    for s in range(ITEM_SCENES):
        rng = np.random.default_rng([seed, zlib.crc32(b"cvbench-depth"), s])
        sc = scene(rng)
        pairs = depth_pairs(sc, prior)
        taken = 0
        for k in rng.permutation(len(pairs)):
            closer, farther, stats = pairs[int(k)]
            if taken < ITEMS_PER_SCENE and len(by_prior[stats["prior_right"]]) < ITEMS_PER_SCENE * ITEM_SCENES:
                by_prior[stats["prior_right"]].append((s, sc, pairs[int(k)]))
                taken += 1
    # As many items that the layout prior gets right as items it gets wrong: the layout alone scores 0.5.
    half = min(len(by_prior[True]), len(by_prior[False]))
    drafts = sorted(by_prior[True][:half] + by_prior[False][:half], key=lambda d: (d[0], d[2][0], d[2][1]))
    template = prompts.CVBENCH_DEPTH
    rows, truth = [], []
    for n, ((s, sc, (closer, farther, stats)), slot) in enumerate(
        zip(drafts, balanced_slots(len(drafts), seed, 0xDE, 2))
    ):
        red, blue = (closer, farther) if slot == 0 else (farther, closer)
        red_stats, blue_stats = (
            (stats["closer"], stats["farther"]) if slot == 0 else (stats["farther"], stats["closer"])
        )
        filename = f"img/3D/depth/plainsight_{n:04d}.png"
        picture = draw_boxes(Image.fromarray(sc["image"]), {"A": red_stats["box"], "B": blue_stats["box"]},
                             {"A": BOX_COLORS["red"], "B": BOX_COLORS["blue"]})  # fmt: skip
        picture.save(root / filename)
        a, b = sc["nouns"][red], sc["nouns"][blue]
        question = template.text.format(A=a, B=b).split("\n")[0]
        rows.append({
            "idx": n, "type": "3D", "task": "Depth", "question": question, "choices": [a, b],
            "answer": "(A)" if slot == 0 else "(B)", "prompt": template.text.format(A=a, B=b),
            "filename": filename, "source": "plainsight-render", "source_dataset": "plainsight_rooms",
            "source_filename": f"scene_{s:03d}", "bbox": [list(map(float, red_stats["box"])), list(map(float, blue_stats["box"]))],
        })  # fmt: skip
        truth.append({"idx": n, "box_mean_depth": [red_stats["box_mean"], blue_stats["box_mean"]],
                      "object_median_depth": [red_stats["median"], blue_stats["median"]],
                      "layout_prior_right": stats["prior_right"]})  # fmt: skip
    (root / "test_3d.jsonl").write_text("".join(json.dumps(r, sort_keys=True) + "\n" for r in rows))
    (root / TRUTH).write_text("".join(json.dumps(t, sort_keys=True) + "\n" for t in truth))
    return {"dataset": CVBENCH, "items": {"depth": len(rows)},
            "photos": sorted(set(TEXTURE_PHOTOS) | set(BACKGROUND_PHOTOS))}  # fmt: skip


def _fixed_mat_header(path: Path) -> None:
    """savemat stamps the creation time into the 116-byte text header; a fixed text keeps rebuilds identical."""
    data = bytearray(path.read_bytes())
    data[:116] = b"MATLAB 5.0 MAT-file, written by plainsight fixtures build".ljust(116)
    path.write_bytes(bytes(data))


def layout_prior(out_dir: Path) -> np.ndarray:
    """Mean valid depth of the NYUv2 twin's training frames (built first): the room layout on average."""
    from plainsight.data.nyuv2 import open_nyuv2

    nyu = open_nyuv2(out_dir)
    total, count = np.zeros(SIZE[::-1]), np.zeros(SIZE[::-1])
    for index in nyu.train:
        depth = nyu.frame(int(index))[1]
        total += np.where(depth > 0, depth, 0.0)
        count += depth > 0
    return total / np.maximum(count, 1)


def build_nyuv2_twin(out_dir: Path, seed: int = 0) -> dict:
    """Write ``out_dir/NYUv2`` (labelled .mat in h5py axis order, splits.mat 1-based)."""
    import h5py
    import scipy.io

    root = Path(out_dir) / NYU
    root.mkdir(parents=True, exist_ok=True)
    w, h = SIZE
    images = np.zeros((NYU_SCENES, 3, w, h), dtype=np.uint8)
    depths = np.zeros((NYU_SCENES, w, h), dtype=np.float32)
    raw = np.zeros_like(depths)
    for s in range(NYU_SCENES):
        rng = np.random.default_rng([seed, zlib.crc32(b"nyuv2"), s])
        sc = scene(rng)
        d = np.round(np.where(np.isfinite(sc["depth"]), sc["depth"], 0.0), 3).astype(np.float32)
        images[s] = sc["image"].transpose(2, 1, 0)  # (H, W, 3) → MATLAB's column-major order as h5py reads it
        depths[s] = d.T
        holes = rng.uniform(size=d.shape) < 0.05  # the raw Kinect depth has holes (0 = no measurement)
        raw[s] = np.where(holes, 0.0, d).T
    with h5py.File(root / LABELED, "w", track_order=False) as f:
        for key, arr in (("images", images), ("depths", depths), ("rawDepths", raw)):
            f.create_dataset(key, data=arr, compression="gzip", compression_opts=6, shuffle=True, track_times=False)
    order = np.random.default_rng([seed, zlib.crc32(b"nyuv2-split")]).permutation(NYU_SCENES) + 1
    scipy.io.savemat(root / SPLITS, {"trainNdxs": np.sort(order[:NYU_TRAIN])[:, None].astype(np.float64),
                                     "testNdxs": np.sort(order[NYU_TRAIN:])[:, None].astype(np.float64)})  # fmt: skip
    _fixed_mat_header(root / SPLITS)
    return {"dataset": NYU, "frames": NYU_SCENES, "train": NYU_TRAIN, "photos": sorted(set(TEXTURE_PHOTOS))}
