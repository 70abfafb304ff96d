"""Odd-one-out readout (3D object awareness): the image least similar to the others is the odd one.

Each image's pooled feature (CLS token, the pooler output for CLIP/SigLIP, or the mean patch
token for models without CLS) is L2-normalised; an image's score is minus its mean cosine
similarity to the other images of the item, so the argmax is the least similar image.
Choice letters follow image order (A = image 1). MOCHI's own readout is different: a linear
SVM trained on pairwise feature differences (``tzler/mochi_code``); this one needs no training.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from plainsight.errors import DataError
from plainsight.items import Item
from plainsight.models.encoders import Encoder, Features
from plainsight.readouts.base import READOUTS, Readout, ReadoutResult


def odd_one_out_scores(pooled: torch.Tensor) -> list[float]:
    """Minus each row's mean cosine similarity to the other rows of ``pooled`` (n, C), n ≥ 2."""
    unit = F.normalize(pooled.float(), dim=-1)
    sims = unit @ unit.T
    n = sims.shape[0]
    mean_to_others = (sims.sum(dim=1) - sims.diagonal()) / (n - 1)
    return (-mean_to_others).tolist()


def odd_one_out_readout(encoder: Encoder, item: Item, features: list[Features] | None = None) -> ReadoutResult:
    """Scores per choice letter: higher = less like the other images."""
    if len(item.images) != len(item.choices):
        raise DataError(f"item {item.id}: an odd-one-out item needs one image per choice; it has "
                        f"{len(item.images)} images for {len(item.choices)} choices")  # fmt: skip
    if features is None:
        features = encoder.encode(item.load_images())
    pooled = torch.stack([f.pooled for f in features])
    if not torch.isfinite(pooled).all():
        return ReadoutResult(None, f"{encoder.name} produced non-finite pooled features")
    return ReadoutResult(dict(zip(item.choices, odd_one_out_scores(pooled))))


READOUTS.register("odd_one_out", Readout(odd_one_out_readout))
