"""The embedded HPatches twin: packaged photos under exact homographies and lighting changes.

``v_<photo>`` sequences: image k is image 1 seen through a random homography
(corner jitter, rotation, scale), rendered from the larger photo around image 1's
crop so the whole frame has content; ``H_1_k`` is exact. ``i_<photo>`` sequences:
identity homography with gain, gamma, colour, noise and blur changes. Written as
binary PPM like the real release; deterministic for a seed.
"""

from __future__ import annotations

import zlib
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter

from plainsight.data.hpatches import FOLDER, load_pairs
from plainsight.embedded.photos import PHOTOS

SIZE = (160, 120)  # (W, H) of every image
CONTEXT = 2  # the photo is resized to CONTEXT × SIZE; image 1 is its centre crop
V_PHOTOS = ("astronaut", "coffee", "rocket", "china", "grace_hopper")
I_PHOTOS = ("chelsea", "flower", "camera", "immunohistochemistry", "gravel")


def _base(photo: str) -> np.ndarray:
    """The photo centre-cropped to 4:3 and resized to CONTEXT × SIZE, float RGB."""
    arr = PHOTOS[photo].load()
    h, w = arr.shape[:2]
    target_ratio = SIZE[0] / SIZE[1]
    if w / h > target_ratio:
        cw = int(round(h * target_ratio))
        arr = arr[:, (w - cw) // 2 : (w - cw) // 2 + cw]
    else:
        ch = int(round(w / target_ratio))
        arr = arr[(h - ch) // 2 : (h - ch) // 2 + ch]
    big = Image.fromarray(arr).resize((SIZE[0] * CONTEXT, SIZE[1] * CONTEXT), Image.Resampling.LANCZOS)
    return np.asarray(big, dtype=np.float64)


def _crop_offset() -> tuple[float, float]:
    return (SIZE[0] * (CONTEXT - 1) / 2, SIZE[1] * (CONTEXT - 1) / 2)


def _bilinear(img: np.ndarray, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """Sample img (H, W, 3) at pixel-index coordinates, clamping at the border."""
    h, w = img.shape[:2]
    xs = np.clip(xs, 0, w - 1)
    ys = np.clip(ys, 0, h - 1)
    x0 = np.floor(xs).astype(int)
    y0 = np.floor(ys).astype(int)
    x1, y1 = np.minimum(x0 + 1, w - 1), np.minimum(y0 + 1, h - 1)
    fx, fy = (xs - x0)[..., None], (ys - y0)[..., None]
    top = img[y0, x0] * (1 - fx) + img[y0, x1] * fx
    bottom = img[y1, x0] * (1 - fx) + img[y1, x1] * fx
    return top * (1 - fy) + bottom * fy


def homography_from_points(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """The 3×3 H with H·src = dst for four point pairs (direct linear transform)."""
    rows = []
    for (x, y), (u, v) in zip(src, dst):
        rows.append([x, y, 1, 0, 0, 0, -u * x, -u * y, -u])
        rows.append([0, 0, 0, x, y, 1, -v * x, -v * y, -v])
    _, _, vt = np.linalg.svd(np.asarray(rows, dtype=np.float64))
    H = vt[-1].reshape(3, 3)
    return H / H[2, 2]


def random_homography(rng: np.random.Generator, strength: float) -> np.ndarray:
    """Image 1 → image k: rotation, scale and perspective corner jitter about the centre."""
    w, h = SIZE
    corners = np.array([[0, 0], [w - 1, 0], [w - 1, h - 1], [0, h - 1]], dtype=np.float64)
    centre = corners.mean(axis=0)
    angle = rng.uniform(-1, 1) * 0.9 * strength
    scale = float(np.exp(rng.uniform(-1, 1) * 0.5 * strength))
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]]) * scale
    moved = (corners - centre) @ rot.T + centre
    moved += rng.uniform(-1, 1, size=(4, 2)) * np.array([w, h]) * 0.10 * strength
    moved += rng.uniform(-1, 1, size=2) * np.array([w, h]) * 0.05 * strength
    return homography_from_points(corners, moved)


def _warp(base: np.ndarray, H: np.ndarray) -> np.ndarray:
    w, h = SIZE
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float64)
    q = np.stack([xs.ravel(), ys.ravel(), np.ones(xs.size)])
    p = np.linalg.inv(H) @ q
    px, py = p[0] / p[2], p[1] / p[2]
    ox, oy = _crop_offset()
    return _bilinear(base, (px + ox).reshape(h, w), (py + oy).reshape(h, w))


def _relight(img: np.ndarray, rng: np.random.Generator, strength: float) -> np.ndarray:
    x = img / 255.0
    gamma = float(np.exp(rng.uniform(-1, 1) * 0.9 * strength))
    gain = float(np.exp(rng.uniform(-1, 1) * 0.6 * strength))
    colour = 1 + rng.uniform(-1, 1, size=3) * 0.15 * strength
    h, w = x.shape[:2]
    # Uneven light: a gain ramp across the frame in a random direction.
    theta = rng.uniform(0, 2 * np.pi)
    ys, xs = np.mgrid[0:h, 0:w]
    ramp = ((xs / w - 0.5) * np.cos(theta) + (ys / h - 0.5) * np.sin(theta))[..., None]
    x = np.clip(x, 0, 1) ** gamma * gain * colour * (1 + 1.2 * strength * ramp) + rng.uniform(-1, 1) * 0.08 * strength
    x = x * 255 + rng.normal(0, 8.0 * strength, size=x.shape)
    out = np.clip(np.round(x), 0, 255).astype(np.uint8)
    if strength > 0.5:
        out = np.asarray(Image.fromarray(out).filter(ImageFilter.GaussianBlur(1.2 * strength)))
    return out


def _crop_image1(base: np.ndarray) -> np.ndarray:
    ox, oy = (int(v) for v in _crop_offset())
    return base[oy : oy + SIZE[1], ox : ox + SIZE[0]]


def _write_ppm(path: Path, arr: np.ndarray) -> None:
    Image.fromarray(np.clip(np.round(arr), 0, 255).astype(np.uint8)).save(path, format="PPM")


def _write_h(path: Path, H: np.ndarray) -> None:
    path.write_text("".join(" ".join(f"{v:.10e}" for v in row) + "\n" for row in H))


def build_hpatches_twin(out_dir: Path, seed: int = 0) -> dict:
    """Write ``out_dir/hpatches-sequences-release``; returns per-dataset counts and the photos used."""
    root = Path(out_dir) / FOLDER
    root.mkdir(parents=True, exist_ok=True)
    files = 0
    for kind, photos in (("v", V_PHOTOS), ("i", I_PHOTOS)):
        for photo in photos:
            seq = root / f"{kind}_{photo}"
            seq.mkdir(exist_ok=True)
            rng = np.random.default_rng([seed, zlib.crc32(seq.name.encode())])
            base = _base(photo)
            image1 = _crop_image1(base)
            _write_ppm(seq / "1.ppm", image1)
            files += 1
            for k in range(2, 7):
                strength = 0.35 + 0.15 * (k - 2)  # harder with k, as in the real release
                if kind == "v":
                    H = random_homography(rng, strength)
                    img = _warp(base, H)
                else:
                    H = np.eye(3)
                    img = _relight(image1, rng, strength)
                _write_ppm(seq / f"{k}.ppm", img)
                _write_h(seq / f"H_1_{k}", H)
                files += 2
    size = sum(p.stat().st_size for p in root.rglob("*") if p.is_file())
    from plainsight.tasks.low_level_matching import build_items  # the task imports this package's loader

    return {
        "dataset": FOLDER,
        "sequences": len(V_PHOTOS) + len(I_PHOTOS),
        "items": {"low_level_matching": len(build_items(load_pairs(out_dir), seed=seed))},
        "files": files,
        "bytes": size,
        "photos": list(V_PHOTOS + I_PHOTOS),
    }
