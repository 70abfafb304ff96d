"""Points through preprocessing, composition and homographies (property tests, checked against the real processors)."""

from __future__ import annotations

import dataclasses
import functools

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from PIL import Image

from conftest import hf_config_dir
from plainsight.geometry import (
    CROP_STYLES,
    PointTransform,
    PreprocessSpec,
    apply,
    apply_homography,
    plan,
    sample_points,
    spec_from_hf,
    spec_from_timm,
)  # fmt: skip

sizes = st.tuples(st.integers(1, 400), st.integers(1, 400))
edge = st.integers(1, 300)
pair = st.tuples(st.integers(1, 300), st.integers(1, 300))
crops = st.one_of(st.none(), pair)
styles = st.sampled_from(sorted(CROP_STYLES))
specs = st.one_of(
    st.builds(PreprocessSpec, resize=st.just("none"), crop=crops, crop_style=styles, letterbox=st.booleans()),
    st.builds(PreprocessSpec, resize=st.just("shortest_edge"), size=edge, crop=crops, crop_style=styles,
              letterbox=st.booleans()),
    st.builds(PreprocessSpec, resize=st.just("exact"), size=pair, crop=crops, crop_style=styles, letterbox=st.booleans()),
    st.builds(PreprocessSpec, resize=st.just("longest_edge"), size=edge, crop=crops),
    st.builds(PreprocessSpec, resize=st.just("keep_ratio"), size=pair, crop=crops, crop_style=styles),
    st.builds(PreprocessSpec, resize=st.just("shortest_longest"),
              size=st.integers(1, 200).flatmap(lambda s: st.tuples(st.just(s), st.integers(s, 400)))),
)  # fmt: skip


def coded_image(w: int, h: int) -> np.ndarray:
    """Every pixel knows where it came from: R = x + 1, G = y + 1 (0 is left for padding), B = 200."""
    assert w < 255 and h < 255
    img = np.zeros((h, w, 3), np.uint8)
    img[..., 0] = np.arange(w)[None, :] + 1
    img[..., 1] = np.arange(h)[:, None] + 1
    img[..., 2] = 200
    return img


def assert_pixels_land_where_planned(t: PointTransform, out_chw: np.ndarray) -> None:
    """Each source pixel visible in a crop/pad-only output sits exactly where t maps it."""
    rows, cols = np.nonzero(out_chw[2] == 200)
    assert len(rows) > 0
    src_x, src_y = out_chw[0][rows, cols] - 1, out_chw[1][rows, cols] - 1
    mapped = t.map_many(np.stack([src_x, src_y], axis=1))
    assert np.array_equal(mapped, np.stack([cols, rows], axis=1).astype(float))


@settings(max_examples=150, deadline=None)
@given(specs, sizes)
def test_plan_output_size_matches_apply(spec, size):
    try:
        planned = plan(spec, size).out_size
    except ValueError:  # a resize to zero pixels: apply must refuse it too
        with pytest.raises(ValueError):
            apply(spec, Image.new("RGB", size))
        return
    assert planned == apply(spec, Image.new("RGB", size)).size


@settings(max_examples=80, deadline=None)
@given(specs, st.integers(1, 120), st.integers(1, 120))
def test_crop_and_letterbox_move_pixels_exactly_as_planned(spec, w, h):
    """Without resampling (resize 'none') every visible source pixel lands at its mapped position, and only those."""
    spec = dataclasses.replace(spec, resize="none", size=None)
    t = plan(spec, (w, h))
    out = np.asarray(apply(spec, Image.fromarray(coded_image(w, h)))).transpose(2, 0, 1)
    xs, ys = np.meshgrid(np.arange(w), np.arange(h))
    mapped = t.map_many(np.stack([xs.ravel(), ys.ravel()], axis=1)) + 0.5
    inside = (mapped >= 0).all(axis=1) & (mapped[:, 0] < t.out_size[0]) & (mapped[:, 1] < t.out_size[1])
    assert int((out[2] == 200).sum()) == int(inside.sum())
    if inside.any():
        assert_pixels_land_where_planned(t, out)


@settings(max_examples=60, deadline=None)
@given(specs, st.integers(12, 200), st.integers(12, 200), st.data())
def test_a_marked_pixel_lands_where_plan_says(spec, w, h, data):
    """Nearest-neighbour upsampling of a single white pixel puts its block around where plan() maps it (±1 px)."""
    spec = dataclasses.replace(spec, resample=Image.Resampling.NEAREST)
    try:
        t = plan(spec, (w, h))
    except ValueError:  # a side resized to 0 pixels (covered by test_plan_output_size_matches_apply)
        assume(False)
    assume(t.scale[0] >= 1 and t.scale[1] >= 1)  # downsampling may drop a single pixel
    x, y = data.draw(st.integers(0, w - 1)), data.draw(st.integers(0, h - 1))
    assume(t.contains((x, y), margin=t.scale[0] + t.scale[1]))  # the whole block survives the crop
    img = np.zeros((h, w, 3), np.uint8)
    img[y, x] = 255
    out = np.asarray(apply(spec, Image.fromarray(img)))[..., 0].astype(float)
    ys, xs = np.nonzero(out)
    mx, my = t.map((x, y))
    assert abs(xs.mean() - mx) <= 1.0 and abs(ys.mean() - my) <= 1.0


# -- transformers' and timm's own code --------------------------------------------------------------------------

BACKENDS = ["pil", "torchvision"]


def hf_processor(cls_name: str, backend: str, **kwargs):
    import transformers

    return getattr(transformers, cls_name + ("Pil" if backend == "pil" else ""))(**kwargs)


@pytest.mark.parametrize("backend", BACKENDS)
@settings(max_examples=50, deadline=None)
@given(w=st.integers(1, 60), h=st.integers(1, 60), ch=st.integers(1, 70), cw=st.integers(1, 70))
def test_centre_crop_offsets_match_transformers(backend, w, h, ch, cw):
    """Odd differences round differently on the two backends (PIL pads ceil, torchvision floor); both match."""
    processor = hf_processor("CLIPImageProcessor", backend, do_resize=False, crop_size={"height": ch, "width": cw},
                             do_rescale=False, do_normalize=False)  # fmt: skip
    spec = spec_from_hf(processor)
    image = Image.fromarray(coded_image(w, h))
    out = np.asarray(processor(images=image, return_tensors="np").pixel_values[0]).round()
    assert out.shape == (3, ch, cw)
    assert np.array_equal(out, np.asarray(apply(spec, image)).transpose(2, 0, 1))
    if (out[2] == 200).any():
        assert_pixels_land_where_planned(plan(spec, (w, h)), out)


def test_backends_really_differ_on_an_odd_padding():
    """The case above is not vacuous: 5 px in a 8 px crop sits at x=2 on PIL, x=1 on torchvision."""
    shifts = []
    for backend in BACKENDS:
        proc = hf_processor("CLIPImageProcessor", backend, do_resize=False, crop_size={"height": 8, "width": 8})
        shifts.append(plan(spec_from_hf(proc), (5, 5)).map((0, 0)))
    assert shifts == [(2.0, 2.0), (1.0, 1.0)]


@pytest.mark.parametrize("backend", BACKENDS)
@settings(max_examples=40, deadline=None)
@given(w=st.integers(1, 900), h=st.integers(1, 900), s=st.integers(8, 400), extra=st.integers(0, 400),
       mode=st.sampled_from(["shortest_edge", "shortest_longest", "exact"]))  # fmt: skip
def test_resize_sizes_match_transformers(backend, w, h, s, extra, mode):
    size = {"shortest_edge": {"shortest_edge": s}, "shortest_longest": {"shortest_edge": s, "longest_edge": s + extra},
            "exact": {"height": s, "width": s + extra}}[mode]  # fmt: skip
    processor = hf_processor("CLIPImageProcessor", backend, size=size, do_center_crop=False, do_normalize=False)
    spec = spec_from_hf(processor)
    assert spec.resize == mode
    image = Image.new("RGB", (w, h))
    try:
        planned = plan(spec, (w, h)).out_size
    except ValueError:  # a side would shrink to 0 pixels: the processor fails too
        with pytest.raises((ValueError, RuntimeError)):
            processor(images=image, return_tensors="np")
        return
    pv = processor(images=image, return_tensors="np").pixel_values[0]
    assert pv.shape[1:] == tuple(reversed(planned))


@pytest.mark.parametrize("backend", BACKENDS)
@settings(max_examples=40, deadline=None)
@given(w=st.integers(1, 60), h=st.integers(1, 60))
def test_llava_pad_to_square_is_a_letterbox(backend, w, h):
    processor = hf_processor("LlavaImageProcessor", backend, do_pad=True, do_resize=False, do_center_crop=False,
                             do_rescale=False, do_normalize=False)  # fmt: skip
    spec = spec_from_hf(processor)
    assert spec.letterbox and spec.fill == tuple(int(m * 255) for m in processor.image_mean)
    image = Image.fromarray(coded_image(w, h))
    out = np.asarray(processor(images=image, return_tensors="np").pixel_values[0]).round()
    assert np.array_equal(out, np.asarray(apply(spec, image)).transpose(2, 0, 1))
    assert_pixels_land_where_planned(plan(spec, (w, h)), out)


@settings(max_examples=60, deadline=None)
@given(ih=st.integers(8, 64), iw=st.integers(8, 64), square=st.booleans(), crop_pct=st.sampled_from([0.875, 0.9, 0.95, 1.0]),
       crop_mode=st.sampled_from(["center", "squash"]), w=st.integers(3, 120), h=st.integers(3, 120))  # fmt: skip
def test_timm_eval_transform_matches(ih, iw, square, crop_pct, crop_mode, w, h):
    import timm.data

    config = dict(input_size=(3, ih, ih if square else iw), crop_pct=crop_pct, crop_mode=crop_mode,
                  interpolation="bicubic", mean=(0, 0, 0), std=(1, 1, 1))  # fmt: skip
    transform = timm.data.create_transform(**config, is_training=False)
    spec = spec_from_timm(config, source="timm:test")
    image = Image.fromarray(coded_image(w, h))
    out = (transform(image).numpy() * 255).round()
    expected = np.asarray(apply(spec, image)).transpose(2, 0, 1).astype(float)
    assert out.shape == expected.shape
    assert np.abs(out - expected).max() <= 1  # same PIL resample; ToTensor's float rounding only


def test_timm_spec_for_a_standard_vit():
    spec = spec_from_timm(
        {"input_size": (3, 224, 224), "crop_pct": 0.875, "interpolation": "bicubic", "crop_mode": "center"}
    )
    assert (spec.resize, spec.size, spec.crop, spec.crop_style) == ("shortest_edge", 256, (224, 224), "torchvision")
    # torchvision rounds the crop offset half-to-even: 21 - 10 = 11 -> round(5.5) = 6, where transformers floors to 5
    assert plan(dataclasses.replace(spec, size=10, crop=(10, 10)), (42, 20)).offset[0] == -6
    assert plan(PreprocessSpec("shortest_edge", 10, crop=(10, 10)), (42, 20)).offset[0] == -5


def test_dynamic_processors_are_refused_by_name():
    from transformers import Qwen2VLImageProcessorPil

    with pytest.raises(NotImplementedError, match="Qwen2VLImageProcessorPil"):
        spec_from_hf(Qwen2VLImageProcessorPil())


def test_describe_names_the_processor_and_steps():
    spec = spec_from_hf(hf_processor("CLIPImageProcessor", "pil", size={"shortest_edge": 224}))
    assert spec.describe() == "CLIPImageProcessorPil: shortest_edge 224 + centre crop 224"


# -- PointTransform -------------------------------------------------------------------------------------------

transforms = st.builds(
    lambda sx, sy, ox, oy: PointTransform((sx, sy), (ox, oy), (100, 100), (100, 100)),
    st.floats(0.1, 10),
    st.floats(0.1, 10),
    st.floats(-50, 50),
    st.floats(-50, 50),
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
    t = PointTransform.translation(dx, dy, (10, 10), (30, 20)).then(
        PointTransform.translation(-dx, -dy, (30, 20), (10, 10))
    )
    assert np.allclose(t.map(p), p, atol=1e-9) and t.in_size == t.out_size == (10, 10)


def test_composition_refuses_mismatched_sizes():
    with pytest.raises(ValueError, match="cannot compose"):
        PointTransform.identity((10, 10)).then(PointTransform.identity((12, 10)))


@given(st.integers(1, 2000), st.integers(1, 2000))
def test_grid_coordinates_of_pixel_centres(w, h):
    t = PointTransform.identity((w, h))
    assert t.to_grid((0, 0)) == pytest.approx((-1 + 1 / w, -1 + 1 / h))
    assert t.to_grid((w - 1, h - 1)) == pytest.approx((1 - 1 / w, 1 - 1 / h))
    assert t.to_grid(((w - 1) / 2, (h - 1) / 2)) == pytest.approx((0.0, 0.0), abs=1e-12)


@given(st.integers(1, 50), st.integers(1, 50), st.floats(-3, 60), st.floats(-3, 60))
def test_contains_is_the_output_extent(w, h, x, y):
    t = PointTransform.identity((w, h))
    assert t.contains((x, y)) == (-0.5 <= x < w - 0.5 and -0.5 <= y < h - 0.5)
    assert t.contains((x, y), margin=1.0) == (0.5 <= x < w - 1.5 and 0.5 <= y < h - 1.5)


def test_side_by_side_marker_cropped_away_by_a_centre_crop():
    t = plan(PreprocessSpec("shortest_edge", 336, crop=(336, 336)), (640, 240))
    assert not t.contains((10, 120)) and t.contains((320, 120))


# -- homographies and sampling --------------------------------------------------------------------------------

homographies = st.lists(st.floats(-0.3, 0.3), min_size=8, max_size=8).map(
    lambda v: np.array([[1 + v[0], v[1], 40 * v[2]], [v[3], 1 + v[4], 40 * v[5]], [1e-3 * v[6], 1e-3 * v[7], 1.0]])
)
pts = st.lists(st.tuples(st.floats(0, 300), st.floats(0, 300)), min_size=1, max_size=10).map(np.array)


@given(homographies, homographies, pts)
def test_homography_composition(h1, h2, p):
    assert np.allclose(apply_homography(h2 @ h1, p), apply_homography(h2, apply_homography(h1, p)), atol=1e-6)


@given(st.floats(-np.pi, np.pi), st.floats(0.5, 2), st.floats(-50, 50), st.floats(-50, 50), st.floats(0.1, 5), pts)
def test_homography_similarity_identity_and_scale_invariance(theta, s, tx, ty, k, p):
    c, si = np.cos(theta) * s, np.sin(theta) * s
    H = np.array([[c, -si, tx], [si, c, ty], [0, 0, 1.0]])
    expected = np.stack([c * p[:, 0] - si * p[:, 1] + tx, si * p[:, 0] + c * p[:, 1] + ty], axis=1)
    assert np.allclose(apply_homography(H, p), expected, atol=1e-8)
    assert np.allclose(apply_homography(k * H, p), expected, atol=1e-8)  # homographies are defined up to scale
    assert np.allclose(apply_homography(np.eye(3), p), p)


@settings(suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(1, 12), st.integers(1, 12), st.data())
def test_sample_points_interpolates_cell_coordinates(gw, gh, data):
    """A map whose value is the cell's (x, y) returns the point's coordinates on the grid (clamped at the border)."""
    fmap = torch.stack([torch.arange(gw, dtype=torch.float32).repeat(gh, 1),
                        torch.arange(gh, dtype=torch.float32)[:, None].repeat(1, gw)])  # fmt: skip
    t = PointTransform.identity((gw, gh))
    p = (data.draw(st.floats(-0.5, gw - 0.5)), data.draw(st.floats(-0.5, gh - 0.5)))
    out = sample_points(fmap, np.array([t.to_grid(p)]))
    assert out.shape == (1, 2)
    assert out[0].tolist() == pytest.approx([min(max(p[0], 0), gw - 1), min(max(p[1], 0), gh - 1)], abs=1e-4)


def test_sample_points_through_a_downscaling_transform():
    """A 16x16 image on a 4x4 grid: image point (5.5, 9.5) is the centre of cell (x=1, y=2), whose value is 2·4 + 1."""
    fmap = torch.arange(16, dtype=torch.float32).reshape(1, 4, 4)
    t = PointTransform.resize((16, 16), (4, 4))
    assert sample_points(fmap, torch.tensor([t.to_grid((5.5, 9.5))]))[0, 0].item() == pytest.approx(2 * 4 + 1)


# -- real processors from ../shared/hf-configs ------------------------------------------------------------------


@functools.cache
def real_processor(folder: str, backend: str):
    from transformers import AutoImageProcessor

    return AutoImageProcessor.from_pretrained(hf_config_dir(folder), backend=backend)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(
    "folder", ["facebook__dinov2-small", "openai__clip-vit-large-patch14", "llava-hf__llava-1.5-7b-hf"]
)
@settings(max_examples=12, deadline=None)
@given(w=st.integers(8, 640), h=st.integers(8, 640), fx=st.floats(0, 1), fy=st.floats(0, 1))
def test_real_processors_move_a_dot_where_plan_says(folder, backend, w, h, fx, fy):
    """A single bright pixel on black, through the real processor, peaks within 1 px of plan()'s mapping.

    The dot is drawn where a random point of the model input comes from (so centre crops of thin
    images do not discard most examples), off the source border: there the resampler's edge
    replication smears it outwards.
    """
    processor = real_processor(folder, backend)
    spec = spec_from_hf(processor)
    t = plan(spec, (w, h))
    out_c = (fx * t.out_size[0], fy * t.out_size[1])  # continuous position in the model input
    x = min(max(round((out_c[0] - t.offset[0]) / t.scale[0] - 0.5), 1), w - 2)
    y = min(max(round((out_c[1] - t.offset[1]) / t.scale[1] - 0.5), 1), h - 2)
    assume(t.contains((x, y)))
    img = np.zeros((h, w, 3), np.uint8)
    img[y, x] = 255
    pv = processor(images=Image.fromarray(img), return_tensors="np").pixel_values[0]
    assert pv.shape[1:] == (t.out_size[1], t.out_size[0])
    mean, std = np.asarray(processor.image_mean)[:, None, None], np.asarray(processor.image_std)[:, None, None]
    raw = (pv * std + mean).sum(0)
    row, col = np.unravel_index(np.argmax(raw), raw.shape)
    mx, my = t.map((x, y))
    assert abs(col - mx) <= 1.0 and abs(row - my) <= 1.0, (col, row, mx, my, spec.describe())


def test_a_spec_read_with_lists_equals_its_tuple_twin_and_plans_the_same():
    """Processor configs give sizes as JSON lists; a spec normalises them, so it hashes (plans are cached per spec)."""
    listed = PreprocessSpec(resize="exact", size=[32, 48], crop=[30, 30], fill=[1, 2, 3])
    tupled = PreprocessSpec(resize="exact", size=(32, 48), crop=(30, 30), fill=(1, 2, 3))
    assert listed == tupled and hash(listed) == hash(tupled)
    assert plan(listed, [100, 60]) == plan(tupled, (100, 60))
    assert plan(listed, (100, 60)).map((10.0, 20.0)) == pytest.approx(plan(tupled, (100, 60)).map((10.0, 20.0)))
