"""Low-level matching items: gold is exactly H·REF, distractors respect the difficulty, letters balanced."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from plainsight.data.hpatches import FOLDER, load_pairs
from plainsight.embedded.hpatches_twin import random_homography
from plainsight.geometry import apply_homography
from plainsight.tasks import LoadRequest, get_task
from plainsight.tasks.base import load_from_sources
from plainsight.tasks.low_level_matching import DEFAULT_DIFFICULTY, TASK_ID, build_items, sources_with


def textured(seed: int, size=(160, 120)) -> np.ndarray:
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 255, (size[1] // 8, size[0] // 8, 3), dtype=np.uint8)
    return np.asarray(Image.fromarray(small).resize(size, Image.Resampling.NEAREST))


def make_data(root: Path, seed: int, strength: float) -> list:
    seq = root / FOLDER / "v_synth"
    seq.mkdir(parents=True, exist_ok=True)
    img = textured(seed)
    Image.fromarray(img).save(seq / "1.ppm")
    rng = np.random.default_rng(seed)
    for k in range(2, 7):
        Image.fromarray(textured(seed + k)).save(seq / f"{k}.ppm")  # content is irrelevant to the geometry checks
        H = random_homography(rng, strength)
        (seq / f"H_1_{k}").write_text("\n".join(" ".join(f"{v:.12e}" for v in r) for r in H))
    return load_pairs(root)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 10_000), strength=st.floats(0.1, 1.0), item_seed=st.integers(0, 5))
def test_gold_is_the_homography_image_of_ref_and_distractors_keep_their_distance(
    tmp_path_factory, seed, strength, item_seed
):
    root = tmp_path_factory.mktemp("hp")
    pairs = make_data(root, seed, strength)
    items = build_items(pairs, seed=item_seed)
    by_key = {(p.sequence, p.k): p for p in pairs}
    for item in items:
        pair = by_key[(item.meta["sequence"], item.meta["k"])]
        ref = np.array(item.images[0].points["REF"])
        target = item.images[1].points
        gold = apply_homography(pair.H, ref[None])[0]
        assert np.allclose(target[item.gold], gold, atol=0.011)
        w, h = item.images[1].size
        min_dist = DEFAULT_DIFFICULTY.min_distance * np.hypot(w, h)
        margin = int(DEFAULT_DIFFICULTY.margin * min(w, h))
        assert item.meta["gold_error_px"] == 0.0
        assert item.meta["difficulty"]["min_distance"] == DEFAULT_DIFFICULTY.min_distance
        pts = [np.array(target[letter]) for letter in item.choices]
        for i, p in enumerate(pts):
            assert margin - 0.01 <= p[0] <= w - 1 - margin + 0.01 and margin - 0.01 <= p[1] <= h - 1 - margin + 0.01
            for q in pts[i + 1 :]:
                assert np.hypot(*(p - q)) >= min_dist - 0.02


def test_embedded_items_letters_balanced_and_deterministic(embedded_data: Path):
    task = get_task("low_level_matching")
    items = task.load_items(LoadRequest(embedded_data, seed=0))
    assert len(items) >= 100
    counts = Counter(it.gold for it in items)
    assert max(counts.values()) - min(counts.values()) <= 1
    again = task.load_items(LoadRequest(embedded_data, seed=0))
    assert [it.to_json() for it in items] == [it.to_json() for it in again]
    other = task.load_items(LoadRequest(embedded_data, seed=1))
    assert [it.gold for it in other] != [it.gold for it in items]
    assert [it.id for it in task.load_items(LoadRequest(embedded_data, seed=0, limit=7))] == [it.id for it in items[:7]]


def test_difficulty_overrides_by_keyword_are_applied_and_recorded(tmp_path: Path):
    pairs = make_data(tmp_path, seed=3, strength=0.3)
    root = pairs[0].root
    items = load_from_sources(TASK_ID, LoadRequest(root), sources_with(min_distance=0.2, points_per_pair=1))
    assert items and len(items) <= len(pairs)
    for item in items:
        assert item.meta["difficulty"]["min_distance"] == 0.2 and item.id.endswith("-p0")
        w, h = item.images[1].size
        pts = [np.array(item.images[1].points[letter]) for letter in item.choices]
        assert min(np.hypot(*(p - q)) for i, p in enumerate(pts) for q in pts[i + 1 :]) >= 0.2 * np.hypot(w, h) - 0.02


def test_render_draws_markers_only_when_the_source_has_none(embedded_data: Path):
    task = get_task("low_level_matching")
    item = task.load_items(LoadRequest(embedded_data, limit=1))[0]
    clean = item.load_images()
    drawn = task.render(item, clean)
    assert np.any(np.asarray(drawn[1]) != np.asarray(clean[1]))
    from dataclasses import replace

    kept = task.render(replace(item, markers_drawn=True), clean)
    assert all(np.array_equal(np.asarray(a), np.asarray(b)) for a, b in zip(kept, clean))


@pytest.mark.parametrize("seed", [0, 1])
def test_pixels_baseline_beats_chance_on_the_embedded_twin(embedded_data: Path, seed: int):
    from plainsight.models.encoders import PixelsEncoder
    from plainsight.readouts.correspondence import correspondence_readout
    from plainsight.scoring import choose, wilson_interval

    items = get_task("low_level_matching").load_items(LoadRequest(embedded_data, seed=seed))
    enc = PixelsEncoder()
    correct = sum(choose(correspondence_readout(enc, it).scores, it.choices).letter == it.gold for it in items)
    assert wilson_interval(correct, len(items))[0] > 0.25
