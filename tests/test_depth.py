"""Relative depth: CV-Bench and NYUv2 loaders, the DPT probe and its cache, the rendered twin's ground truth."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from plainsight.data.cvbench import load_depth
from plainsight.data.nyuv2 import open_nyuv2
from plainsight.embedded.depth_twin import TRUTH
from plainsight.errors import DataError, DatasetNotFound
from plainsight.geometry import PreprocessSpec, plan
from plainsight.models.encoders import HFEncoder
from plainsight.readouts import depth_probe
from plainsight.readouts.depth import depth_readout
from plainsight.readouts.depth_probe import RECIPES, box_in_input, cache_key, ensure_probe, map_depth
from plainsight.scoring import wilson_interval
from plainsight.tasks import LoadRequest, get_task

REPO = Path(__file__).resolve().parents[1]
EXE = Path(sys.executable).parent / "plainsight"


# ---------------------------------------------------------------- CV-Bench


def _cvbench_rows() -> list[dict]:
    depth = {"type": "3D", "task": "Depth", "choices": ["table", "lamp"], "answer": "(B)",
             "prompt": "Which object is closer ...?\n(A) table\n(B) lamp",
             "bbox": [[10.0, 12.0, 40.5, 50.0], [60.0, 20.0, 90.0, 70.0]]}  # fmt: skip
    distance = {"type": "3D", "task": "Distance", "choices": ["chair", "sofa"], "answer": "(A)", "prompt": "Which ...",
                "bbox": [[1, 1, 5, 5], [6, 6, 9, 9], [10, 10, 20, 20]]}  # fmt: skip
    return [depth | {"idx": 0, "filename": "img/3D/depth/a.png"}, distance | {"idx": 1, "filename": "img/3D/distance/b.png"},
            depth | {"idx": 2, "filename": "img/3D/depth/c.png", "answer": "(A)"}]  # fmt: skip


def _write_cvbench_jsonl(root: Path, rows: list[dict]) -> Path:
    folder = root / "CV-Bench"
    for row in rows:
        (folder / row["filename"]).parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (100, 80), (90, 90, 90)).save(folder / row["filename"])
    (folder / "test_3d.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return folder / "test_3d.jsonl"


def test_cvbench_jsonl_depth_rows_and_skipped_distance(tmp_path):
    _write_cvbench_jsonl(tmp_path, _cvbench_rows())
    loaded = load_depth(tmp_path)
    assert [it.id for it in loaded.items] == ["cvbench-0", "cvbench-2"] and loaded.skipped == {"Distance": 1}
    item = loaded.items[0]
    assert item.gold == "B" and item.choices == ("A", "B") and item.option_texts == ("table", "lamp")
    assert item.markers_drawn and item.prompt.endswith("(B) lamp")
    assert dict(item.images[0].boxes) == {"A": (10.0, 12.0, 40.5, 50.0), "B": (60.0, 20.0, 90.0, 70.0)}
    assert item.images[0].load().size == (100, 80)


def test_cvbench_parquet_with_image_bytes(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = []
    for row in _cvbench_rows():
        buf = io.BytesIO()
        Image.new("RGB", (100, 80), (10, 20, 30)).save(buf, format="JPEG")
        rows.append(row | {"image": {"bytes": buf.getvalue(), "path": row["filename"]}})
    image_type = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
    table = pa.Table.from_pylist(rows, schema=pa.schema([
        ("idx", pa.int64()), ("type", pa.string()), ("task", pa.string()), ("choices", pa.list_(pa.string())),
        ("answer", pa.string()), ("prompt", pa.string()), ("bbox", pa.list_(pa.list_(pa.float64()))),
        ("filename", pa.string()), ("image", image_type)]))  # fmt: skip
    (tmp_path / "CV-Bench").mkdir()
    pq.write_table(table, tmp_path / "CV-Bench" / "test.parquet")
    loaded = load_depth(tmp_path)
    assert len(loaded.items) == 2 and loaded.skipped == {"Distance": 1}
    assert loaded.items[1].images[0].load().size == (100, 80)


@pytest.mark.parametrize(
    "change, message",
    [
        ({"bbox": [[10, 12, 40, 50]]}, r"row 0 \(idx 0\): field 'bbox' must hold one \[x1, y1, x2, y2\] per choice"),
        ({"bbox": [[40, 12, 10, 50], [60, 20, 90, 70]]}, r"field 'bbox' entry A is empty or inverted"),
        ({"bbox": [[10, 12, 40, 50], [160, 20, 190, 70]]}, r"field 'bbox' entry B .* lies outside the 100x80 image"),
        ({"answer": "(C)"}, r"row 0 \(idx 0\): field 'answer' must be '\(A\)' or '\(B\)'"),
        ({"filename": "img/3D/depth/missing.png"}, r"field 'filename': image .*missing.png not found"),
    ],
)
def test_cvbench_malformed_rows_name_file_row_and_field(tmp_path, change, message):
    rows = _cvbench_rows()
    path = _write_cvbench_jsonl(tmp_path, rows)
    rows[0] = rows[0] | change
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(DataError, match=message) as info:
        load_depth(tmp_path)
    assert str(path) in str(info.value)


# ---------------------------------------------------------------- NYUv2


def _write_nyu(root: Path, n: int = 3, *, w: int = 16, h: int = 12, train=(1, 3), test=(2,)) -> np.ndarray:
    """A v7.3-style labelled .mat in h5py's reversed axis order; returns the (N, H, W, 3) images written."""
    import h5py
    import scipy.io

    folder = root / "NYUv2"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    images = rng.integers(0, 255, (n, h, w, 3), dtype=np.uint8)
    images[:, 2, 5] = (255, 0, 0)  # one red pixel at x=5, y=2: catches a missing transpose
    depths = rng.uniform(0.5, 9.0, (n, h, w)).astype(np.float32)
    with h5py.File(folder / "nyu_depth_v2_labeled.mat", "w") as f:
        f["images"] = images.transpose(0, 3, 2, 1)  # MATLAB (H, W, 3, N) as h5py reads it: (N, 3, W, H)
        f["depths"] = depths.transpose(0, 2, 1)
        f["rawDepths"] = np.where(depths > 8, 0, depths).transpose(0, 2, 1)
    scipy.io.savemat(
        folder / "splits.mat",
        {"trainNdxs": np.array(train, float)[:, None], "testNdxs": np.array(test, float)[:, None]},
    )
    return images


def test_nyuv2_axes_are_restored_and_indices_are_zero_based(tmp_path):
    images = _write_nyu(tmp_path)
    nyu = open_nyuv2(tmp_path)
    assert nyu.size == (16, 12) and nyu.count == 3
    assert nyu.train.tolist() == [0, 2] and nyu.test.tolist() == [1]
    image, depth = nyu.frame(2)
    assert image.shape == (12, 16, 3) and depth.shape == (12, 16)
    assert tuple(image[2, 5]) == (255, 0, 0)  # the pixel check: (row 2, column 5) is red
    np.testing.assert_array_equal(image, images[2])
    _, raw = nyu.frame(2, raw=True)
    assert (raw == 0).any() == (depth > 8).any()


def test_nyuv2_malformed_input_names_file_and_field(tmp_path):
    import h5py

    _write_nyu(tmp_path / "a", train=(1, 4))
    with pytest.raises(DataError, match=r"splits\.mat: field 'trainNdxs' has indices outside 1\.\.3"):
        open_nyuv2(tmp_path / "a")
    _write_nyu(tmp_path / "b")
    with h5py.File(tmp_path / "b" / "NYUv2" / "nyu_depth_v2_labeled.mat", "a") as f:
        del f["depths"]
    with pytest.raises(DataError, match=r"nyu_depth_v2_labeled\.mat: missing field 'depths'"):
        open_nyuv2(tmp_path / "b")
    with pytest.raises(DatasetNotFound, match="no NYUv2 found"):
        open_nyuv2(tmp_path)


# ---------------------------------------------------------------- geometry of targets and boxes


@settings(max_examples=80, deadline=None)
@given(w=st.integers(20, 300), h=st.integers(20, 300), edge=st.integers(16, 96), crop=st.booleans())
def test_mapped_depth_reads_the_source_pixel_under_each_input_pixel(w, h, edge, crop):
    spec = PreprocessSpec("shortest_edge", edge, crop=(edge, edge) if crop else None)
    transform = plan(spec, (w, h))
    xs = np.broadcast_to(np.arange(w, dtype=np.float32) + 1.0, (h, w))  # depth = column + 1 (0 stays "invalid")
    mapped = map_depth(xs, transform)
    out_w, out_h = transform.out_size
    assert mapped.shape == (out_h, out_w)
    for u in range(0, out_w, max(1, out_w // 7)):
        column = mapped[out_h // 2, u] - 1.0
        back_x = (u + 0.5 - transform.offset[0]) / transform.scale[0] - 0.5  # input pixel u seen in the source
        if -0.5 <= back_x <= w - 0.5:
            assert abs(column - back_x) <= 0.5 + 1e-6
    box = box_in_input((0.0, 0.0, w - 1.0, h - 1.0), transform)
    assert box is not None and box[0] >= 0 and box[2] <= out_w - 1


# ---------------------------------------------------------------- the probe on the embedded twin


@pytest.fixture(scope="module")
def tiny_dinov2():
    return HFEncoder.from_pretrained("tiny-dinov2", str(REPO / "fixtures" / "models" / "tiny-dinov2"))


def _accuracy(probe, encoder, items) -> tuple[int, int]:
    correct = 0
    for item in items:
        scores = depth_readout(encoder, item, probe=probe).scores
        correct += max(scores, key=scores.get) == item.gold
    return correct, len(items)


def test_probe_learns_depth_and_the_shuffled_control_does_not(tiny_dinov2, embedded_data: Path, tmp_path):
    items = get_task("depth").load_items(LoadRequest(None))
    assert len(items) >= 100
    nyu = open_nyuv2(embedded_data)
    probe = ensure_probe(tiny_dinov2, "tiny-dinov2@test", nyu, RECIPES["small"], tmp_path)
    correct, n = _accuracy(probe, tiny_dinov2, items)
    low, high = wilson_interval(correct, n)
    control = ensure_probe(
        tiny_dinov2, "tiny-dinov2@test", nyu, replace(RECIPES["small"], shuffle_targets=True), tmp_path
    )
    c_correct, _ = _accuracy(control, tiny_dinov2, items)
    c_low, c_high = wilson_interval(c_correct, n)
    print(f"depth probe (tiny-dinov2, small recipe): {correct}/{n} = {correct / n:.3f} [{low:.3f}, {high:.3f}]; "
          f"shuffled-target control {c_correct}/{n} = {c_correct / n:.3f} [{c_low:.3f}, {c_high:.3f}]")  # fmt: skip
    assert low > 0.5
    assert c_low <= 0.5 <= c_high


def test_probe_is_trained_once_and_keyed_by_recipe(tiny_dinov2, embedded_data: Path, tmp_path):
    nyu = open_nyuv2(embedded_data)
    recipe = replace(RECIPES["small"], epochs=2)
    before = len(depth_probe.TRAININGS)
    first = ensure_probe(tiny_dinov2, "tiny-dinov2@test", nyu, recipe, tmp_path)
    second = ensure_probe(tiny_dinov2, "tiny-dinov2@test", nyu, recipe, tmp_path)
    assert len(depth_probe.TRAININGS) - before == 1  # the second call reads the cache
    assert first.key == second.key and first.info["train_frames"] == len(nyu.train)
    assert cache_key("e", "d", recipe) != cache_key("e", "d", replace(recipe, lr=1e-3))
    assert cache_key("e", "d", recipe) != cache_key("e2", "d", recipe)


def test_oracle_from_rendered_depth_scores_one(embedded_data: Path):
    items = get_task("depth").load_items(LoadRequest(None))
    truth = {
        f"cvbench-{t['idx']}": t for t in map(json.loads, (embedded_data / "CV-Bench" / TRUTH).read_text().splitlines())
    }
    correct = 0
    for item in items:
        red, blue = truth[item.id]["box_mean_depth"]
        correct += ("A" if red < blue else "B") == item.gold
    assert correct == len(items)
    golds = [it.gold for it in items]
    assert abs(golds.count("A") - golds.count("B")) <= 1
    # The room layout alone (what a probe on shuffled targets learns) is right on exactly half the items.
    assert sum(t["layout_prior_right"] for t in truth.values()) * 2 == len(items)


def test_cli_items_for_cvbench_carry_boxes(tmp_path):
    _write_cvbench_jsonl(tmp_path, _cvbench_rows())
    out = subprocess.run([str(EXE), "items", "--task", "depth", "--data-root", str(tmp_path), "--json"],
                         capture_output=True, text=True, cwd=REPO, timeout=300)  # fmt: skip
    assert out.returncode == 0, out.stderr
    recs = [json.loads(line) for line in out.stdout.splitlines()]
    assert len(recs) == 2
    assert recs[0]["images"][0]["boxes"] == {"A": [10, 12, 40.5, 50], "B": [60, 20, 90, 70]}
