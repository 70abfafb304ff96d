"""Style readout (art style): the candidate whose Gram matrix is closer to the reference's.

For an image with last-layer patch features F (C channels × N patches) the Gram matrix is
G = F Fᵀ / N (Gatys et al.: channel co-activations, blind to where things are; dividing by
N lets images of different sizes compare). Image 1 is the reference, image k+1 the
candidate of choice k; a candidate's score is minus the mean squared difference between its
Gram matrix and the reference's, so the argmax is the closest style.
"""

from __future__ import annotations

import torch

from plainsight.errors import DataError
from plainsight.items import Item
from plainsight.models.encoders import Encoder, Features
from plainsight.readouts.base import READOUTS, Readout, ReadoutResult


def gram_matrix(patches: torch.Tensor) -> torch.Tensor:
    """G = F Fᵀ / N of a (C, gh, gw) feature grid, in float64 (Gram entries of large C sum many products)."""
    flat = patches.reshape(patches.shape[0], -1).double()
    return flat @ flat.T / flat.shape[1]


def style_readout(encoder: Encoder, item: Item, features: list[Features] | None = None) -> ReadoutResult:
    """Scores per choice letter: minus the MSE between the candidate's Gram matrix and the reference's."""
    if len(item.images) != len(item.choices) + 1:
        raise DataError(f"item {item.id}: a style item needs a reference and one image per choice; it has "
                        f"{len(item.images)} images for {len(item.choices)} choices")  # fmt: skip
    if features is None:
        features = encoder.encode(item.load_images())
    grams = [gram_matrix(f.patches) for f in features]
    if not all(torch.isfinite(g).all() for g in grams):
        return ReadoutResult(None, f"{encoder.name} produced non-finite patch features")
    reference = grams[0]
    return ReadoutResult({letter: -float(((g - reference) ** 2).mean()) for letter, g in zip(item.choices, grams[1:])})


READOUTS.register("style", Readout(style_readout))
