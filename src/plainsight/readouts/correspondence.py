"""Correspondence readout: the candidate whose feature is most similar to REF's.

Item layout: ``item.images[0].points["REF"]`` and ``item.images[1].points[letter]``
for every letter in ``item.choices``, in exact coordinates on the clean images (the
readout never sees drawn markers). Each feature map is L2-normalised per cell, then
sampled bilinearly (``align_corners=False``) where the point went through the
encoder's own preprocessing; the score of a candidate is the cosine similarity of its
sampled feature with REF's. A point that the preprocessing crops away makes the item
invalid for that encoder: it is reported, never shifted. Items whose source drew the
markers (BLINK) are read on those marked images at the recovered coordinates; one
whose markers could not be recovered is invalid, with the reason.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from plainsight.errors import DataError
from plainsight.geometry import sample_points
from plainsight.items import UNRECOVERED, Item
from plainsight.models.encoders import Encoder, Features
from plainsight.readouts.base import READOUTS, Readout, ReadoutResult


def correspondence_readout(encoder: Encoder, item: Item, features: list[Features] | None = None) -> ReadoutResult:
    """Cosine similarity of REF's feature (image 1) with each candidate's (image 2).

    ``features`` are the encoder's outputs for ``item.load_images()`` when precomputed
    (the harness caches them by image hash); otherwise the images are encoded here.
    """
    if item.meta.get(UNRECOVERED):
        return ReadoutResult(None, f"marker coordinates unknown ({item.meta[UNRECOVERED]})")
    if len(item.images) < 2:
        raise DataError(f"item {item.id}: a correspondence item needs 2 images, it has {len(item.images)}")
    labelled = [("REF", 0, _point(item, 0, "REF"))] + [(letter, 1, _point(item, 1, letter)) for letter in item.choices]
    if features is None:
        features = encoder.encode(item.load_images())
    if len(features) < 2:
        raise ValueError(f"item {item.id}: {len(features)} feature maps given for its 2 images")
    for label, index, point in labelled:
        if not features[index].transform.contains(point):
            spec = getattr(encoder, "spec", None)
            how = spec.describe() if hasattr(spec, "describe") else "its preprocessing"
            return ReadoutResult(
                None,
                f"marker {label} at ({point[0]:.1f}, {point[1]:.1f}) of image {index + 1} is cropped away by "
                f"{encoder.name}'s preprocessing ({how})",
            )
    ref = _sample(features[0], [labelled[0][2]])[0]
    candidates = _sample(features[1], [point for _, _, point in labelled[1:]])
    sims = (candidates @ ref).tolist()
    return ReadoutResult({letter: float(s) for letter, s in zip(item.choices, sims)})


def _point(item: Item, index: int, label: str) -> tuple[float, float]:
    try:
        x, y = item.images[index].points[label]
    except KeyError:
        raise DataError(
            f"item {item.id}: image {index + 1} ({item.images[index].path}) has no point {label!r}; "
            f"it has {sorted(item.images[index].points)}"
        ) from None
    return float(x), float(y)


def _sample(feats: Features, points: list[tuple[float, float]]) -> torch.Tensor:
    """(N, C) unit-length features at ``points`` (source-image pixels)."""
    grid = np.array([feats.transform.to_grid(p) for p in points], dtype=np.float32)
    unit_map = F.normalize(feats.patches.float(), dim=0)
    return F.normalize(sample_points(unit_map, grid), dim=-1)


READOUTS.register("correspondence", Readout(correspondence_readout))
