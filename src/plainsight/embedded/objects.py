"""Parametric objects for the rendered twins: furniture and tableware (semantic) and tools (functional).

Each builder draws one instance from a seeded generator (proportions, colours,
textures) and returns its primitives and named keypoints in the object frame: y up,
the object's front facing +z, its left at −x (as a viewer in front sees it). Keypoint
order is the category's keypoint id order ("0", "1", … in SPair files).
Tools stand handle-down along +y with their working end at the top; their five
keypoints follow FunKPoint's functional order (see FUNCTIONAL_POINTS).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from plainsight.embedded.raycast import Material, Primitive, rotation_z


@dataclass(frozen=True)
class Shape:
    primitives: list[Primitive]
    keypoints: dict[str, np.ndarray]  # name → world point (3,)

    def transformed(self, rotation: np.ndarray, offset: np.ndarray | None = None) -> "Shape":
        """The shape rotated about the origin, then moved by ``offset``."""
        offset = np.zeros(3) if offset is None else np.asarray(offset, float)
        prims = [
            Primitive(p.kind, tuple(rotation @ np.asarray(p.center) + offset), p.half, p.material,
                      rotation @ p.rotation, p.top)
            for p in self.primitives
        ]  # fmt: skip
        kps = {k: rotation @ v + offset for k, v in self.keypoints.items()}
        return Shape(prims, kps)

    def extent(self) -> tuple[np.ndarray, np.ndarray]:
        """Lower and upper corners of the keypoints' bounding box."""
        pts = np.stack(list(self.keypoints.values()))
        return pts.min(axis=0), pts.max(axis=0)


MaterialFactory = Callable[[np.random.Generator], Material]


def _box(center, half, mat, rotation=None) -> Primitive:
    return Primitive("box", tuple(map(float, center)), tuple(map(float, half)), mat,
                     np.eye(3) if rotation is None else rotation)  # fmt: skip


def _cyl(center, radius, half_height, mat, top=1.0, rotation=None) -> Primitive:
    return Primitive("frustum", tuple(map(float, center)), (float(radius), float(half_height), float(radius)), mat,
                     np.eye(3) if rotation is None else rotation, top=float(top))  # fmt: skip


def _sphere(center, half, mat) -> Primitive:
    return Primitive("sphere", tuple(map(float, center)), tuple(map(float, half)), mat)


def _p(*xyz: float) -> np.ndarray:
    return np.array(xyz, dtype=float)


# ---------------------------------------------------------------- semantic categories


def chair(rng: np.random.Generator, material: MaterialFactory) -> Shape:
    w, d = rng.uniform(0.85, 1.2), rng.uniform(0.8, 1.05)
    h, t = rng.uniform(0.85, 1.1), rng.uniform(0.07, 0.12)
    lw = rng.uniform(0.04, 0.07)
    bh, bt = rng.uniform(0.7, 1.05), rng.uniform(0.06, 0.1)
    wood, cushion = material(rng), material(rng)
    top = h + t / 2
    prims = [_box((0, h, 0), (w / 2, t / 2, d / 2), cushion)]
    for sx in (-1, 1):
        for sz in (-1, 1):
            prims.append(_box((sx * (w / 2 - lw), (h - t / 2) / 2, sz * (d / 2 - lw)), (lw, (h - t / 2) / 2, lw), wood))
    prims.append(_box((0, top + bh / 2, -d / 2 + bt / 2), (w / 2, bh / 2, bt / 2), wood))
    kps = {
        "seat_front_left": _p(-w / 2, top, d / 2),
        "seat_front_right": _p(w / 2, top, d / 2),
        "seat_back_left": _p(-w / 2, top, -d / 2 + bt),
        "seat_back_right": _p(w / 2, top, -d / 2 + bt),
        "foot_front_left": _p(-w / 2, 0, d / 2),
        "foot_front_right": _p(w / 2, 0, d / 2),
        "foot_back_left": _p(-w / 2, 0, -d / 2),
        "foot_back_right": _p(w / 2, 0, -d / 2),
        "back_top_left": _p(-w / 2, top + bh, -d / 2 + bt),
        "back_top_right": _p(w / 2, top + bh, -d / 2 + bt),
    }
    return Shape(prims, kps)


def table(rng: np.random.Generator, material: MaterialFactory) -> Shape:
    w, d = rng.uniform(1.3, 1.8), rng.uniform(0.75, 1.0)
    h, t = rng.uniform(0.7, 0.9), rng.uniform(0.05, 0.1)
    inset, lw = rng.uniform(0.0, 0.12), rng.uniform(0.04, 0.08)
    top_mat, leg_mat = material(rng), material(rng)
    prims = [_box((0, h - t / 2, 0), (w / 2, t / 2, d / 2), top_mat)]
    feet = {}
    for name_z, sz in (("front", 1), ("back", -1)):
        for name_x, sx in (("left", -1), ("right", 1)):
            cx, cz = sx * (w / 2 - inset - lw), sz * (d / 2 - inset - lw)
            prims.append(_box((cx, (h - t) / 2, cz), (lw, (h - t) / 2, lw), leg_mat))
            feet[f"foot_{name_z}_{name_x}"] = _p(cx + sx * lw, 0, cz + sz * lw)
    kps = {
        "top_front_left": _p(-w / 2, h, d / 2),
        "top_front_right": _p(w / 2, h, d / 2),
        "top_back_left": _p(-w / 2, h, -d / 2),
        "top_back_right": _p(w / 2, h, -d / 2),
        **feet,
    }
    return Shape(prims, kps)


def mug(rng: np.random.Generator, material: MaterialFactory) -> Shape:
    r, hh = rng.uniform(0.32, 0.45), rng.uniform(0.35, 0.5)  # base radius, half height
    taper = rng.uniform(0.9, 1.2)
    rt = r * taper
    body, inside = material(rng), Material((0.12, 0.08, 0.05))
    prims = [
        _cyl((0, hh, 0), r, hh, body, top=taper),
        _cyl((0, 2 * hh + 0.001, 0), rt * 0.9, 0.002, inside),  # the dark opening
    ]
    # Handle on the right (+x): two arms and an upright, as boxes.
    hw, reach = rng.uniform(0.04, 0.06), rng.uniform(0.22, 0.32)
    y_hi, y_lo = 2 * hh * 0.8, 2 * hh * 0.25
    x_in = (r + rt) / 2 * 0.95
    x_out = x_in + reach
    prims += [
        _box(((x_in + x_out) / 2, y_hi, 0), ((x_out - x_in) / 2, hw, hw), body),
        _box(((x_in + x_out) / 2, y_lo, 0), ((x_out - x_in) / 2, hw, hw), body),
        _box((x_out, (y_hi + y_lo) / 2, 0), (hw, (y_hi - y_lo) / 2 + hw, hw), body),
    ]
    kps = {
        "rim_front": _p(0, 2 * hh, rt),
        "rim_back": _p(0, 2 * hh, -rt),
        "rim_left": _p(-rt, 2 * hh, 0),
        "rim_right": _p(rt, 2 * hh, 0),
        "base_front": _p(0, 0, r),
        "base_left": _p(-r, 0, 0),
        "base_back": _p(0, 0, -r),
        "handle_top": _p(x_out + hw, y_hi + hw, 0),
        "handle_bottom": _p(x_out + hw, y_lo - hw, 0),
    }
    return Shape(prims, kps)


def lamp(rng: np.random.Generator, material: MaterialFactory) -> Shape:
    bw, bd, bh = rng.uniform(0.5, 0.7), rng.uniform(0.35, 0.5), rng.uniform(0.06, 0.1)
    pole_h, pole_r = rng.uniform(0.8, 1.1), rng.uniform(0.025, 0.04)
    sh, sr_bottom = rng.uniform(0.3, 0.42), rng.uniform(0.32, 0.45)
    top_ratio = rng.uniform(0.45, 0.75)
    pz = -bd / 4
    base, shade = material(rng), material(rng)
    switch = Material(tuple(rng.uniform(0.1, 0.9, 3)))
    y_shade = bh + pole_h
    prims = [
        _box((0, bh / 2, 0), (bw / 2, bh / 2, bd / 2), base),
        _box((bw / 4, bh + 0.03, bd / 2 - 0.06), (0.05, 0.03, 0.04), switch),
        _cyl((0, bh + pole_h / 2, pz), pole_r, pole_h / 2, base),
        _cyl((0, y_shade + sh / 2, pz), sr_bottom, sh / 2, shade, top=top_ratio),
    ]
    st = sr_bottom * top_ratio
    kps = {
        "base_front_left": _p(-bw / 2, bh, bd / 2),
        "base_front_right": _p(bw / 2, bh, bd / 2),
        "base_back_left": _p(-bw / 2, bh, -bd / 2),
        "base_back_right": _p(bw / 2, bh, -bd / 2),
        "switch": _p(bw / 4, bh + 0.06, bd / 2 - 0.06),
        "shade_bottom_front": _p(0, y_shade, pz + sr_bottom),
        "shade_bottom_left": _p(-sr_bottom, y_shade, pz),
        "shade_bottom_right": _p(sr_bottom, y_shade, pz),
        "shade_top_front": _p(0, y_shade + sh, pz + st),
        "shade_top_left": _p(-st, y_shade + sh, pz),
        "shade_top_right": _p(st, y_shade + sh, pz),
    }
    return Shape(prims, kps)


SEMANTIC_CATEGORIES: dict[str, Callable[[np.random.Generator, MaterialFactory], Shape]] = {
    "chair": chair,
    "lamp": lamp,
    "mug": mug,
    "table": table,
}


# ---------------------------------------------------------------- tools (functional correspondence)

# FunKPoint orders five keypoints per (image, action); ours, for every tool:
FUNCTIONAL_POINTS = ("handle_end", "grip", "neck", "working_centre", "working_tip")


def _tool(handle_len: float, handle_r: float, head: list[Primitive], working_centre, working_tip, neck_y, mat) -> Shape:
    prims = [_cyl((0, handle_len / 2, 0), handle_r, handle_len / 2, mat)] + head
    kps = {
        "handle_end": _p(0, 0, handle_r),
        "grip": _p(0, handle_len * 0.45, handle_r),
        "neck": _p(0, neck_y - 0.05, handle_r),  # just below the head, which would hide it
        "working_centre": np.asarray(working_centre, float),
        "working_tip": np.asarray(working_tip, float),
    }
    return Shape(prims, kps)


def spoon(rng, material):
    L, r = rng.uniform(1.0, 1.3), rng.uniform(0.03, 0.045)
    bw, bl, bt = rng.uniform(0.16, 0.22), rng.uniform(0.24, 0.32), rng.uniform(0.04, 0.06)
    mat = material(rng)
    cy = L + bl * 0.8
    head = [_sphere((0, cy, 0), (bw, bl, bt), mat)]
    return _tool(L, r, head, (0, cy, bt), (0, cy + bl, 0), L, mat)


def ladle(rng, material):
    L, r = rng.uniform(1.2, 1.5), rng.uniform(0.025, 0.04)
    br = rng.uniform(0.2, 0.26)
    mat = material(rng)
    cy = L + br * 0.9
    head = [_sphere((0, cy, 0), (br, br, br * 0.8), mat)]
    return _tool(L, r, head, (0, cy, br * 0.8), (0, cy + br, 0), L, mat)


def shovel(rng, material):
    L, r = rng.uniform(1.0, 1.3), rng.uniform(0.035, 0.05)
    bw, bl, bt = rng.uniform(0.2, 0.28), rng.uniform(0.28, 0.38), 0.025
    handle, blade = material(rng), material(rng)
    cy = L + bl
    head = [_box((0, cy, 0), (bw, bl, bt), blade)]
    return _tool(L, r, head, (0, cy, bt), (0, cy + bl, bt), L, handle)


def hammer(rng, material):
    L, r = rng.uniform(0.9, 1.2), rng.uniform(0.04, 0.055)
    hl, hs = rng.uniform(0.3, 0.42), rng.uniform(0.07, 0.1)
    handle, head_mat = material(rng), material(rng)
    cy = L + hs
    head = [_box((0, cy, 0), (hl, hs, hs), head_mat)]
    # The striking face is the head's +x end.
    return _tool(L, r, head, (hl, cy, 0), (hl, cy + hs, 0), L, handle)


def pestle(rng, material):
    L, r = rng.uniform(0.8, 1.0), rng.uniform(0.05, 0.07)
    br = rng.uniform(0.12, 0.16)
    mat = material(rng)
    cy = L + br * 0.8
    head = [_cyl((0, L + br * 0.4, 0), br * 0.9, br * 0.4, mat, top=r / (br * 0.9) + 1.0),
            _sphere((0, cy, 0), (br, br, br), mat)]  # fmt: skip
    return _tool(L, r, head, (0, cy, br), (0, cy + br, 0), L, mat)


def mallet(rng, material):
    L, r = rng.uniform(0.9, 1.1), rng.uniform(0.035, 0.05)
    hr, hl = rng.uniform(0.12, 0.16), rng.uniform(0.22, 0.3)
    handle, head_mat = material(rng), material(rng)
    cy = L + hr
    head = [_cyl((0, cy, 0), hr, hl, head_mat, rotation=rotation_z(np.pi / 2))]  # axis along x
    return _tool(L, r, head, (-hl, cy, 0), (-hl, cy + hr, 0), L, handle)


def brush(rng, material):
    L, r = rng.uniform(0.7, 0.9), rng.uniform(0.05, 0.07)
    bw, bh, bd = rng.uniform(0.2, 0.28), rng.uniform(0.08, 0.12), rng.uniform(0.08, 0.1)
    handle, bristles = material(rng), material(rng)
    ferrule_y = L + 0.08
    head = [_box((0, ferrule_y, 0), (bw, 0.08, bd), handle),
            _box((0, ferrule_y + 0.08 + bh, 0), (bw * 0.95, bh, bd * 0.9), bristles)]  # fmt: skip
    tip_y = ferrule_y + 0.08 + 2 * bh
    return _tool(L, r, head, (0, tip_y, 0), (bw * 0.95, tip_y, 0), L, handle)


def toothbrush(rng, material):
    L, r = rng.uniform(1.1, 1.4), rng.uniform(0.03, 0.04)
    hl, bh = rng.uniform(0.16, 0.22), rng.uniform(0.06, 0.09)
    handle, bristles = material(rng), material(rng)
    cy = L + hl
    head = [_box((0, cy, 0), (0.05, hl, 0.035), handle),
            _box((0, cy, 0.035 + bh), (0.045, hl * 0.8, bh), bristles)]  # fmt: skip
    return _tool(L, r, head, (0, cy, 0.035 + 2 * bh), (0, cy + hl * 0.8, 0.035 + 2 * bh), L, handle)


def broom(rng, material):
    L, r = rng.uniform(1.3, 1.6), rng.uniform(0.035, 0.045)
    bw, bh = rng.uniform(0.35, 0.45), rng.uniform(0.14, 0.2)
    handle, bristles = material(rng), material(rng)
    cy = L + bh
    head = [_cyl((0, cy, 0), bw, bh, bristles, top=0.55)]
    return _tool(L, r, head, (0, cy + bh, 0), (bw * 0.55, cy + bh, 0), L, handle)


TOOLS_BY_ACTION: dict[str, dict[str, Callable[[np.random.Generator, MaterialFactory], Shape]]] = {
    "Scoop": {"spoon": spoon, "ladle": ladle, "shovel": shovel},
    "Mash/Pound": {"hammer": hammer, "pestle": pestle, "mallet": mallet},
    "Brush/Dust": {"brush": brush, "toothbrush": toothbrush, "broom": broom},
}
