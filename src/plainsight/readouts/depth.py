"""Relative-depth readout: the boxed object with the smaller mean predicted depth is the closer one.

The depth comes from the encoder's trained probe (:mod:`plainsight.readouts.depth_probe`),
predicted at the encoder's input resolution; each box (``item.images[0].boxes[letter]``,
source pixels) is mapped through the same preprocessing and averaged over. A box the
preprocessing crops away entirely makes the item invalid for that encoder.
"""

from __future__ import annotations

from typing import Any

from plainsight.errors import DataError
from plainsight.items import Item
from plainsight.readouts.base import READOUTS, Readout, ReadoutResult
from plainsight.readouts.depth_probe import DepthProbe, box_in_input


def depth_readout(encoder: Any, item: Item, features: Any = None, *, probe: DepthProbe) -> ReadoutResult:
    """Scores = −(mean predicted depth in each choice's box)."""
    image = item.images[0]
    ((pred, transform),) = probe.predict(encoder, [image.load()])
    scores = {}
    for letter in item.choices:
        if letter not in image.boxes:
            raise DataError(f"item {item.id}: image {image.path} has no box {letter!r}; it has {sorted(image.boxes)}")
        region = box_in_input(image.boxes[letter], transform)
        if region is None:
            return ReadoutResult(
                None, f"box {letter} {list(image.boxes[letter])} is cropped away by {encoder.name}'s preprocessing"
            )
        x1, y1, x2, y2 = region
        scores[letter] = -float(pred[y1 : y2 + 1, x1 : x2 + 1].mean())
    return ReadoutResult(scores)


def prepare_depth_probe(runner: Any, model_name: str, encoder: Any) -> dict[str, Any]:
    """The trained (or cached) probe for this encoder, from NYUv2 under the data folder (the embedded twin by default)."""
    from plainsight.data import embedded_root
    from plainsight.data.nyuv2 import open_nyuv2
    from plainsight.errors import DatasetNotFound
    from plainsight.readouts.depth_probe import encoder_fingerprint, ensure_probe, recipe_for

    root = runner.options.data_root if runner.options.data_root is not None else embedded_root()
    try:
        nyu = open_nyuv2(root)
    except DatasetNotFound as exc:
        raise DatasetNotFound(f"the depth probe trains on NYUv2 and found none: {exc}") from None
    entry = runner.entries.get(model_name.split("/")[0])
    device = runner.placement.get("device", "cpu")
    recipe = recipe_for(runner.options.probe_recipe, device)
    fingerprint = encoder_fingerprint(entry, encoder) if entry is not None else model_name
    probe = ensure_probe(encoder, fingerprint, nyu, recipe, runner.options.cache_dir, device=device)
    return {"probe": probe, "info": {"probe": probe.info, "probe_data": str(nyu.path)}}


# The readout runs the encoder's intermediate layers itself (uses_features=False).
READOUTS.register("depth", Readout(depth_readout, prepare=prepare_depth_probe, uses_features=False))
