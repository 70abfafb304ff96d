"""Correspondence items from annotated keypoints (SPair-71k, FunKPoint): REF, the gold point and distractors.

REF is a keypoint of the source image that has a counterpart on the target; the gold
point is that counterpart; the three distractors are other visible keypoints of the
target, each at least the minimum distance from the gold and from each other (as in
the paper's examples: the other ear, the nostril, a point on the handle). Gold
letters are balanced across A–D by a seeded shuffle.
"""

from __future__ import annotations

import zlib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from plainsight import render
from plainsight.items import LETTERS, Item, ItemImage, Point
from plainsight.prompts import Prompt
from plainsight.render import marker_radius
from plainsight.tasks.base import SourceLoader, TaskSpec


@dataclass(frozen=True)
class KeypointPair:
    """Two annotated images of corresponding keypoints, whatever the source format."""

    id: str
    root: Path
    src_path: str
    trg_path: str
    src_size: tuple[int, int]
    trg_size: tuple[int, int]
    src_kps: dict[str, Point]  # keypoints with a counterpart on the target, by id
    trg_kps: dict[str, Point]  # the counterparts, same ids
    trg_pool: dict[str, Point]  # every visible target keypoint: the distractor candidates
    object_size: float  # the target object's size in pixels (longer side of its box)
    prompt: str
    prompt_key: str
    option_texts: tuple[str, ...]
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class KeypointDifficulty:
    """How items are drawn from a pair; recorded in each item's meta."""

    points_per_pair: int = 1
    min_distance: float = 0.1  # fraction of the target object's size, between any two candidates (PCK@0.1)
    min_marker_gap: float = 5.0  # ... and at least this many marker radii, so no label box covers another ring
    label_room: float = 4.5  # marker radii kept free above each point, so its label goes above the ring
    margin: float = 0.02  # fraction of the shorter side kept clear of the border


def min_distance_px(pair: KeypointPair, difficulty: KeypointDifficulty) -> float:
    return max(difficulty.min_distance * pair.object_size, difficulty.min_marker_gap * marker_radius(pair.trg_size))


def _inside(p: Point, size: tuple[int, int], difficulty: KeypointDifficulty) -> bool:
    m = difficulty.margin * min(size)
    top = max(m, difficulty.label_room * marker_radius(size))
    return m <= p[0] <= size[0] - 1 - m and top <= p[1] <= size[1] - 1 - m


def _far(p: Point, others: list[Point], dist: float) -> bool:
    return all(np.hypot(p[0] - o[0], p[1] - o[1]) >= dist for o in others)


def pick_candidates(
    pair: KeypointPair, rng: np.random.Generator, difficulty: KeypointDifficulty
) -> list[tuple[str, list[str]]]:
    """Up to ``points_per_pair`` (REF id, three distractor ids) choices for one pair."""
    dist = min_distance_px(pair, difficulty)
    refs = [k for k in sorted(pair.src_kps) if k in pair.trg_kps
            and _inside(pair.src_kps[k], pair.src_size, difficulty)
            and _inside(pair.trg_kps[k], pair.trg_size, difficulty)]  # fmt: skip
    chosen: list[tuple[str, list[str]]] = []
    for idx in rng.permutation(len(refs)):
        if len(chosen) == difficulty.points_per_pair:
            break
        ref = refs[int(idx)]
        gold = pair.trg_kps[ref]
        pool = [k for k in sorted(pair.trg_pool) if k != ref and _inside(pair.trg_pool[k], pair.trg_size, difficulty)]
        picked: list[str] = []
        for j in rng.permutation(len(pool)):
            cand = pool[int(j)]
            if _far(pair.trg_pool[cand], [gold] + [pair.trg_pool[p] for p in picked], dist):
                picked.append(cand)
            if len(picked) == 3:
                break
        if len(picked) == 3:
            chosen.append((ref, picked))
    return chosen


def balanced_slots(count: int, seed: int, salt: int, n_choices: int = 4) -> np.ndarray:
    """Gold positions 0..n_choices−1, each used ⌊count/n⌋ or ⌈count/n⌉ times, in seeded order."""
    return np.random.default_rng([seed, salt]).permutation(np.arange(count) % n_choices)


def build_keypoint_items(
    pairs: list[KeypointPair], *, task: str, seed: int = 0, difficulty: KeypointDifficulty = KeypointDifficulty()
) -> list[Item]:
    """Items for every pair, in pair order, gold letters balanced by ``seed``."""
    drafts = []
    for pair in pairs:
        rng = np.random.default_rng([seed, zlib.crc32(pair.id.encode())])
        for j, (ref, distractors) in enumerate(pick_candidates(pair, rng, difficulty)):
            drafts.append((pair, j, ref, distractors))
    letters = LETTERS[:4]
    items = []
    for (pair, j, ref, distractors), slot in zip(drafts, balanced_slots(len(drafts), seed, zlib.crc32(task.encode()))):
        ids = list(distractors)
        ids.insert(int(slot), ref)
        points = {letter: (pair.trg_kps[ref] if kp == ref else pair.trg_pool[kp]) for letter, kp in zip(letters, ids)}
        items.append(
            Item(
                id=f"{pair.id}-p{j}",
                task=task,
                images=(
                    ItemImage(pair.src_path, pair.src_size, {"REF": pair.src_kps[ref]}, root=pair.root),
                    ItemImage(pair.trg_path, pair.trg_size, points, root=pair.root),
                ),
                choices=letters,
                gold=letters[int(slot)],
                prompt=pair.prompt,
                prompt_id=pair.prompt_key,
                option_texts=pair.option_texts,
                meta={
                    **pair.meta,
                    "ref_keypoint": ref,
                    "keypoints": dict(zip(letters, ids)),
                    "min_distance_px": round(min_distance_px(pair, difficulty), 2),
                    "difficulty": asdict(difficulty),
                },
            )
        )
    return items


def correspondence_task(task_id: str, prompt: Prompt, sources: dict[str, SourceLoader]) -> TaskSpec:
    """A point-correspondence task: REF on one image, A–D drawn on the other, the nearest-feature readout."""
    return TaskSpec(id=task_id, family="correspondence", prompt_id=prompt.id, readout="correspondence",
                    sources=sources, render=render.draw_item_points)  # fmt: skip
