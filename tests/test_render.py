"""Visual prompts: BLINK-style rings and labels, side-by-side composition."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from plainsight.render import compose_side_by_side, draw_boxes, draw_point_markers, marker_radius


def grey(w, h, v=128):
    return Image.new("RGB", (w, h), (v, v, v))


def test_ring_is_red_and_hollow_with_label_above():
    img = grey(200, 160)
    out = np.asarray(draw_point_markers(img, {"A": (100, 100)}))
    r = marker_radius((200, 160))
    assert tuple(out[100, 100]) == (128, 128, 128)  # centre not filled
    ring = out[100, 100 + r - 1 : 100 + r + 2]
    assert any(tuple(px) == (255, 0, 0) for px in ring)
    above = out[60 : 100 - r, 80:120]
    assert (above == 0).all(axis=-1).sum() > 20  # black label box
    assert (above > 150).all(axis=-1).sum() > 5  # white (anti-aliased) text
    assert not (out[100 + r + 3 :, :] != 128).any()  # nothing drawn below the ring


def test_label_goes_below_when_no_room_above():
    out = np.asarray(draw_point_markers(grey(200, 160), {"REF": (100, 2)}))
    assert (out[10:40, 70:130] == 0).all(axis=-1).sum() > 20


def test_markers_do_not_touch_the_input():
    img = grey(50, 50)
    draw_point_markers(img, {"A": (25, 25)})
    assert (np.asarray(img) == 128).all()


@settings(max_examples=30, deadline=None)
@given(st.lists(st.tuples(st.integers(5, 120), st.integers(5, 120)), min_size=1, max_size=3), st.data())
def test_composition_moves_points_by_the_offsets(sizes, data):
    rng = np.random.default_rng(0)
    images = [Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)) for w, h in sizes]
    canvas, offsets = compose_side_by_side(images)
    arr = np.asarray(canvas)
    assert canvas.height == max(h for _, h in sizes)
    for im, (dx, dy) in zip(images, offsets):
        x, y = data.draw(st.integers(0, im.width - 1)), data.draw(st.integers(0, im.height - 1))
        assert tuple(arr[y + dy, x + dx]) == im.getpixel((x, y))
        if im.height < canvas.height:
            assert (arr[im.height :, dx : dx + im.width] == 255).all()  # white padding
    for (dx, _), im, (nx, _) in zip(offsets, images, offsets[1:]):
        assert nx > dx + im.width and (arr[:, dx + im.width : nx] == 0).all()  # black separator


def test_boxes_are_outlined():
    out = np.asarray(draw_boxes(grey(100, 100), {"A": (10, 10, 50, 50), "B": (60, 60, 90, 90)},
                                colors={"A": (255, 0, 0), "B": (0, 0, 255)}))  # fmt: skip
    assert tuple(out[10, 30]) == (255, 0, 0) and tuple(out[11, 30]) == (255, 0, 0)  # at least 2 px thick
    assert tuple(out[30, 50]) == (255, 0, 0) and tuple(out[75, 90]) == (0, 0, 255)
    assert tuple(out[30, 30]) == (128, 128, 128) and tuple(out[75, 75]) == (128, 128, 128)  # outline only
