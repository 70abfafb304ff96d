"""The embedded BLINK Art_Style twin: packaged photos painted in procedural styles, in BLINK's parquet format.

Each item is a reference painting (photo crop P in style S), a candidate in the same style
S showing another photo, and a candidate showing the *same crop P* in another style. Only
style separates the candidates: a readout of content (colours, layout) picks the wrong
one. Styles come from :mod:`plainsight.embedded.styles`, which keeps each photo's
palette on purpose. Every ordered pair of styles (reference style, distractor style) is
used equally often, and the answer is balanced between (A) and (B).
``BLINK/Art_Style/plainsight_truth.jsonl`` records each image's photo, crop and style.
"""

from __future__ import annotations

import io
import zlib
from itertools import permutations
from pathlib import Path

import numpy as np
from PIL import Image

from plainsight import prompts
from plainsight.data.blink import SPLIT
from plainsight.embedded.blink_twin import write_rows
from plainsight.embedded.photos import PHOTOS
from plainsight.embedded.styles import STYLES, stylise
from plainsight.tasks.keypoint_items import balanced_slots

SUBTASK = "Art_Style"
ITEMS_PER_STYLE_PAIR = 4  # × 30 ordered pairs of the 6 styles = 120 items
SIZES = ((160, 120), (144, 144), (120, 160))
JPEG_QUALITY = 88
CONTENT_PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "camera", "gravel", "immunohistochemistry", "china",
                  "flower", "grace_hopper")  # fmt: skip


def _crop(photo: str, size: tuple[int, int], rng: np.random.Generator) -> tuple[np.ndarray, list[int]]:
    """A random crop of ``photo`` with the aspect of ``size`` (at least 60% of the largest such crop), resized to it."""
    image = Image.fromarray(PHOTOS[photo].load())
    aspect = size[0] / size[1]
    full_w = min(image.width, image.height * aspect)
    scale = rng.uniform(0.6, 1.0)
    w, h = full_w * scale, full_w * scale / aspect
    x0, y0 = rng.uniform(0, image.width - w), rng.uniform(0, image.height - h)
    box = [round(x0), round(y0), round(x0 + w), round(y0 + h)]
    return np.asarray(image.crop(tuple(box)).resize(size, Image.Resampling.LANCZOS)), box


def _jpeg(image: np.ndarray, path: str) -> dict:
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="JPEG", quality=JPEG_QUALITY)
    return {"bytes": buf.getvalue(), "path": path}


def build_art_style_twin(out_dir: Path, seed: int = 0) -> dict:
    """Write ``out_dir/BLINK/Art_Style/val-00000-of-00001.parquet`` and its truth file."""
    pairs = [pair for pair in permutations(STYLES, 2) for _ in range(ITEMS_PER_STYLE_PAIR)]
    golds = balanced_slots(len(pairs), seed, zlib.crc32(SUBTASK.encode()), 2)
    prompt = prompts.BLINK_ART_STYLE
    rows, truth, used = [], [], set()
    for n, ((style, other_style), gold) in enumerate(zip(pairs, golds)):
        rng = np.random.default_rng([seed, zlib.crc32(SUBTASK.encode()), n])
        photo, other_photo = rng.choice(len(CONTENT_PHOTOS), size=2, replace=False)
        photo, other_photo = CONTENT_PHOTOS[photo], CONTENT_PHOTOS[other_photo]
        size = SIZES[int(rng.integers(len(SIZES)))]
        content, box = _crop(photo, size, rng)
        other_content, other_box = _crop(other_photo, size, rng)
        reference = stylise(content, style, rng)
        same_style = stylise(other_content, style, rng)
        same_content = stylise(content, other_style, rng)
        candidates = [same_style, same_content] if gold == 0 else [same_content, same_style]
        described = [(photo, box, other_style), (other_photo, other_box, style)]
        if gold == 0:
            described.reverse()
        idx = f"{SPLIT}_{SUBTASK}_{n + 1}"
        rows.append({
            "idx": idx, "question": prompt.text.split("\nSelect")[0], "sub_task": "Art Style",
            "image_1": _jpeg(reference, f"{idx}_1.jpg"), "image_2": _jpeg(candidates[0], f"{idx}_2.jpg"),
            "image_3": _jpeg(candidates[1], f"{idx}_3.jpg"), "image_4": None, "choices": list(prompt.options),
            "answer": f"({'AB'[gold]})", "prompt": prompt.text, "explanation": "",
        })  # fmt: skip
        truth.append({
            "idx": idx,
            "images": [{"photo": p, "crop": b, "style": s} for p, b, s in [(photo, box, style), *described]],
        })  # fmt: skip
        used.update((photo, other_photo))
    count = write_rows(out_dir, SUBTASK, rows, truth)
    return {"dataset": f"BLINK/{SUBTASK}", "rows": count, "photos": sorted(used)}
