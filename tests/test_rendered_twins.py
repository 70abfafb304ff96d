"""The ray caster and the rendered twins: exact projection and visibility, and ground truth an oracle can read."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from plainsight.embedded.raycast import Camera, Material, Primitive, depth_at, render, visible
from plainsight.embedded.spair_twin import render_category
from plainsight.scoring import wilson_interval
from plainsight.tasks import LoadRequest, get_task

GREY = Material((0.5, 0.5, 0.5))


@settings(max_examples=60, deadline=None)
@given(
    eye=st.tuples(st.floats(-5, 5), st.floats(0.5, 5), st.floats(2, 6)),
    size=st.tuples(st.integers(16, 400), st.integers(16, 400)),
    point=st.tuples(st.floats(-1, 1), st.floats(-1, 1), st.floats(-1, 1)),
)
def test_projected_point_lies_on_its_pixels_ray(eye, size, point):
    camera = Camera(eye, (0.0, 0.0, 0.0), size)
    p = np.array([point])
    xy, depth = camera.project(p)
    ray = camera.rays(xy)[0]
    along = (p[0] - np.array(eye)) @ ray
    closest = np.array(eye) + along * ray
    assert np.linalg.norm(closest - p[0]) < 1e-6 * max(1.0, along)
    _, _, forward = camera.basis()
    assert depth[0] == pytest.approx(along * (ray @ forward), rel=1e-9)


def test_box_hit_distance_and_occlusion():
    camera = Camera((0.0, 0.0, 5.0), (0.0, 0.0, 0.0), (41, 41))
    box = Primitive("box", (0.0, 0.0, 0.0), (1.0, 1.0, 1.0), GREY)
    centre = np.array([[20.0, 20.0]])
    assert depth_at([box], camera, centre)[0] == pytest.approx(4.0)  # front face at z = 1
    front, behind = np.array([0.0, 0.0, 1.0]), np.array([0.0, 0.0, -1.0])
    assert visible([box], camera, np.stack([front, behind])).tolist() == [True, False]
    sphere = Primitive("sphere", (0.0, 0.0, 2.0), (0.5, 0.5, 0.5), GREY)  # now something sits in front
    assert visible([box, sphere], camera, front[None]).tolist() == [False]


def test_frustum_is_a_cone_between_its_caps():
    camera = Camera((0.0, 0.0, 10.0), (0.0, 0.0, 0.0), (101, 101))
    cone = Primitive("frustum", (0.0, 0.0, 0.0), (1.0, 1.0, 1.0), GREY, top=0.0)  # radius 1 at y=-1, 0 at y=+1
    xy, _ = camera.project(np.array([[0.0, -0.5, 0.0], [0.3, 0.2, 0.0], [0.9, 0.5, 0.0]]))
    depth = depth_at([cone], camera, xy)
    rays = camera.rays(xy)
    _, _, forward = camera.basis()
    for d, ray in zip(depth[:2], rays[:2]):
        p = np.array(camera.eye) + d / (ray @ forward) * ray
        assert -1 <= p[1] <= 1 and np.hypot(p[0], p[2]) == pytest.approx((1 - p[1]) / 2, abs=1e-9)
    assert np.isinf(depth[2])  # outside the cone at that height


def test_render_returns_depth_and_mask_at_pixel_centres():
    camera = Camera((0.0, 0.0, 5.0), (0.0, 0.0, 0.0), (32, 24))
    box = Primitive("box", (0.0, 0.0, 0.0), (0.5, 0.5, 0.5), Material((1.0, 0.0, 0.0)))
    image, depth, index = render([box], camera, np.zeros((24, 32, 3)))
    mask = index == 0
    assert set(np.unique(index)) == {-1, 0}
    assert image.shape == (24, 32, 3) and mask.sum() > 0
    assert np.allclose(depth[mask], 4.5) and np.isinf(depth[~mask]).all()
    assert image[mask].mean(axis=0)[0] > 100 and image[~mask].max() < 60  # object red, background black


def test_spair_twin_annotations_are_the_exact_projection(embedded_data: Path):
    annotations = embedded_data / "SPair-71k" / "ImageAnnotation" / "mug"
    for inst in render_category("mug", seed=0)[:3]:
        written = json.loads((annotations / f"{inst['name']}.json").read_text())
        assert written["kps"] == json.loads(json.dumps(inst["kps"]))
        staged = inst["staged"]
        assert [written["image_width"], written["image_height"]] == list(staged.camera.size)
        hidden = [k for k, v in written["kps"].items() if v is None]
        assert len(hidden) < len(written["kps"])
        for xy in written["kps"].values():
            if xy is not None:  # a visible keypoint lies on the object (corners sit on its silhouette: ±1 px)
                x, y = round(xy[0]), round(xy[1])
                assert staged.mask[max(0, y - 1) : y + 2, max(0, x - 1) : x + 2].any(), xy


def _spair_truth(root: Path) -> dict[tuple[str, tuple[float, float]], dict]:
    """(image path, point) → that image's annotated keypoints, read from ImageAnnotation files."""
    out = {}
    for path in (root / "ImageAnnotation").rglob("*.json"):
        data = json.loads(path.read_text())
        out[f"JPEGImages/{data['category']}/{data['filename']}"] = {
            k: v for k, v in data["kps"].items() if v is not None
        }
    return out


def _oracle_accuracy(items, truth_of, shuffle: np.random.Generator | None = None) -> tuple[int, int]:
    """Pick the candidate at the target's annotation of REF's keypoint id, found by REF's position in the source."""
    correct = 0
    for item in items:
        src, trg = item.images
        src_kps, trg_kps = truth_of(src.path), truth_of(trg.path)
        ref = src.points["REF"]
        ref_id = min(src_kps, key=lambda k: np.hypot(src_kps[k][0] - ref[0], src_kps[k][1] - ref[1]))
        if shuffle is not None:  # the control: a keypoint label drawn at random
            ref_id = sorted(src_kps)[int(shuffle.integers(len(src_kps)))]
        target = trg_kps.get(ref_id)
        if target is None:
            pred = item.choices[int(shuffle.integers(len(item.choices)))] if shuffle is not None else None
        else:
            pred = min(item.choices, key=lambda c: np.hypot(trg.points[c][0] - target[0], trg.points[c][1] - target[1]))
        correct += pred == item.gold
    return correct, len(items)


def _funkpoint_truth(root: Path):
    rows = {}
    with (root / "labels.csv").open() as fh:
        for row in csv.DictReader(fh):
            rows[row["image_path"]] = row

    def truth_of(rel: str) -> dict[str, tuple[float, float]]:
        row = rows[rel]
        with Image.open(root / rel) as im:
            w, h = im.size
        return {str(i): (float(row[f"p{i}_x"]) * w, float(row[f"p{i}_y"]) * h) for i in range(1, 6)}

    return truth_of


@pytest.mark.parametrize("task_id", ["semantic_correspondence", "functional_correspondence"])
def test_oracle_from_ground_truth_scores_one_and_shuffled_labels_score_chance(task_id, embedded_data: Path):
    items = get_task(task_id).load_items(LoadRequest(None))
    assert len(items) >= 100
    if task_id == "semantic_correspondence":
        annotations = _spair_truth(embedded_data / "SPair-71k")
        truth_of = annotations.__getitem__
    else:
        truth_of = _funkpoint_truth(embedded_data / "FunKPoint")
    correct, n = _oracle_accuracy(items, truth_of)
    assert correct == n, f"oracle {correct}/{n}"
    correct, n = _oracle_accuracy(items, truth_of, shuffle=np.random.default_rng(0))
    low, high = wilson_interval(correct, n)
    print(
        f"{task_id}: oracle {n}/{n}; shuffled-label control {correct}/{n} = {correct / n:.3f} [{low:.3f}, {high:.3f}]"
    )
    assert low <= 0.25 <= high
