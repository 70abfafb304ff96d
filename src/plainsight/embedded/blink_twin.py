"""The embedded BLINK twin: our SPair and FunKPoint twin items with their markers drawn, in BLINK's parquet format.

It exists to test the BLINK path end to end (loader, stored prompt and answer,
coordinate recovery) on items whose truth is known: each subtask folder also holds
``plainsight_truth.jsonl`` with the exact marker positions (a real BLINK folder has
none). Images are JPEG, every fifth one PNG, because BLINK's bytes are either.
Must run after the SPair and FunKPoint builders (it reads their output).
"""

from __future__ import annotations

import io
import json
from pathlib import Path

from PIL import Image

from plainsight.data.blink import FOLDER, SPLIT
from plainsight.items import Item
from plainsight.render import draw_item_points

ITEMS_PER_SUBTASK = 60
JPEG_QUALITY = 90
TRUTH = "plainsight_truth.jsonl"


def _encode(image: Image.Image, n: int) -> dict:
    buf = io.BytesIO()
    if n % 5 == 4:
        image.save(buf, format="PNG")
        ext = "png"
    else:
        image.save(buf, format="JPEG", quality=JPEG_QUALITY)
        ext = "jpg"
    return {"bytes": buf.getvalue(), "path": f"{n}.{ext}"}


def write_subtask(out_dir: Path, subtask: str, items: list[Item]) -> int:
    """Write ``out_dir/BLINK/<subtask>/val-00000-of-00001.parquet`` and its truth file; returns the row count."""
    rows, truth = [], []
    for n, item in enumerate(items):
        drawn = draw_item_points(item, item.load_images())
        idx = f"{SPLIT}_{subtask}_{n + 1}"
        rows.append({
            "idx": idx, "question": item.prompt.split("\n(A)")[0], "sub_task": subtask.replace("_", " "),
            "image_1": _encode(drawn[0], 2 * n), "image_2": _encode(drawn[1], 2 * n + 1), "image_3": None,
            "image_4": None, "choices": [f"({c})" for c in item.choices], "answer": f"({item.gold})",
            "prompt": item.prompt, "explanation": "",
        })  # fmt: skip
        truth.append({"idx": idx, "item": item.id, "points": [dict(im.points) for im in item.images]})
    return write_rows(out_dir, subtask, rows, truth)


def write_rows(out_dir: Path, subtask: str, rows: list[dict], truth: list[dict]) -> int:
    """BLINK's val parquet for one subtask (its columns and types) and our truth file beside it."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder = Path(out_dir) / FOLDER / subtask
    folder.mkdir(parents=True, exist_ok=True)
    image_type = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
    schema = pa.schema([
        ("idx", pa.string()), ("question", pa.string()), ("sub_task", pa.string()), ("image_1", image_type),
        ("image_2", image_type), ("image_3", image_type), ("image_4", image_type), ("choices", pa.list_(pa.string())),
        ("answer", pa.string()), ("prompt", pa.string()), ("explanation", pa.string()),
    ])  # fmt: skip
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), folder / f"{SPLIT}-00000-of-00001.parquet")
    (folder / TRUTH).write_text("".join(json.dumps(t, sort_keys=True) + "\n" for t in truth))
    return len(rows)


def _spread(items: list[Item]) -> list[Item]:
    """ITEMS_PER_SUBTASK items evenly spaced through the list, so every category and action is represented."""
    if len(items) <= ITEMS_PER_SUBTASK:
        return items
    return [items[round(i * (len(items) - 1) / (ITEMS_PER_SUBTASK - 1))] for i in range(ITEMS_PER_SUBTASK)]


def build_blink_twin(out_dir: Path, seed: int = 0) -> dict:
    """BLINK-format Semantic_ and Functional_Correspondence from the twins already under ``out_dir``."""
    from plainsight.tasks.functional_correspondence import load_funkpoint_items
    from plainsight.tasks.semantic_correspondence import load_spair_items

    sources = {
        "Semantic_Correspondence": load_spair_items(Path(out_dir), seed=seed),
        "Functional_Correspondence": load_funkpoint_items(Path(out_dir), seed=seed),
    }
    counts = {name: write_subtask(out_dir, name, _spread(items)) for name, items in sources.items()}
    return {"dataset": FOLDER, "rows": counts, "photos": []}
