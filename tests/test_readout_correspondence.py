"""The correspondence readout samples features where the points went, and refuses cropped-away points."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from plainsight.errors import DataError
from plainsight.geometry import PreprocessSpec, plan
from plainsight.items import Item, ItemImage
from plainsight.models.encoders import Features, PixelsEncoder
from plainsight.readouts import READOUTS, ReadoutResult
from plainsight.readouts.correspondence import correspondence_readout

LETTERS = ("A", "B", "C", "D")


class OneHotEncoder:
    """Feature of grid cell (i, j) is a one-hot of its index: the nearest-feature readout is then pure geometry."""

    name = "onehot"

    def __init__(self, spec: PreprocessSpec, grid: int = 8):
        self.spec, self.grid = spec, grid
        self.calls = 0

    def encode(self, images):
        self.calls += 1
        eye = torch.eye(self.grid * self.grid).reshape(-1, self.grid, self.grid)
        return [Features(eye, eye.mean((1, 2)), plan(self.spec, im.size)) for im in images]


def make_item(ref, candidates, gold="B", sizes=((64, 64), (64, 64)), root: Path | None = None) -> Item:
    images = (
        ItemImage("a.png", sizes[0], {"REF": ref}, root=root),
        ItemImage("b.png", sizes[1], dict(zip(LETTERS, candidates)), root=root),
    )
    return Item("x", "low_level_matching", images, LETTERS, gold, "?", "p@v1")


def blank(item: Item) -> list[Image.Image]:
    return [Image.new("RGB", im.size) for im in item.images]


def best(result: ReadoutResult) -> str:
    return max(result.scores, key=result.scores.get)


def test_registry_names_the_readout():
    assert READOUTS.get("correspondence").answer is correspondence_readout


def test_one_hot_features_pick_the_candidate_at_the_same_position():
    enc = OneHotEncoder(PreprocessSpec("exact", (64, 64)))
    item = make_item((20, 36), [(52, 4), (20, 36), (4, 60), (40, 10)])
    result = correspondence_readout(enc, item, enc.encode(blank(item)))
    assert best(result) == "B" and result.invalid_reason is None
    assert result.scores["B"] == pytest.approx(1.0) and result.scores["A"] == pytest.approx(0.0, abs=1e-6)


def test_points_are_compared_after_each_image_own_preprocessing():
    """REF in a 128x64 image (centre-cropped to 64x64) matches the candidate at the same *model input* position."""
    enc = OneHotEncoder(PreprocessSpec("shortest_edge", 64, crop=(64, 64)))
    # x = 52 in the wide image lands at 52 - 32 = 20 after the crop; the same source x in image 2 would be cell 6, not 2
    item = make_item((52, 36), [(52, 36), (20, 36), (4, 60), (40, 10)], sizes=((128, 64), (64, 64)))
    result = correspondence_readout(enc, item, enc.encode(blank(item)))
    assert best(result) == "B" and result.scores["A"] < 0.01


@pytest.mark.parametrize("where", ["REF", "C"])
def test_cropped_away_point_makes_the_item_invalid(where: str):
    enc = OneHotEncoder(PreprocessSpec("shortest_edge", 64, crop=(64, 64), source="TestProcessorPil"))
    ref = (5, 30) if where == "REF" else (64, 30)
    item = make_item(
        ref, [(40, 30), (60, 30), (120, 30), (90, 30)], sizes=((128, 64), (128, 64))
    )  # crop keeps x in [32, 96)
    result = correspondence_readout(enc, item, enc.encode(blank(item)))
    assert result.scores is None
    assert result.invalid_reason.startswith(f"marker {where} at")
    assert "TestProcessorPil: shortest_edge 64 + centre crop 64" in result.invalid_reason


def test_missing_point_names_the_item_and_label():
    enc = OneHotEncoder(PreprocessSpec("exact", (64, 64)))
    item = make_item((20, 20), [(1, 1), (2, 2), (3, 3)])  # no point for D
    with pytest.raises(DataError, match="item x: image 2 .*no point 'D'"):
        correspondence_readout(enc, item, enc.encode(blank(item)))


def test_encodes_the_item_images_when_no_features_are_given(tmp_path: Path):
    for name in ("a.png", "b.png"):
        Image.new("RGB", (64, 64)).save(tmp_path / name)
    enc = OneHotEncoder(PreprocessSpec("exact", (64, 64)))
    item = make_item((20, 36), [(52, 4), (20, 36), (4, 60), (40, 10)], root=tmp_path)
    assert best(correspondence_readout(enc, item)) == "B" and enc.calls == 1


def textured_points(gray: np.ndarray, n: int, rng: np.random.Generator, border: int) -> list[tuple[int, int]]:
    """Points whose 9x9 neighbourhood has clear texture (so the task is about matching, not flat sky)."""
    out: list[tuple[int, int]] = []
    while len(out) < n:
        x, y = (int(v) for v in rng.integers(border, np.array(gray.shape[::-1]) - border))
        if gray[y - 4 : y + 5, x - 4 : x + 5].std() > 20:
            out.append((x, y))
    return out


def test_pixels_find_translated_points_among_textured_distractors():
    import skimage.data

    photo = skimage.data.astronaut()
    dx, dy = 7, -11
    a = Image.fromarray(photo[100:356, 100:356])
    b = Image.fromarray(photo[100 - dy : 356 - dy, 100 - dx : 356 - dx])  # b shows a's pixel (x, y) at (x + dx, y + dy)
    gray = np.asarray(a.convert("L"), dtype=np.float64)
    enc = PixelsEncoder()
    features = enc.encode([a, b])
    rng = np.random.default_rng(0)
    wins = 0
    for ref in textured_points(gray, 12, rng, border=20):
        gold = (ref[0] + dx, ref[1] + dy)
        distractors = [
            p for p in textured_points(gray, 20, rng, border=20) if np.hypot(p[0] - gold[0], p[1] - gold[1]) > 24
        ][:3]
        candidates = [distractors[0], gold, distractors[1], distractors[2]]
        item = make_item(ref, candidates, sizes=(a.size, b.size))
        result = correspondence_readout(enc, item, features)
        assert result.scores["B"] > 0.8  # NCC after resampling to the 128 px working size
        wins += best(result) == "B"
    assert wins == 12
