"""What the VLM sees: letterbox instead of crop, whole-image visibility, and the paper's llava-1.5 setting.

The geometry is checked pixel for pixel (coded images through crop-only specs) and against the
real llava-1.5 processor (a dot lands where plan() says after the letterbox); the acceptance
runs the embedded low-level, semantic, MOCHI and Art_Style items through llava-1.5's real
processor config side by side: letterboxed, none is invalid; with the processor's own crop,
each is invalid and says how much of each image it would have seen.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from conftest import hf_config_dir
from plainsight.errors import ConfigError
from plainsight.geometry import PreprocessSpec, apply, letterbox_for, letterboxed, plan, spec_from_hf, visible_share
from plainsight.models.registry import load_models_toml
from plainsight.tasks import LoadRequest, get_task
from plainsight.views import vlm_view

small = st.integers(1, 120)
crop_specs = st.builds(
    PreprocessSpec, resize=st.just("none"), crop=st.tuples(small, small),
    crop_style=st.sampled_from(["transformers", "transformers-torchvision", "torchvision"]),
)  # fmt: skip
resize_crop_specs = st.one_of(
    st.builds(PreprocessSpec, resize=st.just("shortest_edge"), size=st.integers(8, 200), crop=st.tuples(small, small)),
    st.builds(PreprocessSpec, resize=st.just("exact"), size=st.tuples(small, small), crop=st.tuples(small, small)),
    st.builds(PreprocessSpec, resize=st.just("keep_ratio"), size=st.tuples(small, small), crop=st.tuples(small, small),
              crop_style=st.just("torchvision")),
)  # fmt: skip


def coded(w: int, h: int) -> Image.Image:
    """Every pixel knows where it came from: R = x + 1, G = y + 1 (0 is padding), B = 200."""
    img = np.zeros((h, w, 3), np.uint8)
    img[..., 0] = np.arange(w)[None, :] + 1
    img[..., 1] = np.arange(h)[:, None] + 1
    img[..., 2] = 200
    return Image.fromarray(img)


def kept_pixels(out: Image.Image) -> int:
    return int((np.asarray(out)[..., 2] == 200).sum())


@settings(max_examples=200, deadline=None)
@given(crop_specs, st.integers(1, 120), st.integers(1, 120))
def test_visible_share_is_the_share_of_pixels_a_crop_keeps(spec, w, h):
    assert visible_share(spec, (w, h)) == pytest.approx(kept_pixels(apply(spec, coded(w, h))) / (w * h))


@settings(max_examples=200, deadline=None)
@given(
    st.integers(1, 120),
    st.integers(1, 120),
    st.sampled_from(["transformers", "transformers-torchvision", "torchvision"]),
)
def test_a_letterboxed_image_keeps_every_pixel_where_plan_says(w, h, style):
    """expand2square then a square resize and crop at the square's own size: every source pixel arrives, exactly
    where the composed transform puts it."""
    side = max(w, h)
    spec = PreprocessSpec("shortest_edge", side, crop=(side, side), crop_style=style)
    box = letterbox_for(spec, (w, h))
    if box is None:
        assert w == h
        return
    assert box.canvas == (side, side)
    out = np.asarray(apply(spec, box.apply(coded(w, h))))
    assert kept_pixels(Image.fromarray(out)) == w * h
    rows, cols = np.nonzero(out[..., 2] == 200)
    source = np.stack([out[rows, cols, 0] - 1.0, out[rows, cols, 1] - 1.0], 1)
    mapped = box.transform().then(plan(spec, box.canvas)).map_many(source)
    assert np.array_equal(mapped, np.stack([cols, rows], 1).astype(float))


def test_a_crop_without_resize_cannot_be_letterboxed():
    with pytest.raises(ValueError, match="no resize"):
        letterbox_for(PreprocessSpec("none", crop=(10, 10)), (20, 10))


@settings(max_examples=200, deadline=None)
@given(resize_crop_specs, st.integers(1, 400), st.integers(1, 400))
def test_letterbox_keeps_the_whole_image_through_resize_and_crop(spec, w, h):
    try:
        plan(spec, (w, h))
        box = letterbox_for(spec, (w, h))
    except ValueError:  # a resize to zero pixels: refused with a message, not planned
        return
    if box is None:
        assert visible_share(spec, (w, h)) == 1.0
        return
    region = (box.offset[0], box.offset[1], box.offset[0] + w, box.offset[1] + h)
    assert visible_share(spec, box.canvas, region) == 1.0
    assert box.offset == ((box.canvas[0] - w) // 2, (box.canvas[1] - h) // 2)  # centred, expand2square's rounding
    assert box.canvas[0] >= w and box.canvas[1] >= h


# -- the real llava-1.5 processor ---------------------------------------------------------------------------------


@functools.cache
def llava_processor():
    from transformers import AutoImageProcessor

    return AutoImageProcessor.from_pretrained(hf_config_dir("llava-hf__llava-1.5-7b-hf"))


def through_llava(processor, image: Image.Image) -> np.ndarray:
    """The real processor's pixel values back in 0–255 RGB, (3, H, W)."""
    pv = processor(images=image, return_tensors="np").pixel_values[0]
    mean, std = np.asarray(processor.image_mean)[:, None, None], np.asarray(processor.image_std)[:, None, None]
    return (pv * std + mean) * 255


@settings(max_examples=25, deadline=None)
@given(w=st.integers(16, 700), h=st.integers(16, 700), fx=st.floats(0, 1), fy=st.floats(0, 1))
def test_llava_letterbox_moves_a_dot_where_plan_says_and_keeps_the_whole_image(w, h, fx, fy):
    processor = llava_processor()
    spec = spec_from_hf(processor)
    assert spec.fill == tuple(int(m * 255) for m in processor.image_mean)  # expand2square's colour
    box = letterbox_for(spec, (w, h))
    if box is None:
        assert w == h
        return
    t = box.transform().then(plan(spec, box.canvas))
    # A white dot on an image of the pad's own colour: no edge for the resampler to ring on.
    x, y = min(max(round(fx * (w - 1)), 1), w - 2), min(max(round(fy * (h - 1)), 1), h - 2)
    img = np.full((h, w, 3), spec.fill, np.uint8)
    img[y, x] = 255
    raw = through_llava(processor, box.apply(Image.fromarray(img))).sum(0)
    row, col = np.unravel_index(np.argmax(raw), raw.shape)
    mx, my = t.map((x, y))
    assert abs(col - mx) <= 1.0 and abs(row - my) <= 1.0
    # A black image on the grey pad: its whole extent reaches the model, where plan() puts it.
    dark = through_llava(processor, box.apply(Image.new("RGB", (w, h), (0, 0, 0)))).sum(0) < sum(spec.fill) / 2
    rows, cols = np.nonzero(dark)
    left, top = (c + 0.5 for c in t.map((-0.5, -0.5)))  # continuous edges of the image in the model input
    right, bottom = (c + 0.5 for c in t.map((w - 0.5, h - 0.5)))
    assert abs(cols.min() - left) <= 1.5 and abs(cols.max() + 1 - right) <= 1.5
    assert abs(rows.min() - top) <= 1.5 and abs(rows.max() + 1 - bottom) <= 1.5
    assert -1e-6 <= left and right <= t.out_size[0] + 1e-6 and -1e-6 <= top and bottom <= t.out_size[1] + 1e-6


EMBEDDED_TASKS = ("low_level_matching", "semantic_correspondence", "object_3d", "art_style")


def views(task_id: str, embedded_data, image_resize: str, limit: int | None = None):
    task = get_task(task_id)
    spec = spec_from_hf(llava_processor())
    items = task.load_items(LoadRequest(embedded_data, limit=limit))
    return items, [vlm_view(task.render, it, "side_by_side", spec, image_resize=image_resize) for it in items]


@pytest.mark.parametrize("task_id", EMBEDDED_TASKS)
def test_llava_side_by_side_letterboxed_sees_every_item_whole(task_id, embedded_data):
    """The acceptance of issue 17: with llava-1.5's real processor, 0 items invalid when letterboxed."""
    items, shown = views(task_id, embedded_data, "letterbox")
    invalid = [reason for _, reason in shown if reason]
    assert len(items) >= 100 and invalid == []
    spec = spec_from_hf(llava_processor())
    for images, _ in shown[:5]:
        assert len(images) == 1 and images[0].width == images[0].height  # padded to the crop's square
        assert visible_share(spec, images[0].size) == 1.0


@pytest.mark.parametrize("task_id", EMBEDDED_TASKS)
def test_llava_side_by_side_with_the_processor_crop_reports_each_image_share(task_id, embedded_data):
    items, shown = views(task_id, embedded_data, "processor")
    reasons = [reason for _, reason in shown]
    assert all(reasons), "every composite is wider than tall: the centre crop cuts it"
    shares = [[int(s) for s in re.findall(r"image \d+ (\d+)%", r)] for r in reasons]
    assert all(len(s) == len(items[0].images) for s in shares)
    assert all(min(s) < 100 for s in shares)
    if task_id == "object_3d":  # three views side by side: the crop keeps only the middle one
        assert all(s[1] == 100 and s[0] < 50 and s[2] < 50 for s in shares), shares[:3]


def test_blind_view_is_letterboxed_like_the_real_one(embedded_data):
    task = get_task("art_style")
    item = task.load_items(LoadRequest(embedded_data, limit=1))[0]
    spec = spec_from_hf(llava_processor())
    seen, _ = vlm_view(task.render, item, "side_by_side", spec)
    blind, reason = vlm_view(task.render, item, "side_by_side", spec, blind=True)
    assert reason is None and blind[0].size == seen[0].size
    assert blind[0].getpixel((0, 0)) == spec.fill == seen[0].getpixel((0, 0))


def test_separate_images_are_letterboxed_one_by_one(embedded_data):
    task = get_task("semantic_correspondence")
    item = task.load_items(LoadRequest(embedded_data, limit=1))[0]
    spec = PreprocessSpec("shortest_edge", 64, crop=(64, 64), fill=(9, 9, 9))
    shown, reason = vlm_view(task.render, item, "separate", spec)
    assert reason is None and len(shown) == len(item.images)
    assert all(im.width == im.height == max(src.size) for im, src in zip(shown, item.images))


def test_image_resize_is_a_checked_vlm_field_in_the_answer_key(tmp_path):
    toml = tmp_path / "models.toml"
    toml.write_text('[models.v]\nkind = "vlm"\nsource = "double:oracle"\n\n'
                    '[models.w]\nkind = "vlm"\nsource = "double:oracle"\nimage_resize = "processor"\n')  # fmt: skip
    entries = load_models_toml(toml)
    assert entries["v"].image_resize == "letterbox" and entries["w"].image_resize == "processor"
    assert entries["v"].fingerprint_fields()["image_resize"] != entries["w"].fingerprint_fields()["image_resize"]
    toml.write_text('[models.v]\nkind = "vlm"\nsource = "double:oracle"\nimage_resize = "crop"\n')
    with pytest.raises(ConfigError, match="image_resize"):
        load_models_toml(toml)
    toml.write_text('[models.e]\nkind = "encoder"\nsource = "pixels"\nimage_resize = "letterbox"\n')
    with pytest.raises(ConfigError, match="only applies to kind = 'vlm'"):
        load_models_toml(toml)


@pytest.fixture(scope="module")
def llava_15_folder(tmp_path_factory) -> Path:
    """llava-1.5-7b's real config (dimensions shrunk), tokenizer, template and 336-px CLIP processor, as a model folder."""
    from transformers import AutoModelForImageTextToText, AutoProcessor

    from plainsight.models.tiny import shrink_vlm_config

    folder = hf_config_dir("llava-hf__llava-1.5-7b-hf")
    out = tmp_path_factory.mktemp("llava-1.5-shrunk")
    AutoModelForImageTextToText.from_config(shrink_vlm_config(folder)).save_pretrained(out)
    AutoProcessor.from_pretrained(folder).save_pretrained(out)
    return out


@pytest.mark.parametrize("image_resize", ["letterbox", "processor"])
def test_a_llava_15_run_scores_every_item_letterboxed_and_none_cropped(image_resize, llava_15_folder, tmp_path,
                                                                       embedded_data):  # fmt: skip
    from plainsight.runner import Runner, RunOptions

    toml = tmp_path / "models.toml"
    toml.write_text(f'[models.llava]\nkind = "vlm"\nsource = "{llava_15_folder}"\nimage_mode = "side_by_side"\n'
                    f'image_resize = "{image_resize}"\nsmoke = true\n')  # fmt: skip
    runner = Runner(RunOptions(data_root=embedded_data, limit=3), load_models_toml(toml))
    for task_id in EMBEDDED_TASKS:
        run = runner.run(task_id, "llava", "vlm")
        assert run.info["image_resize"] == image_resize and len(run.outcomes) == 3
        if image_resize == "letterbox":
            assert all(o.valid and o.scores is not None for o in run.outcomes)
        else:
            assert all(o.reason == "invalid" and "only partly visible" in o.detail for o in run.outcomes)
    assert runner.model("llava").forward_count == (3 * len(EMBEDDED_TASKS) if image_resize == "letterbox" else 0)


def test_letterboxed_is_the_letterbox_and_its_transform():
    spec = PreprocessSpec("shortest_edge", 64, crop=(64, 64), fill=(7, 7, 7))
    image = coded(40, 20)
    shown, transform = letterboxed(spec, image)
    box = letterbox_for(spec, image.size)
    assert shown.size == box.canvas == (40, 40) and shown.getpixel((0, 0)) == (7, 7, 7)
    assert transform == box.transform().then(plan(spec, (40, 40)))
    square = coded(30, 30)
    same, plain = letterboxed(spec, square)
    assert same is square and plain == plan(spec, (30, 30))
