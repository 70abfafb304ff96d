"""Tiny datasets in the real native formats (SPair-71k, FunKPoint, BLINK, MOCHI), written by the tests themselves.

Each writer returns what it wrote (the ground truth the loader tests check against).
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
from PIL import Image

SIZE = (96, 72)
# Five well-separated points per image; keypoint ids are their index as strings.
# (Kept ≥ 16 px from the top: items leave room for a label above each ring.)
SRC_POINTS = [(12.0, 18.0), (80.0, 20.0), (14.0, 60.0), (78.0, 58.0), (47.0, 38.0)]
TRG_POINTS = [(10.5, 20.0), (84.0, 17.0), (20.0, 62.0), (70.0, 55.25), (44.0, 34.0)]


def _jpeg(path: Path, seed: int, size: tuple[int, int] = SIZE) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)).save(path, quality=90)


def write_spair(root: Path, *, hidden_in_target: str = "4") -> dict:
    """``root/SPair-71k`` with 1 category, 3 images, one pair per split; keypoint ``hidden_in_target`` is null there."""
    base = root / "SPair-71k"
    names = ["2008_000001", "2008_000002", "2008_000003"]
    for i, name in enumerate(names):
        _jpeg(base / "JPEGImages" / "cow" / f"{name}.jpg", i)
        mask = Image.new("P", SIZE, 0)
        mask.putpalette([0, 0, 0, 64, 0, 128] + [0] * 762)
        mask.paste(10, (5, 5, 90, 66))
        (base / "Segmentation" / "cow").mkdir(parents=True, exist_ok=True)
        mask.save(base / "Segmentation" / "cow" / f"{name}.png")
        points = SRC_POINTS if i == 0 else TRG_POINTS
        kps = {str(k): list(p) for k, p in enumerate(points)}
        if i > 0:
            kps[hidden_in_target] = None
        (base / "ImageAnnotation" / "cow").mkdir(parents=True, exist_ok=True)
        (base / "ImageAnnotation" / "cow" / f"{name}.json").write_text(json.dumps({
            "filename": f"{name}.jpg", "image_width": SIZE[0], "image_height": SIZE[1], "image_depth": 3,
            "category": "cow", "bndbox": [5, 5, 90, 66], "kps": kps,
        }))  # fmt: skip
    pairs = {}
    for pid, (split, trg) in enumerate((("trn", 1), ("val", 2), ("test", 1)), start=1):
        name = f"{pid:06d}-{names[0]}-{names[trg]}:cow"
        ids = [str(k) for k in range(len(SRC_POINTS)) if str(k) != hidden_in_target]
        record = {
            "pair_id": pid, "filename": name, "src_imname": f"{names[0]}.jpg", "trg_imname": f"{names[trg]}.jpg",
            "src_imsize": [*SIZE, 3], "trg_imsize": [*SIZE, 3], "src_bndbox": [5, 5, 90, 66],
            "trg_bndbox": [5, 5, 90, 66], "src_pose": "Left", "trg_pose": "Left", "category": "cow",
            "src_kps": [list(SRC_POINTS[int(k)]) for k in ids], "trg_kps": [list(TRG_POINTS[int(k)]) for k in ids],
            "kps_ids": ids, "mirror": 0, "viewpoint_variation": 1, "scale_variation": 0, "truncation": 0, "occlusion": 0,
        }  # fmt: skip
        (base / "PairAnnotation" / split).mkdir(parents=True, exist_ok=True)
        (base / "PairAnnotation" / split / f"{name}.json").write_text(json.dumps(record))
        (base / "Layout" / "large").mkdir(parents=True, exist_ok=True)
        (base / "Layout" / "large" / f"{split}.txt").write_text(name + "\n")
        pairs[split] = record
    return pairs


def write_funkpoint(root: Path) -> list[dict]:
    """``root/FunKPoint``: 2 actions × 2 categories, one image each; coordinates normalised."""
    base = root / "FunKPoint"
    rows = []
    for a, action in enumerate(("Scoop", "Brush/Dust")):
        for c, category in enumerate((("spoon", "shovel"), ("brush", "broom"))[a]):
            rel = f"images/n0{a}{c}/0001.jpg"
            _jpeg(base / rel, 10 * a + c)
            points = SRC_POINTS if c == 0 else TRG_POINTS
            row = {
                "image_path": rel,
                "action": action,
                "wnid": f"n0{a}{c}",
                "object_category": category,
                "difficulty": "1",
            }
            for k, (x, y) in enumerate(points, start=1):
                row[f"p{k}_x"], row[f"p{k}_y"] = repr(x / SIZE[0]), repr(y / SIZE[1])
            rows.append(row)
    header = list(rows[0])
    lines = [",".join(header)] + [",".join(str(r[h]) for h in header) for r in rows]
    (base / "labels.csv").write_text("\n".join(lines) + "\n")
    return rows


def blink_row(
    idx: str, images: list[Image.Image | None], answer: str, *, n_choices: int = 4, fmt: str = "JPEG"
) -> dict:
    """One BLINK row with Hugging Face image structs."""
    cells = []
    for k, im in enumerate(images + [None] * (4 - len(images))):
        if im is None:
            cells.append(None)
            continue
        buf = io.BytesIO()
        im.save(buf, format=fmt)
        cells.append({"bytes": buf.getvalue(), "path": f"{idx}_{k}.{fmt.lower()}"})
    letters = "ABCD"[:n_choices]
    return {
        "idx": idx, "question": "Which point corresponds?", "sub_task": "Semantic Correspondence",
        "image_1": cells[0], "image_2": cells[1], "image_3": cells[2], "image_4": cells[3],
        "choices": [f"({c})" for c in letters], "answer": answer,
        "prompt": "Which point is corresponding to the reference point?\n" + "\n".join(f"({c}) Point {c}" for c in letters),
    }  # fmt: skip


def write_blink(root: Path, subtask: str, rows: list[dict]) -> Path:
    """``root/BLINK/<subtask>/val-00000-of-00001.parquet`` holding ``rows``."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder = root / "BLINK" / subtask
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "val-00000-of-00001.parquet"
    image_type = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
    columns = {k: pa.string() for k in ("idx", "question", "sub_task", "answer", "prompt")}
    columns.update({f"image_{k}": image_type for k in range(1, 5)})
    columns["choices"] = pa.list_(pa.string())
    schema = pa.schema([(k, columns[k]) for k in rows[0] if k in columns])
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), path)
    return path


def png_struct(image: Image.Image, path: str) -> dict:
    """A Hugging Face image struct holding PNG bytes."""
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return {"bytes": buf.getvalue(), "path": path}


def mochi_row(trial: str, oddity_index: int, n_objects: int = 3, *, dataset: str = "shapegen", seed: int = 0) -> dict:
    """One MOCHI trial with ``n_objects`` tiny PNGs (the odd one dark, the others light)."""
    rng = np.random.default_rng(seed)
    images = []
    for i in range(n_objects):
        base = 40 if i == oddity_index else 200
        pixels = np.clip(base + rng.integers(-20, 20, (16, 16, 3)), 0, 255).astype(np.uint8)
        images.append(png_struct(Image.fromarray(pixels), f"{trial}_{i}.png"))
    return {
        "dataset": dataset, "condition": "abstract2", "trial": trial, "n_objects": n_objects,
        "oddity_index": oddity_index, "images": images, "n_subjects": 15, "human_avg": 0.8,
        "RT_avg": 4324.7, "DINOv2G_avg": 1.0,
    }  # fmt: skip


def write_mochi(root: Path, rows: list[dict], *, schema_from_rows: bool = False) -> Path:
    """``root/MOCHI/data/train-00000-of-00001.parquet`` holding ``rows`` (MOCHI's columns and types)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder = root / "MOCHI" / "data"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "train-00000-of-00001.parquet"
    if schema_from_rows:  # malformed-input tests write whatever the rows hold
        pq.write_table(pa.Table.from_pylist(rows), path)
        return path
    image_type = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
    schema = pa.schema([
        ("dataset", pa.string()), ("condition", pa.string()), ("trial", pa.string()), ("n_objects", pa.int64()),
        ("oddity_index", pa.int64()), ("images", pa.list_(image_type)), ("n_subjects", pa.int64()),
        ("human_avg", pa.float64()), ("RT_avg", pa.float64()), ("DINOv2G_avg", pa.float64()),
    ])  # fmt: skip
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), path)
    return path


class ShuffledControl:
    """An oracle's answers given to the wrong items, over many seeded permutations (what chance looks like)."""

    def __init__(self, accuracies: np.ndarray, covered: float, chance: float, n: int):
        self.accuracies, self.covered, self.chance, self.n = accuracies, covered, chance, n

    def ok(self) -> bool:
        """Mean accuracy within 0.03 of chance, and chance inside ≥ 90% of the permutations' Wilson 95% CIs."""
        return abs(float(self.accuracies.mean()) - self.chance) < 0.03 and self.covered >= 0.9

    def __str__(self) -> str:
        first = self.accuracies[0]
        return (
            f"seed 0: {round(first * self.n)}/{self.n} = {first:.3f}; over {len(self.accuracies)} permutations: "
            f"mean {self.accuracies.mean():.3f}, chance {self.chance:.3f} inside {self.covered:.0%} of the CIs"
        )


def shuffled_control(
    oracle_letters: list[str], golds: list[str], *, chance: float, permutations: int = 200
) -> ShuffledControl:
    """Score ``oracle_letters`` (the truth's answer per item) against permuted items' golds."""
    from plainsight.scoring import wilson_interval

    letters, golds_arr = np.asarray(oracle_letters), np.asarray(golds)
    accuracies, covered = [], 0
    for seed in range(permutations):
        hits = int((letters[np.random.default_rng(seed).permutation(len(letters))] == golds_arr).sum())
        lo, hi = wilson_interval(hits, len(golds_arr))
        covered += lo <= chance <= hi
        accuracies.append(hits / len(golds_arr))
    return ShuffledControl(np.asarray(accuracies), covered / permutations, chance, len(golds_arr))
