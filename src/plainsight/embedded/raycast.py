"""A small numpy ray caster: textured primitives, a pinhole camera, exact projection, depth and visibility.

The embedded 3D twins (semantic and functional correspondence, later depth) are
rendered with it so that every keypoint's pixel position, depth and visibility are
known exactly. Conventions: world y is up; the camera projects a point to
pixel-index coordinates (integer = pixel centre, x right, y down) by

    x = f·Xc/Zc + (W − 1)/2,   y = −f·Yc/Zc + (H − 1)/2,   f = (H/2) / tan(fov_y/2),

and the ray of pixel (x, y) is the inverse of that map, so a projected point lies
exactly on the ray its pixel casts. ``render`` supersamples by ``ss``×``ss`` and
box-filters down; the hi-res camera has ``f·ss`` and pixel ``ss·x + (ss − 1)/2``,
which is the same point in the final image.

Primitives are affine images of a unit shape (cube |x|,|y|,|z| ≤ 1; sphere; a capped
frustum of radius 1 at y = −1 and ``top`` at y = +1), given by a centre, a rotation
and half-extents, so intersections are closed-form.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

EPS = 1e-9


def rotation_y(angle: float) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])


def rotation_x(angle: float) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[1.0, 0.0, 0.0], [0.0, c, -s], [0.0, s, c]])


def rotation_z(angle: float) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


@dataclass(frozen=True)
class Camera:
    """A pinhole camera looking from ``eye`` at ``target``; ``size`` is (W, H) in pixels."""

    eye: tuple[float, float, float]
    target: tuple[float, float, float]
    size: tuple[int, int]
    fov_y: float = np.deg2rad(40.0)

    @property
    def focal(self) -> float:
        return (self.size[1] / 2) / np.tan(self.fov_y / 2)

    def basis(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(right, up, forward) unit vectors."""
        forward = np.asarray(self.target, float) - np.asarray(self.eye, float)
        forward /= np.linalg.norm(forward)
        right = np.cross(forward, [0.0, 1.0, 0.0])
        right /= np.linalg.norm(right)
        up = np.cross(right, forward)
        return right, up, forward

    def project(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Pixel-index (x, y) of world points (N, 3), and their depth along the view axis."""
        right, up, forward = self.basis()
        rel = np.atleast_2d(points) - np.asarray(self.eye, float)
        xc, yc, zc = rel @ right, rel @ up, rel @ forward
        w, h = self.size
        f = self.focal
        xy = np.stack([f * xc / zc + (w - 1) / 2, -f * yc / zc + (h - 1) / 2], axis=1)
        return xy, zc

    def rays(self, xy: np.ndarray) -> np.ndarray:
        """Unit directions of the rays through pixel-index points (N, 2)."""
        right, up, forward = self.basis()
        w, h = self.size
        f = self.focal
        u = (xy[:, 0] - (w - 1) / 2) / f
        v = -(xy[:, 1] - (h - 1) / 2) / f
        d = forward[None] + u[:, None] * right[None] + v[:, None] * up[None]
        return d / np.linalg.norm(d, axis=1, keepdims=True)

    def scaled(self, factor: int) -> "Camera":
        return Camera(self.eye, self.target, (self.size[0] * factor, self.size[1] * factor), self.fov_y)


@dataclass(frozen=True)
class Material:
    """Base colour (RGB in [0, 1]) optionally modulated by a texture (H, W, 3 floats in [0, 1])."""

    color: tuple[float, float, float]
    texture: np.ndarray | None = field(default=None, compare=False)
    texture_mix: float = 0.6
    texels_per_unit: float = 60.0  # texture pixels per world unit
    texture_offset: tuple[float, float] = (0.0, 0.0)


@dataclass(frozen=True)
class Primitive:
    """``kind`` ∈ {box, sphere, frustum}; the unit shape scaled by ``half`` along the rotated axes, at ``center``."""

    kind: str
    center: tuple[float, float, float]
    half: tuple[float, float, float]
    material: Material
    rotation: np.ndarray = field(default_factory=lambda: np.eye(3), compare=False)
    top: float = 1.0  # frustum only: radius at y = +1 relative to y = −1

    def to_local(self, points: np.ndarray) -> np.ndarray:
        return ((points - np.asarray(self.center)) @ self.rotation) / np.asarray(self.half)

    def to_world(self, local: np.ndarray) -> np.ndarray:
        return (np.atleast_2d(local) * np.asarray(self.half)) @ self.rotation.T + np.asarray(self.center)

    def intersect(self, origins: np.ndarray, dirs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Nearest positive hit distance per ray (inf on a miss) and the local-frame normal there."""
        o = self.to_local(origins)
        d = (dirs @ self.rotation) / np.asarray(self.half)
        if self.kind == "box":
            return _hit_box(o, d)
        if self.kind == "sphere":
            return _hit_sphere(o, d)
        if self.kind == "frustum":
            return _hit_frustum(o, d, self.top)
        raise ValueError(f"unknown primitive kind {self.kind!r}")

    def world_normal(self, local_normal: np.ndarray) -> np.ndarray:
        n = (local_normal / np.asarray(self.half)) @ self.rotation.T
        return n / np.maximum(np.linalg.norm(n, axis=1, keepdims=True), EPS)


def _first_positive(t0: np.ndarray, t1: np.ndarray) -> np.ndarray:
    return np.where(t0 > EPS, t0, np.where(t1 > EPS, t1, np.inf))


def _hit_sphere(o: np.ndarray, d: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    a = np.einsum("ij,ij->i", d, d)
    b = 2 * np.einsum("ij,ij->i", o, d)
    c = np.einsum("ij,ij->i", o, o) - 1
    disc = b * b - 4 * a * c
    root = np.sqrt(np.maximum(disc, 0))
    t = np.where(disc >= 0, _first_positive((-b - root) / (2 * a), (-b + root) / (2 * a)), np.inf)
    p = o + np.where(np.isfinite(t), t, 0)[:, None] * d
    return t, p


def _hit_box(o: np.ndarray, d: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    with np.errstate(divide="ignore", invalid="ignore"):
        inv = 1.0 / np.where(np.abs(d) < EPS, EPS, d)
        t1, t2 = (-1 - o) * inv, (1 - o) * inv
    t_near = np.minimum(t1, t2).max(axis=1)
    t_far = np.maximum(t1, t2).min(axis=1)
    hit = (t_near <= t_far) & (t_far > EPS)
    t = np.where(hit, np.where(t_near > EPS, t_near, t_far), np.inf)
    p = o + np.where(np.isfinite(t), t, 0)[:, None] * d
    axis = np.abs(p).argmax(axis=1)
    normal = np.zeros_like(p)
    normal[np.arange(len(p)), axis] = np.sign(p[np.arange(len(p)), axis])
    return t, normal


def _hit_frustum(o: np.ndarray, d: np.ndarray, top: float) -> tuple[np.ndarray, np.ndarray]:
    a0, b0 = (1 + top) / 2, (top - 1) / 2  # radius(y) = a0 + b0·y
    r_o = a0 + b0 * o[:, 1]
    qa = d[:, 0] ** 2 + d[:, 2] ** 2 - (b0 * d[:, 1]) ** 2
    qb = 2 * (o[:, 0] * d[:, 0] + o[:, 2] * d[:, 2] - r_o * b0 * d[:, 1])
    qc = o[:, 0] ** 2 + o[:, 2] ** 2 - r_o**2
    disc = qb * qb - 4 * qa * qc
    root = np.sqrt(np.maximum(disc, 0))
    safe_a = np.where(np.abs(qa) < EPS, EPS, qa)
    best = np.full(len(o), np.inf)
    normal = np.zeros_like(o)
    for t_side in ((-qb - root) / (2 * safe_a), (-qb + root) / (2 * safe_a)):
        p = o + t_side[:, None] * d
        ok = (disc >= 0) & (t_side > EPS) & (np.abs(p[:, 1]) <= 1) & (a0 + b0 * p[:, 1] >= 0) & (t_side < best)
        best = np.where(ok, t_side, best)
        n_side = np.stack([p[:, 0], -(a0 + b0 * p[:, 1]) * b0, p[:, 2]], axis=1)
        normal = np.where(ok[:, None], n_side, normal)
    for y_cap, radius in ((-1.0, 1.0), (1.0, top)):
        with np.errstate(divide="ignore", invalid="ignore"):
            t_cap = (y_cap - o[:, 1]) / np.where(np.abs(d[:, 1]) < EPS, EPS, d[:, 1])
        p = o + t_cap[:, None] * d
        ok = (t_cap > EPS) & (p[:, 0] ** 2 + p[:, 2] ** 2 <= radius**2) & (t_cap < best)
        best = np.where(ok, t_cap, best)
        normal = np.where(ok[:, None], np.array([0.0, y_cap, 0.0]), normal)
    return best, normal


@dataclass
class Hits:
    """Per ray: distance to the nearest surface (inf = background), which primitive, and the world normal."""

    t: np.ndarray
    index: np.ndarray  # −1 for background
    normal: np.ndarray


def cast(primitives: list[Primitive], origins: np.ndarray, dirs: np.ndarray) -> Hits:
    """The nearest hit of every ray among ``primitives``."""
    n = len(dirs)
    best = np.full(n, np.inf)
    index = np.full(n, -1)
    normal = np.zeros((n, 3))
    for i, prim in enumerate(primitives):
        t, local_n = prim.intersect(origins, dirs)
        closer = t < best
        if not closer.any():
            continue
        best = np.where(closer, t, best)
        index = np.where(closer, i, index)
        normal[closer] = prim.world_normal(local_n[closer])
    return Hits(best, index, normal)


LIGHT = np.array([-0.45, 0.8, 0.55]) / np.linalg.norm([-0.45, 0.8, 0.55])


def _albedo(prim: Primitive, points: np.ndarray, normals: np.ndarray) -> np.ndarray:
    """Material colour at world ``points``, textured by a planar projection along the dominant local axis."""
    mat = prim.material
    base = np.broadcast_to(np.asarray(mat.color, float), points.shape).copy()
    if mat.texture is None:
        return base
    local = (points - np.asarray(prim.center)) @ prim.rotation  # world units, in the primitive's axes
    local_n = np.abs(normals @ prim.rotation).argmax(axis=1)
    u = np.where(local_n == 0, local[:, 2], local[:, 0])
    v = np.where(local_n == 1, local[:, 2], local[:, 1])
    th, tw = mat.texture.shape[:2]
    px = ((u * mat.texels_per_unit + mat.texture_offset[0]) % tw).astype(int)
    py = ((-v * mat.texels_per_unit + mat.texture_offset[1]) % th).astype(int)
    tex = mat.texture[py, px]
    return base * (1 - mat.texture_mix) + tex * mat.texture_mix


def render(
    primitives: list[Primitive], camera: Camera, background: np.ndarray, *, ss: int = 2
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(RGB uint8 image, depth map, primitive index map) at ``camera.size``.

    ``background`` is an (H, W, 3) float image in [0, 1] at the final size. The depth
    map holds the view-axis depth of the surface seen at each pixel centre (inf on
    background); the index map says which primitive that is (−1 for background).
    """
    w, h = camera.size
    hi = camera.scaled(ss)
    ys, xs = np.mgrid[0 : h * ss, 0 : w * ss].astype(np.float64)
    dirs = hi.rays(np.stack([xs.ravel(), ys.ravel()], axis=1))
    origins = np.broadcast_to(np.asarray(camera.eye, float), dirs.shape)
    hits = cast(primitives, origins, dirs)
    bg_hi = np.repeat(np.repeat(background, ss, axis=0), ss, axis=1).reshape(-1, 3)
    color = bg_hi.copy()
    for i, prim in enumerate(primitives):
        sel = hits.index == i
        if not sel.any():
            continue
        points = origins[sel] + hits.t[sel, None] * dirs[sel]
        n = hits.normal[sel]
        n = np.where((np.einsum("ij,ij->i", n, dirs[sel]) > 0)[:, None], -n, n)  # face the camera
        shade = 0.35 + 0.65 * np.clip(n @ LIGHT, 0, 1)
        color[sel] = np.clip(_albedo(prim, points, n) * shade[:, None], 0, 1)
    image = color.reshape(h, ss, w, ss, 3).mean(axis=(1, 3))
    rgb = np.clip(np.round(image * 255), 0, 255).astype(np.uint8)
    centres = np.stack(np.meshgrid(np.arange(w), np.arange(h)), -1).reshape(-1, 2)
    depth, index = depth_and_index(primitives, camera, centres)
    return rgb, depth.reshape(h, w), index.reshape(h, w)


def depth_and_index(primitives: list[Primitive], camera: Camera, xy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """View-axis depth (inf on a miss) and primitive index (−1) of the surface seen through pixel-index points."""
    xy = np.asarray(xy, float).reshape(-1, 2)
    dirs = camera.rays(xy)
    origins = np.broadcast_to(np.asarray(camera.eye, float), dirs.shape)
    hits = cast(primitives, origins, dirs)
    _, _, forward = camera.basis()
    return hits.t * (dirs @ forward), hits.index


def depth_at(primitives: list[Primitive], camera: Camera, xy: np.ndarray) -> np.ndarray:
    """View-axis depth of the surface seen through pixel-index points (N, 2); inf where the ray misses."""
    return depth_and_index(primitives, camera, xy)[0]


def visible(primitives: list[Primitive], camera: Camera, points: np.ndarray, *, tol: float = 1e-3) -> np.ndarray:
    """Whether each world point is seen: inside the frame and nothing lies in front of it on its ray."""
    xy, z = camera.project(points)
    w, h = camera.size
    inside = (z > 0) & (xy[:, 0] >= 0) & (xy[:, 0] <= w - 1) & (xy[:, 1] >= 0) & (xy[:, 1] <= h - 1)
    seen = depth_at(primitives, camera, xy)
    return inside & (seen >= z * (1 - tol))
