"""Low-level matching: which of A–D on the second image is REF's point after a viewpoint or lighting change.

Items come from HPatches sequences: REF is a distinctive (corner-like) point of
image 1, the gold point is exactly H_1_k · REF on image k, and the three distractors
are other distinctive points of image k, each at least ``min_distance`` from the
gold and from each other. Gold letters are balanced across A–D by a seeded shuffle.
"""

from __future__ import annotations

import zlib
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from PIL import Image

from plainsight import prompts
from plainsight.data.hpatches import HPatchesPair, load_pairs
from plainsight.errors import DataError
from plainsight.geometry import apply_homography
from plainsight.items import LETTERS, Item, ItemImage
from plainsight.tasks.base import LoadRequest, SourceLoader, register
from plainsight.tasks.keypoint_items import balanced_slots, correspondence_task
from plainsight.tasks.sources import blink_source

TASK_ID = "low_level_matching"
PROMPT = prompts.BLINK_VISUAL_CORRESPONDENCE


@dataclass(frozen=True)
class MatchingDifficulty:
    """How items are drawn from a pair; recorded in each item's meta."""

    points_per_pair: int = 3
    min_distance: float = 0.05  # fraction of the target image's diagonal, between any two candidates
    margin: float = 0.06  # fraction of the shorter side kept clear of the border
    candidates: int = 40  # strongest corners considered per image
    nearest: int = 5  # distractors are drawn from this many distinctive points nearest the gold


DEFAULT_DIFFICULTY = MatchingDifficulty()


def corner_points(gray: np.ndarray, count: int, *, margin: int, nms: int = 7) -> np.ndarray:
    """The ``count`` strongest Shi–Tomasi corners (x, y), non-max suppressed, away from the border."""
    gy, gx = np.gradient(gray.astype(np.float64))

    def box(a: np.ndarray, k: int = 5) -> np.ndarray:
        """k×k mean filter through an integral image (edge-padded)."""
        padded = np.pad(a, k // 2, mode="edge")
        integral = np.pad(padded.cumsum(0).cumsum(1), ((1, 0), (1, 0)))
        return (integral[k:, k:] - integral[:-k, k:] - integral[k:, :-k] + integral[:-k, :-k]) / (k * k)

    sxx, syy, sxy = box(gx * gx), box(gy * gy), box(gx * gy)
    trace_half = (sxx + syy) / 2
    response = trace_half - np.sqrt(((sxx - syy) / 2) ** 2 + sxy**2)  # the smaller eigenvalue
    local_max = sliding_window_view(np.pad(response, nms // 2, mode="constant"), (nms, nms)).max(axis=(-1, -2))
    keep = (response == local_max) & (response > 0)
    h, w = gray.shape
    keep[:margin, :] = keep[h - margin :, :] = False
    keep[:, :margin] = keep[:, w - margin :] = False
    ys, xs = np.nonzero(keep)
    order = np.argsort(-response[ys, xs], kind="stable")[:count]
    return np.stack([xs[order], ys[order]], axis=1).astype(np.float64)


def _gray(pair_root: Path, rel: str) -> np.ndarray:
    """Decode an image as grayscale; a corrupt or truncated file raises DataError naming it."""
    try:
        with Image.open(pair_root / rel) as im:
            im.load()
            return np.asarray(im.convert("L"), dtype=np.float64)
    except (OSError, SyntaxError) as exc:
        raise DataError(f"{pair_root / rel}: cannot decode image ({exc})") from None


def _far_from(p: np.ndarray, others: list[np.ndarray], min_dist: float) -> bool:
    return all(np.hypot(*(p - o)) >= min_dist for o in others)


def pair_points(
    pair: HPatchesPair, rng: np.random.Generator, difficulty: MatchingDifficulty
) -> list[tuple[np.ndarray, np.ndarray, list[np.ndarray]]]:
    """(REF on image 1, gold on image k, three distractors on image k) triples for one pair."""
    tw, th = pair.target_size
    min_dist = difficulty.min_distance * float(np.hypot(tw, th))
    ref_margin = max(2, int(difficulty.margin * min(pair.ref_size)))
    tgt_margin = max(2, int(difficulty.margin * min(tw, th)))
    ref_corners = corner_points(_gray(pair.root, pair.ref_path), difficulty.candidates, margin=ref_margin)
    tgt_corners = corner_points(_gray(pair.root, pair.target_path), difficulty.candidates * 2, margin=tgt_margin)
    if len(ref_corners) == 0:
        return []
    golds = apply_homography(pair.H, ref_corners)
    inside = (
        (golds[:, 0] >= tgt_margin) & (golds[:, 0] <= tw - 1 - tgt_margin)
        & (golds[:, 1] >= tgt_margin) & (golds[:, 1] <= th - 1 - tgt_margin)
    )  # fmt: skip
    order = rng.permutation(np.nonzero(inside)[0])
    triples: list[tuple[np.ndarray, np.ndarray, list[np.ndarray]]] = []
    used_refs: list[np.ndarray] = []
    for idx in order:
        if len(triples) == difficulty.points_per_pair:
            break
        ref, gold = ref_corners[idx], golds[idx]
        if not _far_from(ref, used_refs, min_dist):
            continue
        # Distractors come from the distinctive points nearest the gold (similar surroundings), in random order.
        far = [c for c in tgt_corners if _far_from(c, [gold], min_dist)]
        far.sort(key=lambda c: float(np.hypot(*(c - gold))))
        near = far[: difficulty.nearest]
        pool = [near[i] for i in rng.permutation(len(near))]
        distractors: list[np.ndarray] = []
        for c in pool:
            if _far_from(c, distractors, min_dist):
                distractors.append(c)
            if len(distractors) == 3:
                break
        if len(distractors) < 3:
            continue
        used_refs.append(ref)
        triples.append((ref, gold, distractors))
    return triples


def build_items(
    pairs: list[HPatchesPair], *, seed: int = 0, difficulty: MatchingDifficulty = DEFAULT_DIFFICULTY
) -> list[Item]:
    """Items for every pair, in (sequence, k, point) order, with gold letters balanced by ``seed``."""
    drafts = []
    unreadable: dict[str, None] = {}  # items are built from the pixels: every bad file is named at once
    for pair in pairs:
        rng = np.random.default_rng([seed, zlib.crc32(pair.sequence.encode()), pair.k])
        try:
            points = pair_points(pair, rng, difficulty)
        except DataError as exc:
            unreadable[str(exc)] = None
            continue
        for j, (ref, gold, distractors) in enumerate(points):
            drafts.append((pair, j, ref, gold, distractors, rng.permutation(3)))
    if unreadable:
        raise DataError(f"{len(unreadable)} HPatches image(s) cannot be decoded, so their pairs' items cannot be "
                        "built: " + "; ".join(unreadable))  # fmt: skip
    letters = LETTERS[:4]
    gold_slots = balanced_slots(len(drafts), seed, 0x6C6C6D)
    items = []
    for (pair, j, ref, gold, distractors, order), slot in zip(drafts, gold_slots):
        candidates = [distractors[i] for i in order]
        candidates.insert(int(slot), gold)
        points = {letter: _pt(c) for letter, c in zip(letters, candidates)}
        items.append(
            Item(
                id=f"{pair.sequence}-1-{pair.k}-p{j}",
                task=TASK_ID,
                images=(
                    ItemImage(pair.ref_path, pair.ref_size, {"REF": _pt(ref)}, root=pair.root),
                    ItemImage(pair.target_path, pair.target_size, points, root=pair.root),
                ),
                choices=letters,
                gold=letters[int(slot)],
                prompt=PROMPT.text,
                prompt_id=PROMPT.key,
                option_texts=PROMPT.options,
                meta={
                    "sequence": pair.sequence,
                    "k": pair.k,
                    "difficulty": asdict(difficulty),
                    "gold_error_px": 0.0,  # gold is H·REF exactly (up to the 0.01 px rounding of stored points)
                },
            )
        )
    return items


def _pt(p: np.ndarray) -> tuple[float, float]:
    return (round(float(p[0]), 2), round(float(p[1]), 2))


def sources_with(**overrides: float) -> dict[str, SourceLoader]:
    """The task's sources, HPatches items drawn with fields of :data:`DEFAULT_DIFFICULTY` replaced
    (e.g. ``min_distance=0.1``); the embedded twin when ``req.data_root`` is None."""
    difficulty = replace(DEFAULT_DIFFICULTY, **overrides)

    def hpatches(root: Path, req: LoadRequest) -> list[Item]:
        return build_items(load_pairs(root), seed=req.seed, difficulty=difficulty)

    return {"hpatches": hpatches, "blink": blink_source("Visual_Correspondence", TASK_ID)}


SOURCES = sources_with()


SPEC = register(correspondence_task(TASK_ID, PROMPT, SOURCES))
