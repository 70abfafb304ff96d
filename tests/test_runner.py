"""The per-worker runner: one load per model, memoised runs, invalid items, outcomes streamed as they finish."""

from __future__ import annotations

from pathlib import Path

import pytest

from plainsight.models.registry import ModelEntry
from plainsight.runner import Runner, RunOptions


def entries(tmp_path: Path) -> dict[str, ModelEntry]:
    return {
        "pixels": ModelEntry("pixels", "encoder", "pixels", base_dir=tmp_path),
        "oracle": ModelEntry("oracle", "vlm", "double:oracle", pairs_with="pixels", base_dir=tmp_path),
        "constant-a": ModelEntry("constant-a", "vlm", "double:constant-a", base_dir=tmp_path),
    }


def test_each_model_loads_once_and_runs_are_memoised(tmp_path: Path, embedded_data: Path):
    seen = []
    runner = Runner(
        RunOptions(data_root=embedded_data, limit=12), entries(tmp_path), sink=lambda *a: seen.append(a[:3])
    )
    vision = runner.run("low_level_matching", "pixels", "vision")
    vlm = runner.run("low_level_matching", "oracle", "vlm")
    blind = runner.run("low_level_matching", "oracle", "blind")
    assert runner.run("low_level_matching", "pixels", "vision") is vision  # memoised: no reload
    runner.run("low_level_matching", "constant-a", "vlm")
    assert runner.loads == ["pixels", "oracle", "constant-a"]
    assert [o.item_id for o in vlm.outcomes] == [o.item_id for o in vision.outcomes]
    assert all(o.correct for o in vlm.outcomes) and not all(o.correct for o in blind.outcomes)
    assert len(seen) == 12 * 4  # every outcome streamed once


def test_side_by_side_view_with_a_centre_crop_is_letterboxed_or_invalid(tmp_path: Path, embedded_data: Path):
    from plainsight.geometry import PreprocessSpec
    from plainsight.tasks import LoadRequest, get_task
    from plainsight.views import vlm_view

    task = get_task("low_level_matching")
    item = task.load_items(LoadRequest(embedded_data, limit=1))[0]
    crop = PreprocessSpec("shortest_edge", 64, crop=(64, 64), source="test crop", fill=(1, 2, 3))
    shown, invalid = vlm_view(task.render, item, "side_by_side", crop)
    assert len(shown) == 1 and invalid is None
    assert shown[0].width == shown[0].height and shown[0].getpixel((0, 0)) == (1, 2, 3)  # padded with the mean
    shown, invalid = vlm_view(task.render, item, "side_by_side", crop, image_resize="processor")
    assert (
        len(shown) == 1
        and invalid is not None
        and "only partly visible" in invalid
        and "image 1 " in invalid
        and "test crop" in invalid
    )
    shown, invalid = vlm_view(task.render, item, "separate", PreprocessSpec("exact", (32, 32)))
    assert len(shown) == 2 and invalid is None
    blind, _ = vlm_view(task.render, item, "separate", None, blind=True)
    assert [im.size for im in blind] == [tuple(im.size) for im in item.images]
    assert all(im.getextrema() == ((255, 255),) * 3 for im in blind)


def test_prefetched_views_keep_item_order_and_raise_at_their_item():
    """The GPU path prepares views a batch ahead in a thread: same order as in turn, an error surfaces at its item."""
    from concurrent.futures import ThreadPoolExecutor

    from plainsight.runner import _prefetched

    def fn(n):
        if n == 7:
            raise ValueError("item 7 is broken")
        return n * n

    items = list(range(7))
    with ThreadPoolExecutor(max_workers=1) as pool:
        assert list(_prefetched(pool, fn, items, ahead=3)) == [n * n for n in items]
        views = _prefetched(pool, fn, list(range(10)), ahead=3)
        assert [next(views) for _ in range(7)] == [n * n for n in range(7)]
        with pytest.raises(ValueError, match="item 7"):
            next(views)
    assert list(_prefetched(None, fn, items, ahead=3)) == [n * n for n in items]


def test_duplicate_item_ids_are_refused():
    """Outcomes are keyed by item id: a task whose loader yields one id twice is a DataError, not lost lines."""
    from plainsight.errors import DataError
    from plainsight.items import Item, ItemImage
    from plainsight.tasks import LoadRequest
    from plainsight.tasks.base import load_from_sources

    def item(item_id):
        return Item(item_id, "depth", (ItemImage("a.png", (4, 4)),), ("A", "B"), "A", "p", "x@v1")

    ok = load_from_sources("depth", LoadRequest(None), {"fake": lambda root, req: [item("a"), item("b")]})
    assert [it.id for it in ok] == ["a", "b"]
    with pytest.raises(DataError, match=r"depth: 1 item id\(s\) used twice, e\.g\. a"):
        load_from_sources("depth", LoadRequest(None), {"fake": lambda root, req: [item("a"), item("b"), item("a")]})
