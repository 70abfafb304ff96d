"""The correspondence readout samples features where the points went, and refuses cropped-away points."""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from plainsight.geometry import PreprocessSpec, plan
from plainsight.items import Item, ItemImage
from plainsight.models.encoders import Features, PixelsEncoder
from plainsight.readouts import correspondence_readout

LETTERS = ("A", "B", "C", "D")


class OneHotEncoder:
    """Feature of grid cell (i, j) is a one-hot of its index: the nearest-feature readout is then pure geometry."""

    name = "onehot"

    def __init__(self, spec: PreprocessSpec, grid: int = 8):
        self.spec, self.grid = spec, grid

    def encode(self, images):
        out = []
        for im in images:
            t = plan(self.spec, im.size)
            eye = torch.eye(self.grid * self.grid).reshape(-1, self.grid, self.grid)
            out.append(Features(eye, eye.mean((1, 2)), t))
        return out


def make_item(ref, candidates, gold="B", size=(64, 64)) -> Item:
    images = (ItemImage("a.png", size, {"REF": ref}), ItemImage("b.png", size, dict(zip(LETTERS, candidates))))
    return Item("x", "low_level_matching", images, LETTERS, gold, "?", "p@v1")


def test_one_hot_features_pick_the_candidate_at_the_same_position():
    enc = OneHotEncoder(PreprocessSpec("exact", (64, 64)))
    item = make_item((20, 36), [(52, 4), (20, 36), (4, 60), (40, 10)])
    result = correspondence_readout(enc, item, enc.encode([Image.new("RGB", (64, 64))] * 2))
    assert max(result.scores, key=result.scores.get) == "B"
    assert result.scores["B"] > 0.99 and result.scores["A"] < 0.01


def test_cropped_away_point_makes_the_item_invalid():
    enc = OneHotEncoder(PreprocessSpec("shortest_edge", 64, crop=(64, 64)))
    item = make_item((64, 30), [(2, 30), (60, 30), (64, 30), (90, 30)], size=(128, 64))  # crop keeps x in [32, 96)
    result = correspondence_readout(enc, item, enc.encode([Image.new("RGB", (128, 64))] * 2))
    assert result.scores is None and "point A" in result.invalid_reason


def test_pixels_find_a_translated_point():
    import skimage.data

    photo = skimage.data.astronaut()
    a = Image.fromarray(photo[100:260, 100:260])
    b = Image.fromarray(photo[112:272, 90:250])  # b = a shifted by (+10, -12)
    ref = (60.0, 40.0)
    gold = (ref[0] + 10, ref[1] - 12)
    item = make_item(ref, [(120.0, 100.0), gold, (30.0, 130.0), (100.0, 20.0)], size=(160, 160))
    result = correspondence_readout(PixelsEncoder(), item, PixelsEncoder().encode([a, b]))
    assert max(result.scores, key=result.scores.get) == "B"
    assert np.isclose(result.scores["B"], 1.0, atol=0.15)
