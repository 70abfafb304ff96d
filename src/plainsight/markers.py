"""Recover point markers already drawn into an image: BLINK-style red rings with a label box.

The drawing is the one ``render.draw_point_markers`` makes: a red hollow ring of radius
``marker_radius(image size)`` centred on the point, its label in white text (PIL's default
font, size and padding set by the radius) on a black box 2 px above the ring, or below when
there is no room above, the box horizontally centred on the ring and clamped inside the image.

Method
------
JPEG keeps colour at half resolution and quantises it coarsely, so a thin red ring on a
small image can fade to a faint smudge, while the white-on-black label stays crisp.  So the
label boxes are found first and each ring is confirmed and located under its box:

1. Label boxes: normalised cross-correlation (by FFT) of the grey image with a template of
   every candidate label as the renderer draws it; strong matches, one per place.
2. Ring evidence at a candidate centre: the mean over the ring's annulus of its redness
   (JPEG's red chroma Cr: 1 for pure red, 0 for greys, negative for greens and blues) minus
   the mean redness just inside and just outside the annulus.  Only pixels inside the image
   count, so rings clipped by the border still score; black or white pixels of a label box
   count as no contrast, since the box hides what is behind it (a ring half hidden by a later
   box scores half, and a black box on a red background does not look like a ring).  A red
   area scores about zero, a clean ring on grey about 0.6, a JPEG-faded one 0.05 to 0.3.
3. A label box fixes its ring's centre to within the renderer's rounding (+-0.5 px per axis),
   except x when the box is clamped at an edge, and y when a box near the top may sit below
   its ring or above it.  The centre is the evidence maximum in that range, refined by a
   parabola.  Weak evidence will do where the box fixes the centre; where it leaves it open
   the ring must be clearly visible (and clearly more on one side of a box near the top).  A
   box with no ring is dropped; rings closer than a diameter are refused (the evidence for
   one may be the other's arc); rings plain to see without a box (hollow red components of
   ring size) are counted too.
4. Each ring's label is read again where the renderer puts the box for that ring, against
   every candidate label at three font sizes (red pixels masked out, since a later ring may
   cross an earlier box); the best must beat the runner-up by a clear margin.

Recovery is all or nothing: every expected label exactly once and no other ring, or a
``reason``; a reported point is within about 1.5 px of where the renderer drew it.  Limits: a
ring whose box is hidden or unreadable (markers drawn over each other), or whose red does not
stand out from its surroundings after JPEG (a saturated red or orange area, a small ring at
low quality), makes the recovery fail.  Only this style is read: the default radius for the
image size, PIL's default font, a black box; markers drawn at another radius, images resized
after drawing, and other styles (coloured text without a box, filled dots, arrows, circles of
another colour) are reported as not found.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Sequence

import numpy as np
import scipy.fft
from PIL import Image, ImageDraw, ImageFont
from scipy import ndimage

from plainsight.render import marker_radius

LABELS = ("REF", "A", "B", "C", "D")
STAMP_SCORE = 0.75  # template NCC for a place to be taken as a label box
STAMP_STD = 40.0  # grey-level spread a label box has at least (white text on black)
RING_WEAK = 0.05  # ring evidence required under a label box that fixes the centre
RING_CLEAR = 0.1  # ... under a box that leaves the centre open (clamped at an edge, or near the top)
RING_STRONG = 0.3  # ring evidence that makes a hollow red component a ring without a box
LABEL_SCORE = 0.6  # NCC of the best label when reading
LABEL_MARGIN = 0.1  # NCC lead of the best label over the runner-up
SEARCH = 3  # px of slack around the predicted box position when reading

_view = np.lib.stride_tricks.sliding_window_view


@dataclass(frozen=True)
class RecoveredMarkers:
    points: dict[str, tuple[float, float]] | None  # label -> (x, y) ring centre, pixel-index coordinates
    reason: str | None = None  # None when recovered; else why not, in one sentence

    def ok(self) -> bool:
        """True when every expected label was recovered."""
        return self.points is not None


def recover_markers(image: Image.Image, expected: Sequence[str]) -> RecoveredMarkers:
    """The ring centre of each label in ``expected``, read from the pixels, or the reason it cannot be."""
    if not expected or len(set(expected)) != len(expected):
        raise ValueError(f"expected labels must be distinct and non-empty, got {list(expected)}")
    rgb = np.asarray(image.convert("RGB"), dtype=np.float32)
    redness = rgb @ np.array([0.5, -0.4187, -0.0813], dtype=np.float32) / 127.5
    gray = rgb @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    r = marker_radius((rgb.shape[1], rgb.shape[0]))
    candidates = tuple(dict.fromkeys([*expected, *LABELS]))

    stamps = _find_stamps(gray, candidates, r)
    not_red = redness < 0.25
    # Label boxes hide what is behind them: their black and white say nothing for or against a
    # ring (red there does: a later ring drawn over an earlier box).
    boxes = np.zeros(redness.shape, dtype=bool)
    for stamp in stamps:
        x0, y0, x1, y1 = stamp.box
        boxes[max(0, y0) : y1, max(0, x0) : x1] = True
    surround = np.where(boxes & not_red, np.nan, redness)
    rings = [ring for ring in (_ring_under(stamp, surround, r) for stamp in stamps) if ring is not None]
    for i, a in enumerate(rings):
        for b in rings[i + 1 :]:
            if _near(a, b, 2 * r + 1):  # one box's ring evidence may be the other ring's arc
                return RecoveredMarkers(None, f"rings at ({a[0]:.0f}, {a[1]:.0f}) and ({b[0]:.0f}, {b[1]:.0f}) overlap")
    rings += [ring for ring in _visible_rings(surround, r) if not any(_near(ring, o, 2 * r) for o in rings)]
    wanted = f"{len(expected)} ({', '.join(expected)})"
    if len(rings) != len(expected):
        return RecoveredMarkers(None, f"found {len(rings)} rings, expected {wanted}")

    points: dict[str, tuple[float, float]] = {}
    for x, y in rings:
        where = f"ring at ({x:.0f}, {y:.0f})"
        matches = _read_label(gray, not_red, x, y, r, candidates)
        best = max(matches, key=lambda label: matches[label].score)
        # a label matching a letter of the best one is not a rival (B in the R of REF)
        rivals = [label for label in matches if label != best and not matches[label].part_of(matches[best])]
        second = max(rivals, key=lambda label: matches[label].score, default=None)
        s1, s2 = matches[best].score, (matches[second].score if second else -1.0)
        if s1 < LABEL_SCORE:
            return RecoveredMarkers(None, f"no label found for the {where}: best {best} {s1:.2f}")
        if s1 - s2 < LABEL_MARGIN:
            return RecoveredMarkers(None, f"label of the {where} is ambiguous: {best} {s1:.2f} vs {second} {s2:.2f}")
        if best not in expected:
            return RecoveredMarkers(None, f"the {where} is labelled {best}, expected {wanted}")
        if best in points:
            return RecoveredMarkers(None, f"label {best} read twice")
        points[best] = (round(x, 2), round(y, 2))
    return RecoveredMarkers({label: points[label] for label in expected})


def _near(a: tuple[float, float], b: tuple[float, float], distance: float) -> bool:
    return (a[0] - b[0]) ** 2 + (a[1] - b[1]) ** 2 < distance**2


# --- the renderer's geometry -------------------------------------------------------------


def _ring_width(r: int) -> int:
    return max(1, r // 3)


def _font_size(r: int) -> int:
    return max(8, round(r * 2.2))


def _pad(r: int) -> int:
    return max(1, r // 3)


# --- rings -------------------------------------------------------------------------------


@lru_cache(maxsize=16)
def _ring_masks(r: int) -> tuple[np.ndarray, np.ndarray]:
    """The annulus of a ring of radius ``r``, and the pixels just inside and outside it.

    Both (2r + 7)-square, centred.  The annulus reaches a pixel further in than the
    renderer's ring and a 1 px gap is left outside it: JPEG smears the ring's colour there.
    """
    yy, xx = np.mgrid[-r - 3 : r + 4, -r - 3 : r + 4]
    d = np.hypot(yy, xx)
    annulus = (d > r - _ring_width(r) - 0.5) & (d <= r + 0.5)
    around = (d <= r - _ring_width(r) - 1) | ((d > r + 1.5) & (d <= r + 2.5))
    return annulus, around


def _evidence(redness: np.ndarray, r: int, x0: int, x1: int, y0: int, y1: int) -> np.ndarray:
    """Ring evidence for radius ``r`` at centres x0..x1, y0..y1 (inclusive, inside the image).

    The mean, over the annulus pixels inside the image, of their redness minus the mean redness
    seen around the annulus; hidden pixels (NaN) show no contrast.  -1 where less than a quarter
    of the annulus is inside the image, or nothing around it is seen.
    """
    h, w = redness.shape
    m = r + 3
    shape = (y1 - y0 + 1 + 2 * m, x1 - x0 + 1 + 2 * m)
    values, inside = np.full(shape, np.nan, dtype=np.float32), np.zeros(shape, dtype=bool)
    ya, yb, xa, xb = max(0, y0 - m), min(h, y1 + m + 1), max(0, x0 - m), min(w, x1 + m + 1)
    part = (slice(ya - (y0 - m), yb - (y0 - m)), slice(xa - (x0 - m), xb - (x0 - m)))
    values[part], inside[part] = redness[ya:yb, xa:xb], True
    annulus, around = _ring_masks(r)
    size = (2 * m + 1, 2 * m + 1)
    seen = _view(values, size)[..., around]
    n_seen = (~np.isnan(seen)).sum(axis=-1)
    background = np.nansum(seen, axis=-1) / np.maximum(n_seen, 1)
    ring = _view(values, size)[..., annulus]
    n_inside = _view(inside, size)[..., annulus].sum(axis=-1)
    contrast = np.nansum(ring - background[..., None], axis=-1) / np.maximum(n_inside, 1)
    return np.where((n_inside >= 0.25 * annulus.sum()) & (n_seen > 0), contrast, -1.0)


def _best_centre(
    redness: np.ndarray, r: int, xs: tuple[float, float], ys: tuple[float, float]
) -> tuple[float, float, float, float]:
    """(x, y, evidence, rival) of the strongest ring centre within the ranges xs, ys (inclusive).

    Sub-pixel by a parabola per axis through the best pixel and its neighbours, kept in range.
    ``rival`` is the best evidence in range more than 1.5 px away (-1 if none is).
    """
    h, w = redness.shape
    x0, x1 = max(0, int(np.ceil(xs[0]))), min(w - 1, int(np.floor(xs[1])))
    y0, y1 = max(0, int(np.ceil(ys[0]))), min(h - 1, int(np.floor(ys[1])))
    ex0, ex1, ey0, ey1 = max(0, x0 - 1), min(w - 1, x1 + 1), max(0, y0 - 1), min(h - 1, y1 + 1)
    ev = _evidence(redness, r, ex0, ex1, ey0, ey1)
    inner = ev[y0 - ey0 : y1 - ey0 + 1, x0 - ex0 : x1 - ex0 + 1]
    iy, ix = np.unravel_index(int(np.argmax(inner)), inner.shape)
    yy, xx = np.mgrid[: inner.shape[0], : inner.shape[1]]
    away = np.hypot(yy - iy, xx - ix) > 1.5
    rival = float(inner[away].max()) if away.any() else -1.0
    py, px = int(iy) + y0 - ey0, int(ix) + x0 - ex0
    dx = _vertex(ev[py, px - 1 : px + 2]) if 0 < px < ev.shape[1] - 1 else 0.0
    dy = _vertex(ev[py - 1 : py + 2, px]) if 0 < py < ev.shape[0] - 1 else 0.0
    x = float(np.clip(ex0 + px + dx, *xs))
    y = float(np.clip(ey0 + py + dy, *ys))
    return x, y, float(ev[py, px]), rival


def _vertex(abc: np.ndarray) -> float:
    """Offset of the vertex of the parabola through three equally spaced values, from the middle one."""
    a, b, c = (float(v) for v in abc)
    curvature = a - 2 * b + c
    return 0.0 if curvature >= 0 else float(np.clip(0.5 * (a - c) / curvature, -0.5, 0.5))


def _ring_under(stamp: _Stamp, redness: np.ndarray, r: int) -> tuple[float, float] | None:
    """The centre of the ring the renderer drew with this label box, if the pixels show it clearly enough."""
    h, w = redness.shape
    bx, by, bx1, by1 = stamp.box
    sw, sh = bx1 - bx, by1 - by
    # The renderer rounds the box position: from it each coordinate of the centre is known to
    # +-0.5 px, except x when the box was clamped at the left or right edge ...
    if bx <= 0:
        xs = (0.0, sw / 2)
    elif bx1 >= w:
        xs = (w - sw / 2 - 1, w - 1.0)
    else:
        xs = (bx + sw / 2 - 1, bx + sw / 2)
    # ... and y when a box near the top may belong to a ring below it or to one above it.
    under, over = by + sh + r + 1.5, by - r - 2.5
    rows = [under, over] if over - r - 2 - sh <= 0 else [under]  # a ring over its box had no room above
    rows = [yc for yc in rows if -0.5 <= yc <= h - 0.5]
    if not rows:
        return None
    found = sorted((_best_centre(redness, r, xs, (yc - 0.5, yc + 0.5)) for yc in rows), key=lambda f: -f[2])
    x, y, score, rival = found[0]
    if len(found) > 1:
        rival = max(rival, found[1][2])
    # where the box leaves the centre open, a clear ring must stand out from the other places
    if score < (RING_CLEAR if bx <= 0 or bx1 >= w or len(found) > 1 else RING_WEAK) or score - rival < RING_WEAK:
        return None
    return x, y


def _visible_rings(redness: np.ndarray, r: int) -> list[tuple[float, float]]:
    """Rings plain to see with or without a label box: hollow red components of ring size."""
    components, _ = ndimage.label(redness > 0.3, structure=np.ones((3, 3)))
    rings = []
    for index, sl in enumerate(ndimage.find_objects(components), start=1):
        bh, bw = sl[0].stop - sl[0].start, sl[1].stop - sl[1].start
        if abs(bh - bw) > 2 or abs((bh + bw) / 2 - (2 * r + 1)) > 2:
            continue
        if (components[sl][bh // 2 - 1 : bh // 2 + 2, bw // 2 - 1 : bw // 2 + 2] == index).any():
            continue  # filled: a blob, not a ring
        xc, yc = (sl[1].start + sl[1].stop - 1) / 2, (sl[0].start + sl[0].stop - 1) / 2
        x, y, score, _ = _best_centre(redness, r, (xc - 1, xc + 1), (yc - 1, yc + 1))
        if score >= RING_STRONG:
            rings.append((x, y))
    return rings


# --- labels ------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Stamp:
    """A strong match of a label template: the whole label box (x0, y0, x1, y1, end exclusive)."""

    box: tuple[int, int, int, int]
    score: float


@lru_cache(maxsize=128)
def _template(label: str, size: int) -> np.ndarray:
    """``label`` in white on black with a 1 px border, as the renderer draws it (grey levels)."""
    font = ImageFont.load_default(size=size)
    left, top, right, bottom = font.getbbox(label)
    stamp = Image.new("L", (right - left + 2, bottom - top + 2), 0)
    ImageDraw.Draw(stamp).text((1 - left, 1 - top), label, fill=255, font=font)
    return np.asarray(stamp, dtype=np.float32)


@lru_cache(maxsize=16)
def _template_spectrum(label: str, size: int, shape: tuple[int, int]) -> tuple[np.ndarray, float]:
    """Conjugate spectrum of the zero-mean template (multiplying by it correlates) and its norm."""
    t = _template(label, size)
    t0 = t - t.mean()
    padded = np.zeros(shape, dtype=np.float32)
    padded[: t.shape[0], : t.shape[1]] = t0
    return np.conj(scipy.fft.rfft2(padded)), float(np.sqrt((t0**2).sum()))


def _find_stamps(gray: np.ndarray, candidates: Sequence[str], r: int) -> list[_Stamp]:
    """Label boxes for rings of radius ``r``: strong template matches, best first, one per place."""
    h, w = gray.shape
    shape = (scipy.fft.next_fast_len(h, real=True), scipy.fft.next_fast_len(w, real=True))
    spectrum = scipy.fft.rfft2(gray, shape)
    g = np.pad(gray - 128, ((1, 0), (1, 0)))
    s1, s2 = g.cumsum(0).cumsum(1), (g * g).cumsum(0).cumsum(1)  # integral images
    grow = _pad(r) - 1  # the template has a 1 px border, the box _pad(r)
    found: list[_Stamp] = []
    for label in candidates:
        th, tw = _template(label, _font_size(r)).shape
        if th > h or tw > w:
            continue
        conj, norm = _template_spectrum(label, _font_size(r), shape)
        corr = scipy.fft.irfft2(spectrum * conj, shape)
        n = th * tw
        # NCC = corr / (norm * std * sqrt(n)) and a label box has std >= STAMP_STD: a cheap bound first.
        ys, xs = np.divmod(np.flatnonzero(corr >= STAMP_SCORE * norm * STAMP_STD * np.sqrt(n)), shape[1])
        inside = (ys <= h - th) & (xs <= w - tw)
        ys, xs = ys[inside], xs[inside]
        total = s1[ys + th, xs + tw] - s1[ys, xs + tw] - s1[ys + th, xs] + s1[ys, xs]
        total2 = s2[ys + th, xs + tw] - s2[ys, xs + tw] - s2[ys + th, xs] + s2[ys, xs]
        var = np.maximum(total2 - total**2 / n, 1e-6)
        ncc = corr[ys, xs] / (np.sqrt(var) * norm)
        good = (ncc >= STAMP_SCORE) & (var >= n * STAMP_STD**2)
        found += [
            _Stamp((int(x) - grow, int(y) - grow, int(x) + tw + grow, int(y) + th + grow), float(c))
            for y, x, c in zip(ys[good], xs[good], ncc[good])
        ]
    kept: list[_Stamp] = []
    for stamp in sorted(found, key=lambda s: -s.score):
        if not any(_overlap(stamp.box, k.box) > 0.3 for k in kept):
            kept.append(stamp)
    return kept


def _overlap(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> float:
    """Intersection over the smaller box."""
    ix = min(a[2], b[2]) - max(a[0], b[0])
    iy = min(a[3], b[3]) - max(a[1], b[1])
    if ix <= 0 or iy <= 0:
        return 0.0
    return ix * iy / min((a[2] - a[0]) * (a[3] - a[1]), (b[2] - b[0]) * (b[3] - b[1]))


@dataclass(frozen=True)
class _Match:
    score: float  # NCC, -1 when the template could not be compared
    box: tuple[int, int, int, int]  # where the template matched: x0, y0, x1, y1 (end exclusive)

    def part_of(self, other: _Match) -> bool:
        """This match lies inside ``other``'s (1 px slack), which is wider: one of its letters."""
        (a0, b0, a1, b1), (c0, d0, c1, d1) = self.box, other.box
        inside = a0 >= c0 - 1 and b0 >= d0 - 1 and a1 <= c1 + 1 and b1 <= d1 + 1
        return inside and (a1 - a0) < (c1 - c0) / 2


_NO_MATCH = _Match(-1.0, (0, 0, 0, 0))


def _read_label(
    gray: np.ndarray, usable: np.ndarray, x: float, y: float, r: int, candidates: Sequence[str]
) -> dict[str, _Match]:
    """Best NCC of each candidate label, at three font sizes, where the renderer puts the box of the ring at (x, y)."""
    w = gray.shape[1]
    pad = _pad(r)
    cx, cy = x + 0.5, y + 0.5
    matches = dict.fromkeys(candidates, _NO_MATCH)
    for label in candidates:
        for size in (_font_size(r) - 1, _font_size(r), _font_size(r) + 1):
            t = _template(label, size)
            sh, sw = t.shape[0] + 2 * (pad - 1), t.shape[1] + 2 * (pad - 1)  # the whole box
            bx = round(min(max(0.0, cx - sw / 2), w - sw))
            by = round(cy - r - 2 - sh)
            if by < 0:
                by = round(cy + r + 2)
            match = _best_ncc(gray, usable, t, bx + pad - 1, by + pad - 1)
            if match.score > matches[label].score:
                matches[label] = match
    return matches


def _best_ncc(gray: np.ndarray, usable: np.ndarray, t: np.ndarray, x0: int, y0: int) -> _Match:
    """Highest NCC of template ``t`` over ``usable`` pixels, its top-left corner within SEARCH px of (x0, y0)."""
    h, w = gray.shape
    th, tw = t.shape
    ya, yb = max(0, y0 - SEARCH), min(h, y0 + SEARCH + th)
    xa, xb = max(0, x0 - SEARCH), min(w, x0 + SEARCH + tw)
    if yb - ya < th or xb - xa < tw:
        return _NO_MATCH
    win = _view(gray[ya:yb, xa:xb], (th, tw)).reshape(-1, th * tw)
    m = _view(usable[ya:yb, xa:xb], (th, tw)).reshape(-1, th * tw).astype(np.float32)
    tf = t.ravel()
    n = m.sum(axis=1)
    enough = n >= 0.6 * th * tw
    if not enough.any():
        return _NO_MATCH
    n = np.maximum(n, 1)
    mp = m * win
    s_t, s_tt = m @ tf, m @ (tf * tf)
    s_p, s_pp, s_pt = mp.sum(axis=1), (mp * win).sum(axis=1), mp @ tf
    cov = s_pt - s_p * s_t / n
    var = (s_pp - s_p**2 / n) * (s_tt - s_t**2 / n)
    ncc = np.where(enough & (var > 1e-6), cov / np.sqrt(np.maximum(var, 1e-12)), -1.0)
    i = int(np.argmax(ncc))
    top, left = ya + i // (xb - xa - tw + 1), xa + i % (xb - xa - tw + 1)
    return _Match(float(ncc[i]), (left, top, left + tw, top + th))
