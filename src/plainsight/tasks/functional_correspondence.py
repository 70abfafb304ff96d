"""Functional correspondence: which of A–D on a different object serves REF's function in the same action.

Sources, in order: FunKPoint (each row is paired with a row of the same action on an
object of another category; REF one of its five functional keypoints, gold the
keypoint with the same index, distractors the target's other keypoints), then BLINK
``Functional_Correspondence`` val (markers drawn, stored prompt and answer).
"""

from __future__ import annotations

import zlib
from collections import defaultdict
from dataclasses import replace
from pathlib import Path

import numpy as np

from plainsight import prompts
from plainsight.data.funkpoint import DEFAULT_COLUMNS, FunKPointColumns, FunKPointRow, load_rows
from plainsight.items import Item
from plainsight.tasks.base import LoadRequest, register
from plainsight.tasks.keypoint_items import KeypointDifficulty, KeypointPair, build_keypoint_items, correspondence_task
from plainsight.tasks.sources import blink_source

TASK_ID = "functional_correspondence"
PROMPT = prompts.FUNCTIONAL_CORRESPONDENCE
BLINK_SUBTASK = "Functional_Correspondence"


def pair_rows(rows: list[FunKPointRow], seed: int) -> list[tuple[FunKPointRow, FunKPointRow]]:
    """Each row as a source, with a seeded target row of the same action and another category."""
    by_action: dict[str, list[FunKPointRow]] = defaultdict(list)
    for row in rows:
        by_action[row.action].append(row)
    pairs = []
    for row in rows:
        others = [r for r in by_action[row.action] if r.category != row.category]
        if not others:
            continue
        rng = np.random.default_rng([seed, zlib.crc32(f"{row.image_path}|{row.action}".encode())])
        pairs.append((row, others[int(rng.integers(len(others)))]))
    return pairs


def _image_key(image_path: str) -> str:
    path = Path(image_path)
    return f"{path.parent.name}_{path.stem}" if path.parent.name else path.stem


def _point_extent(points: tuple[tuple[float, float], ...]) -> float:
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    return max(max(xs) - min(xs), max(ys) - min(ys))


def load_funkpoint_items(
    data_root: Path, *, seed: int = 0, columns: FunKPointColumns = DEFAULT_COLUMNS, **overrides: float
) -> list[Item]:
    """Items from FunKPoint rows; ``overrides`` replace KeypointDifficulty fields."""
    pairs = []
    for src, trg in pair_rows(load_rows(data_root, columns), seed):
        ids = [str(i) for i in range(1, len(src.points) + 1)]
        trg_kps = dict(zip(ids, trg.points))
        pairs.append(
            KeypointPair(
                # Folder and stem: images of different tools share file names (pst_spoon/0003.jpg, pst_ladle/0003.jpg).
                id=f"{_image_key(src.image_path)}-{_image_key(trg.image_path)}-{src.action.replace('/', '_')}",
                root=src.root,
                src_path=src.image_path,
                trg_path=trg.image_path,
                src_size=src.size,
                trg_size=trg.size,
                src_kps=dict(zip(ids, src.points)),
                trg_kps=trg_kps,
                trg_pool=trg_kps,
                object_size=_point_extent(trg.points),
                prompt=PROMPT.text.format(action=src.action),
                prompt_key=PROMPT.key,
                option_texts=PROMPT.options,
                meta={
                    "source": "funkpoint",
                    "action": src.action,
                    "src_category": src.category,
                    "trg_category": trg.category,
                    "src_line": src.line,
                    "trg_line": trg.line,
                },  # fmt: skip
            )
        )
    return build_keypoint_items(pairs, task=TASK_ID, seed=seed, difficulty=replace(KeypointDifficulty(), **overrides))


def _funkpoint(root: Path, req: LoadRequest) -> list[Item]:
    return load_funkpoint_items(root, seed=req.seed)


SOURCES = {"funkpoint": _funkpoint, "blink": blink_source(BLINK_SUBTASK, TASK_ID)}


SPEC = register(correspondence_task(TASK_ID, PROMPT, SOURCES))
