"""Marker coordinates read back from pixels: our BLINK-style rings on photos, after JPEG or PNG."""

from __future__ import annotations

import io
import time
from functools import lru_cache

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from PIL import Image, ImageDraw

from plainsight.embedded.photos import PHOTOS
from plainsight.markers import recover_markers
from plainsight.render import draw_point_markers, marker_radius

SIZES = [(160, 120), (120, 160), (200, 150), (240, 180), (320, 240), (300, 400), (400, 300), (480, 320), (500, 400),
         (640, 480)]  # fmt: skip
REDDISH = ("coffee", "rocket")  # photos with reds in them: a ring over red is the hard case
IMAGE_1, IMAGE_2 = ("REF",), ("A", "B", "C", "D")
MIN_GAP = 2.5  # ring radii between points (our items keep 5): a label box may cover part of another ring


@lru_cache(maxsize=None)
def _photo(name: str) -> np.ndarray:
    return PHOTOS[name].load()


def photo_background(rng: np.random.Generator, name: str, w: int, h: int) -> Image.Image:
    """A random crop of the photo with the aspect of (w, h), resized to it."""
    arr = _photo(name)
    scale = min(arr.shape[1] / w, arr.shape[0] / h) * rng.uniform(0.6, 1.0)
    cw, ch = int(w * scale), int(h * scale)
    x0, y0 = rng.integers(0, arr.shape[1] - cw + 1), rng.integers(0, arr.shape[0] - ch + 1)
    return Image.fromarray(arr[y0 : y0 + ch, x0 : x0 + cw]).resize((w, h), Image.BILINEAR)


def spread_points(rng: np.random.Generator, labels, w: int, h: int, margin: int = 2) -> dict[str, tuple[int, int]]:
    """Integer points inside the image, at least MIN_GAP ring radii apart."""
    gap = MIN_GAP * marker_radius((w, h))
    while True:
        points: dict[str, tuple[int, int]] = {}
        for label in labels:
            for _ in range(100):
                p = (int(rng.integers(margin, w - margin)), int(rng.integers(margin, h - margin)))
                if all(np.hypot(p[0] - q[0], p[1] - q[1]) >= gap for q in points.values()):
                    points[label] = p
                    break
        if len(points) == len(labels):
            return points


def encoded(image: Image.Image, fmt: str, quality: int = 90) -> Image.Image:
    """The image after a round trip through JPEG (at ``quality``) or PNG bytes."""
    buf = io.BytesIO()
    image.save(buf, format=fmt, **({"quality": quality} if fmt == "JPEG" else {}))
    buf.seek(0)
    return Image.open(buf).convert("RGB")


def centre_errors(found: dict[str, tuple[float, float]], truth: dict[str, tuple[float, float]]) -> list[float]:
    return [float(np.hypot(found[k][0] - truth[k][0], found[k][1] - truth[k][1])) for k in truth]


def grey(w: int, h: int, v: int = 128) -> Image.Image:
    return Image.new("RGB", (w, h), (v, v, v))


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_recovers_markers_drawn_on_photos(fmt):
    rng = np.random.default_rng(20240 if fmt == "JPEG" else 7)
    names = sorted(PHOTOS)
    n, recovered, errors, failures, seconds = 80, 0, [], [], 0.0
    for i in range(n):
        w, h = SIZES[i % len(SIZES)]
        name = REDDISH[i // 3 % 2] if i % 3 == 0 else names[rng.integers(len(names))]
        labels = IMAGE_1 if i % 4 == 0 else IMAGE_2
        truth = spread_points(rng, labels, w, h)
        image = encoded(draw_point_markers(photo_background(rng, name, w, h), truth), fmt, int(rng.integers(75, 96)))
        start = time.perf_counter()
        result = recover_markers(image, labels)
        seconds += time.perf_counter() - start
        if result.ok():
            recovered += 1
            assert list(result.points) == list(labels)
            errors += centre_errors(result.points, truth)
        else:
            assert result.points is None and result.reason
            failures.append(f"{name} {w}x{h}: {result.reason}")
    rate, median, worst = recovered / n, float(np.median(errors)), max(errors)
    print(
        f"\n{fmt}: recovered {recovered}/{n} images ({rate:.1%}), {len(errors)} points; centre error median "
        f"{median:.2f} px, max {worst:.2f} px; {1000 * seconds / n:.1f} ms/image; not recovered: {failures}"
    )
    assert rate >= 0.95
    assert median <= 0.5  # the brief asks for 1.5 px; the renderer's rounding alone is up to 0.5 px per axis
    assert worst <= 2.0


@settings(max_examples=60, deadline=None)
@given(
    size=st.tuples(st.integers(80, 400), st.integers(80, 400)),
    background=st.one_of(st.tuples(st.integers(0, 255), st.integers(0, 255), st.integers(0, 255)),
                         st.sampled_from(sorted(PHOTOS))),
    labels=st.sampled_from([IMAGE_1, IMAGE_2]),
    where=st.lists(st.tuples(st.floats(0, 1), st.floats(0, 1), st.booleans()), min_size=4, max_size=4),
    fmt=st.sampled_from(["JPEG", "PNG"]),
    quality=st.integers(75, 95),
)  # fmt: skip
# a corner: the clamped box leaves x to a faint quarter ring
@example(size=(80, 80), background="chelsea", labels=IMAGE_1, where=[(0.0, 0.0, True)] * 4, fmt="JPEG", quality=75)
def test_a_recovery_is_never_wrong(size, background, labels, where, fmt, quality):
    """Anywhere the markers are put, even over each other: a recovery has every label within 2 px."""
    w, h = size
    if isinstance(background, str):
        image = photo_background(np.random.default_rng(w * h), background, w, h)
    else:
        image = Image.new("RGB", (w, h), background)
    truth = {}
    for label, (fx, fy, whole) in zip(labels, where):
        x, y = fx * (w - 1), fy * (h - 1)
        truth[label] = (round(x), round(y)) if whole else (x, y)
    result = recover_markers(encoded(draw_point_markers(image, truth), fmt, quality), labels)
    if result.ok():
        assert max(centre_errors(result.points, truth)) <= 2.0, (truth, result.points)
    else:
        assert result.points is None and result.reason


def test_markers_near_the_border_and_box_below():
    w, h = 320, 240
    truth = {"A": (0, 0), "B": (w - 1, h - 1), "C": (3, 120), "D": (200, 1)}  # clipped rings, clamped boxes
    for fmt in ("PNG", "JPEG"):
        result = recover_markers(encoded(draw_point_markers(grey(w, h), truth), fmt), IMAGE_2)
        assert result.ok(), result.reason
        assert max(centre_errors(result.points, truth)) <= 1.0


def test_image_without_markers_is_not_recovered():
    rng = np.random.default_rng(3)
    for name in sorted(PHOTOS):
        result = recover_markers(encoded(photo_background(rng, name, 320, 240), "JPEG"), IMAGE_1)
        assert not result.ok() and result.points is None
        assert result.reason == "found 0 rings, expected 1 (REF)"


def test_a_missing_marker_is_reported_with_the_count():
    image = draw_point_markers(grey(320, 240), {"A": (40, 60), "B": (160, 60), "C": (280, 200)})
    result = recover_markers(encoded(image, "JPEG"), IMAGE_2)
    assert not result.ok()
    assert result.reason == "found 3 rings, expected 4 (A, B, C, D)"


def test_a_label_drawn_twice_is_reported():
    image = draw_point_markers(grey(320, 240), {"A": (40, 60), "B": (160, 60), "C": (280, 200)})
    image = draw_point_markers(image, {"C": (60, 200)})
    result = recover_markers(encoded(image, "PNG"), IMAGE_2)
    assert not result.ok()
    assert result.reason == "label C read twice"


@pytest.mark.parametrize("size", [(160, 120), (640, 480)])
def test_a_label_between_two_letters_is_ambiguous(size):
    w, h = size
    b, d = (draw_point_markers(grey(w, h), {label: (w // 2, h // 2)}) for label in ("B", "D"))
    result = recover_markers(Image.blend(b, d, 0.5), ("B",))  # the same ring under a half-B, half-D label
    assert not result.ok()
    assert "ambiguous" in result.reason and " B " in result.reason and " D " in result.reason


def test_a_label_not_expected_is_reported():
    image = draw_point_markers(grey(320, 240), {"A": (40, 60), "B": (160, 60), "C": (280, 200), "REF": (60, 200)})
    result = recover_markers(encoded(image, "JPEG"), IMAGE_2)
    assert not result.ok()
    assert "labelled REF" in result.reason


@pytest.mark.parametrize("colour", [(128, 128, 128), (230, 40, 40)])  # on red, the black box must not pass for a ring
@pytest.mark.parametrize("point", [(80, 60), (80, 30), (80, 3)])  # box above, box just fits above, box below
def test_a_label_box_without_its_ring_is_not_a_marker(colour, point):
    image = draw_point_markers(Image.new("RGB", (160, 120), colour), {"REF": point})
    r, (x, y) = marker_radius(image.size), point
    ImageDraw.Draw(image).ellipse((x - r - 1, y - r - 1, x + r + 2, y + r + 2), fill=colour)  # paint the ring out
    for fmt in ("PNG", "JPEG"):
        assert recover_markers(encoded(image, fmt), IMAGE_1).reason == "found 0 rings, expected 1 (REF)"


def test_rings_closer_than_a_diameter_are_refused():
    r = marker_radius((320, 240))  # one ring's evidence could be the other's arc
    image = draw_point_markers(grey(320, 240), {"A": (100, 100), "B": (100 + 2 * r, 100)})
    result = recover_markers(image, ("A", "B"))
    assert not result.ok() and "overlap" in result.reason


def test_a_ring_without_a_label_counts_as_an_extra_ring():
    image = grey(320, 240)
    r = marker_radius(image.size)
    ImageDraw.Draw(image).ellipse((200 - r, 160 - r, 200 + r, 160 + r), outline=(255, 0, 0), width=max(1, r // 3))
    result = recover_markers(encoded(draw_point_markers(image, {"REF": (80, 60)}), "PNG"), IMAGE_1)
    assert result.reason == "found 2 rings, expected 1 (REF)"


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_a_filled_red_disc_is_not_a_marker(fmt):
    image = grey(320, 240)
    r = marker_radius(image.size)
    draw = ImageDraw.Draw(image)
    draw.ellipse((200 - r, 160 - r, 200 + r, 160 + r), fill=(255, 0, 0))  # a disc the size of a ring
    draw.ellipse((40, 150, 40 + 4 * r, 150 + 4 * r), fill=(255, 0, 0))
    assert recover_markers(encoded(image, fmt), IMAGE_1).reason == "found 0 rings, expected 1 (REF)"
    result = recover_markers(encoded(draw_point_markers(image, {"REF": (150, 60)}), fmt), IMAGE_1)
    assert result.ok(), result.reason
    assert max(centre_errors(result.points, {"REF": (150, 60)})) <= 1.0


def test_expected_labels_must_be_distinct():
    with pytest.raises(ValueError):
        recover_markers(grey(100, 100), ("A", "A"))
