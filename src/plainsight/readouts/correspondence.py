"""Correspondence readout: the candidate whose feature is most similar to REF's.

Features are L2-normalised and bilinearly sampled (``align_corners=False``) at each
point mapped through the encoder's own preprocessing; the readout never sees drawn
markers. A point the preprocessing crops away makes the item invalid for that encoder.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch.nn.functional as F

from plainsight.geometry import sample_points
from plainsight.items import Item
from plainsight.models.encoders import Encoder, Features


@dataclass
class ReadoutResult:
    scores: dict[str, float] | None  # per choice letter; None when the item is invalid for this encoder
    invalid_reason: str | None = None


def correspondence_readout(encoder: Encoder, item: Item, features: list[Features] | None = None) -> ReadoutResult:
    """Cosine similarity of REF's feature (image 1) with each candidate's (image 2)."""
    if features is None:
        features = encoder.encode(item.load_images())
    ref_image, target_image = item.images[0], item.images[1]
    ref_feats, target_feats = features[0], features[1]
    labelled = [("REF", ref_image.points["REF"], ref_feats)] + [
        (letter, target_image.points[letter], target_feats) for letter in item.choices
    ]
    for label, point, feats in labelled:
        if not feats.transform.contains(point):
            return ReadoutResult(
                None,
                f"point {label} at ({point[0]:.0f}, {point[1]:.0f}) is outside {encoder.name}'s input "
                f"after its preprocessing ({getattr(encoder.spec, 'source', '')})",
            )
    ref = _sample(ref_feats, [ref_image.points["REF"]])[0]
    candidates = _sample(target_feats, [target_image.points[letter] for letter in item.choices])
    sims = (candidates @ ref).tolist()
    return ReadoutResult({letter: float(s) for letter, s in zip(item.choices, sims)})


def _sample(feats: Features, points: list[tuple[float, float]]):
    grid = np.array([feats.transform.to_grid(p) for p in points], dtype=np.float32)
    return F.normalize(sample_points(feats.patches, grid), dim=-1)
