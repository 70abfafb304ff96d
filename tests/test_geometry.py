"""Points through preprocessing, composition and homographies (property tests)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import hf_config_dir
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from PIL import Image

from plainsight.geometry import (
    PointTransform, PreprocessSpec, apply, apply_homography, plan, sample_points, spec_from_hf, spec_from_timm,
)  # fmt: skip

sizes = st.tuples(st.integers(8, 400), st.integers(8, 400))
specs = st.one_of(
    st.builds(PreprocessSpec, resize=st.just("shortest_edge"), size=st.integers(8, 300),
              crop=st.one_of(st.none(), st.tuples(st.integers(4, 300), st.integers(4, 300))),
              crop_rounding=st.sampled_from(["floor", "round"]), letterbox=st.booleans()),
    st.builds(PreprocessSpec, resize=st.just("exact"), size=st.tuples(st.integers(4, 300), st.integers(4, 300)),
              letterbox=st.booleans()),
    st.builds(PreprocessSpec, resize=st.just("longest_edge"), size=st.integers(8, 300)),
    st.builds(PreprocessSpec, resize=st.just("shortest_longest"),
              size=st.integers(8, 200).flatmap(lambda s: st.tuples(st.just(s), st.integers(s + 1, 400)))),
)  # fmt: skip


@settings(max_examples=60, deadline=None)
@given(specs, sizes)
def test_plan_output_size_matches_apply(spec, size):
    assert plan(spec, size).out_size == apply(spec, Image.new("RGB", size)).size


@settings(max_examples=40, deadline=None)
@given(specs, st.integers(12, 200), st.integers(12, 200), st.data())
def test_a_marked_pixel_lands_where_plan_says(spec, w, h, data):
    """Nearest-neighbour preprocessing of a single white pixel puts it where plan() maps it (±1 px)."""
    spec = PreprocessSpec(spec.resize, spec.size, spec.crop, spec.crop_rounding, spec.letterbox, resample=Image.Resampling.NEAREST)
    t = plan(spec, (w, h))
    assume(t.scale[0] >= 1 and t.scale[1] >= 1)  # downsampling may drop a single pixel
    x, y = data.draw(st.integers(0, w - 1)), data.draw(st.integers(0, h - 1))
    assume(t.contains((x, y), margin=1.5))
    img = np.zeros((h, w, 3), np.uint8)
    img[y, x] = 255
    out = np.asarray(apply(spec, Image.fromarray(img)))[..., 0].astype(float)
    ys, xs = np.nonzero(out)
    mx, my = t.map((x, y))
    assert abs(xs.mean() - mx) <= 1.0 and abs(ys.mean() - my) <= 1.0


transforms = st.builds(
    lambda sx, sy, ox, oy: PointTransform((sx, sy), (ox, oy), (100, 100), (100, 100)),
    st.floats(0.1, 10), st.floats(0.1, 10), st.floats(-50, 50), st.floats(-50, 50),
)
points = st.tuples(st.floats(-100, 500), st.floats(-100, 500))


@given(transforms, transforms, transforms, points)
def test_composition_is_associative_and_matches_sequential_mapping(a, b, c, p):
    left = a.then(b).then(c).map(p)
    right = a.then(b.then(c)).map(p)
    seq = c.map(b.map(a.map(p)))
    assert np.allclose(left, right, atol=1e-6) and np.allclose(left, seq, atol=1e-6)


@given(st.floats(-200, 200), st.floats(-200, 200), points)
def test_translation_round_trips(dx, dy, p):
    t = PointTransform.translation(dx, dy, (10, 10), (10, 10)).then(PointTransform.translation(-dx, -dy, (10, 10), (10, 10)))
    assert np.allclose(t.map(p), p, atol=1e-9)


def test_grid_coordinates_of_pixel_centres():
    t = PointTransform.identity((16, 8))
    assert t.to_grid((0, 0)) == pytest.approx((-1 + 1 / 16, -1 + 1 / 8))
    assert t.to_grid((15, 7)) == pytest.approx((1 - 1 / 16, 1 - 1 / 8))
    assert t.to_grid((7.5, 3.5)) == pytest.approx((0.0, 0.0))


def test_centre_crop_offsets_follow_transformers_floor_and_torchvision_round():
    # 2:1 image, shortest edge 10 -> 21x10 (int(10*42/20)), crop 10: floor offset 5, round offset round(5.5)=6
    floor = plan(PreprocessSpec("shortest_edge", 10, crop=(10, 10)), (42, 20))
    rnd = plan(PreprocessSpec("shortest_edge", 10, crop=(10, 10), crop_rounding="round"), (42, 20))
    assert floor.offset[0] == -5 and rnd.offset[0] == -6


def test_side_by_side_marker_cropped_away_by_a_centre_crop():
    t = plan(PreprocessSpec("shortest_edge", 336, crop=(336, 336)), (640, 240))
    assert not t.contains((10, 120)) and t.contains((320, 120))


homographies = st.lists(st.floats(-0.3, 0.3), min_size=8, max_size=8).map(
    lambda v: np.array([[1 + v[0], v[1], 40 * v[2]], [v[3], 1 + v[4], 40 * v[5]], [1e-3 * v[6], 1e-3 * v[7], 1.0]])
)
pts = st.lists(st.tuples(st.floats(0, 300), st.floats(0, 300)), min_size=1, max_size=10).map(np.array)


@given(homographies, homographies, pts)
def test_homography_composition(h1, h2, p):
    assert np.allclose(apply_homography(h2 @ h1, p), apply_homography(h2, apply_homography(h1, p)), atol=1e-6)


@given(st.floats(-np.pi, np.pi), st.floats(0.5, 2), st.floats(-50, 50), st.floats(-50, 50), pts)
def test_homography_similarity_and_identity(theta, s, tx, ty, p):
    c, si = np.cos(theta) * s, np.sin(theta) * s
    H = np.array([[c, -si, tx], [si, c, ty], [0, 0, 1.0]])
    expected = p @ np.array([[c, si], [-si, c]]) + [tx, ty]
    assert np.allclose(apply_homography(H, p), expected, atol=1e-8)
    assert np.allclose(apply_homography(np.eye(3), p), p)


@given(st.integers(2, 12), st.integers(2, 12), st.data())
def test_sample_points_interpolates_cell_coordinates(gw, gh, data):
    xs = torch.arange(gw, dtype=torch.float32).repeat(gh, 1)
    fmap = torch.stack([xs, torch.arange(gh, dtype=torch.float32)[:, None].repeat(1, gw)])
    t = PointTransform.identity((gw, gh))
    p = (data.draw(st.floats(0, gw - 1)), data.draw(st.floats(0, gh - 1)))
    out = sample_points(fmap, np.array([t.to_grid(p)]))
    assert out.shape == (1, 2)
    assert out[0].tolist() == pytest.approx([p[0], p[1]], abs=1e-4)


def test_timm_spec():
    spec = spec_from_timm({"input_size": (3, 224, 224), "crop_pct": 0.875, "interpolation": "bicubic", "crop_mode": "center"})
    assert spec.size == 256 and spec.crop == (224, 224) and spec.crop_rounding == "round"


@pytest.mark.parametrize(
    "folder", ["facebook__dinov2-small", "openai__clip-vit-large-patch14", "llava-hf__llava-1.5-7b-hf"]
)
@settings(max_examples=12, deadline=None)
@given(w=st.integers(60, 700), h=st.integers(60, 700), fx=st.floats(0.05, 0.95), fy=st.floats(0.05, 0.95))
def test_real_processors_move_a_dot_where_plan_says(folder, w, h, fx, fy):
    from transformers import AutoImageProcessor

    processor = AutoImageProcessor.from_pretrained(hf_config_dir(folder))
    spec = spec_from_hf(processor)
    t = plan(spec, (w, h))
    x, y = int(fx * (w - 1)), int(fy * (h - 1))
    assume(t.contains((x, y), margin=3 * max(t.scale) + 2))  # the whole (scaled) 5-px dot survives the crop
    img = np.zeros((h, w, 3), np.uint8)
    img[max(0, y - 2) : y + 3, max(0, x - 2) : x + 3] = 255
    pv = processor(images=Image.fromarray(img), return_tensors="pt").pixel_values[0].sum(0).numpy()
    assert pv.shape == (t.out_size[1], t.out_size[0])
    weights = np.clip(pv - pv.min() - 0.5 * (pv.max() - pv.min()), 0, None)
    cy, cx = (np.indices(pv.shape) * weights).reshape(2, -1).sum(1) / weights.sum()
    mx, my = t.map((x, y))
    assert abs(cx - mx) <= 1.0 and abs(cy - my) <= 1.0, (cx, cy, mx, my, spec)
