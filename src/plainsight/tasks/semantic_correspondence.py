"""Semantic correspondence: which of A–D on another instance of the category is REF's part.

Sources, in order: SPair-71k (``test`` split; REF a keypoint visible in both images,
gold its counterpart, distractors other visible target keypoints at PCK@0.1 distance
or more), then BLINK ``Semantic_Correspondence`` val (markers drawn, stored prompt and
answer; coordinates recovered from the pixels for the vision readout).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from plainsight import prompts
from plainsight.data.spair import load_pairs
from plainsight.items import Item
from plainsight.tasks.base import LoadRequest, register
from plainsight.tasks.keypoint_items import KeypointDifficulty, KeypointPair, build_keypoint_items, correspondence_task
from plainsight.tasks.sources import blink_source

TASK_ID = "semantic_correspondence"
PROMPT = prompts.BLINK_SEMANTIC_CORRESPONDENCE
BLINK_SUBTASK = "Semantic_Correspondence"


def load_spair_items(data_root: Path, *, seed: int = 0, split: str = "test", **overrides: float) -> list[Item]:
    """Items from SPair-71k pairs of ``split``; ``overrides`` replace KeypointDifficulty fields."""
    pairs = []
    for p in load_pairs(data_root, split):
        pairs.append(
            KeypointPair(
                id=p.name.replace(":", "_"),
                root=p.root,
                src_path=p.src_path,
                trg_path=p.trg_path,
                src_size=p.src_size,
                trg_size=p.trg_size,
                src_kps=p.src_kps,
                trg_kps=p.trg_kps,
                trg_pool=p.trg_all_kps,
                object_size=max(p.trg_bbox[2] - p.trg_bbox[0], p.trg_bbox[3] - p.trg_bbox[1]),
                prompt=PROMPT.text,
                prompt_key=PROMPT.key,
                option_texts=PROMPT.options,
                meta={
                    "source": "spair",
                    "pair": p.name,
                    "category": p.category,
                    "split": split,
                    "trg_bbox": list(p.trg_bbox),
                    **p.info,
                },  # fmt: skip
            )
        )
    return build_keypoint_items(pairs, task=TASK_ID, seed=seed, difficulty=replace(KeypointDifficulty(), **overrides))


def _spair(root: Path, req: LoadRequest) -> list[Item]:
    return load_spair_items(root, seed=req.seed)


SOURCES = {"spair": _spair, "blink": blink_source(BLINK_SUBTASK, TASK_ID)}


SPEC = register(correspondence_task(TASK_ID, PROMPT, SOURCES))
