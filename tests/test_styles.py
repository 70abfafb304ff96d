"""The painting styles of the Art_Style twin: shape, determinism, and the two measured properties it relies on.

A colour-only (content) readout must fail on the benchmark, so each style keeps its photo's palette; a texture
readout must succeed, so the styles' marks must stay apart. Both are measured here on the packaged photos, with
``-s`` printing the rates.
"""

from __future__ import annotations

import itertools
import os
from pathlib import Path

import numpy as np
import pytest
from numpy.lib.stride_tricks import sliding_window_view
from PIL import Image, ImageDraw

from plainsight.embedded.photos import PHOTOS
from plainsight.embedded.styles import STYLES, stylise

CROP_SIZE = (160, 120)  # (W, H)
PREVIEW_PATH = Path("/tmp/styles_preview.png")
PREVIEW_PHOTOS = ("astronaut", "coffee", "camera")


def _crop(photo: np.ndarray, size: tuple[int, int] = CROP_SIZE) -> np.ndarray:
    """Scale ``photo`` to cover ``size`` (W, H) and cut out its centre."""
    image = Image.fromarray(photo)
    scale = max(size[0] / image.width, size[1] / image.height)
    image = image.resize((max(size[0], round(image.width * scale)), max(size[1], round(image.height * scale))),
                         Image.Resampling.LANCZOS)  # fmt: skip
    left, top = (image.width - size[0]) // 2, (image.height - size[1]) // 2
    return np.asarray(image.crop((left, top, left + size[0], top + size[1])), dtype=np.uint8)


@pytest.fixture(scope="module")
def photos() -> dict[str, np.ndarray]:
    return {name: _crop(photo.load()) for name, photo in PHOTOS.items()}


@pytest.fixture(scope="module")
def paintings(photos: dict[str, np.ndarray]) -> dict[tuple[str, str], np.ndarray]:
    """Every photo in every style, each with its own seeded generator."""
    return {
        (name, style): stylise(photos[name], style, np.random.default_rng([photo_index, style_index, 2024]))
        for photo_index, name in enumerate(photos)
        for style_index, style in enumerate(STYLES)
    }


def _colour_histogram(image: np.ndarray) -> np.ndarray:
    """Joint RGB histogram of 4x4x4 bins, summing to 1."""
    bins = (image.reshape(-1, 3) // 64).astype(np.intp)
    counts = np.bincount(bins[:, 0] * 16 + bins[:, 1] * 4 + bins[:, 2], minlength=64).astype(np.float64)
    return counts / counts.sum()


def _patch_gram(image: np.ndarray, window: int = 9, long_side: int = 128) -> np.ndarray:
    """Gram matrix of the zero-mean, L2-normalised ``window``-square greyscale windows of the resized image."""
    grey = Image.fromarray(image).convert("L")
    scale = long_side / max(grey.size)
    grey = grey.resize((round(grey.width * scale), round(grey.height * scale)), Image.Resampling.BILINEAR)
    windows = sliding_window_view(np.asarray(grey, dtype=np.float64) / 255.0, (window, window))
    windows = windows.reshape(-1, window * window)
    windows = windows - windows.mean(axis=1, keepdims=True)
    windows = windows / (np.linalg.norm(windows, axis=1, keepdims=True) + 1e-3)
    return windows.T @ windows / len(windows)


def test_every_style_returns_uint8_of_the_photos_shape(photos: dict[str, np.ndarray]) -> None:
    odd_sized = _crop(PHOTOS["chelsea"].load(), (97, 131))
    for photo in (photos["coffee"], odd_sized):
        for style in STYLES:
            painting = stylise(photo, style, np.random.default_rng(0))
            assert painting.dtype == np.uint8
            assert painting.shape == photo.shape


def test_unknown_style_raises_naming_the_known_ones(photos: dict[str, np.ndarray]) -> None:
    with pytest.raises(ValueError, match="pointillist") as raised:
        stylise(photos["coffee"], "cubist", np.random.default_rng(0))
    assert all(style in str(raised.value) for style in STYLES)


def test_same_seed_gives_identical_bytes_and_another_seed_differs(photos: dict[str, np.ndarray]) -> None:
    photo = photos["flower"]
    for style in STYLES:
        first = stylise(photo, style, np.random.default_rng(7))
        again = stylise(photo, style, np.random.default_rng(7))
        other = stylise(photo, style, np.random.default_rng(8))
        assert first.tobytes() == again.tobytes(), style
        assert first.tobytes() != other.tobytes(), style


def test_styles_keep_the_palette_so_a_colour_readout_picks_the_same_content(
    paintings: dict[tuple[str, str], np.ndarray],
) -> None:
    """Same photo in another style must usually be nearer in colour than another photo in the same style."""
    histograms = {key: _colour_histogram(painting) for key, painting in paintings.items()}
    names = sorted({name for name, _ in paintings})
    same_content_wins = [
        np.abs(histograms[ref, ref_style] - histograms[ref, other_style]).sum()
        < np.abs(histograms[ref, ref_style] - histograms[other, ref_style]).sum()
        for ref, other in itertools.permutations(names, 2)
        for ref_style, other_style in itertools.permutations(STYLES, 2)
    ]
    rate = float(np.mean(same_content_wins))
    print(f"\ncolour readout picks same content over same style: {rate:.3f} of {len(same_content_wins)} triples")
    assert rate >= 0.75


def test_styles_are_distinct_textures_so_a_gram_readout_picks_the_same_style(
    paintings: dict[tuple[str, str], np.ndarray],
) -> None:
    """Another photo in the same style must usually have the nearer patch Gram matrix than the same photo restyled."""
    grams = {key: _patch_gram(painting) for key, painting in paintings.items()}
    names = sorted({name for name, _ in paintings})
    same_style_wins = []
    per_style: dict[str, list[bool]] = {style: [] for style in STYLES}
    for ref, other in itertools.permutations(names, 2):
        for ref_style, other_style in itertools.permutations(STYLES, 2):
            reference = grams[ref, ref_style]
            right = np.mean((reference - grams[other, ref_style]) ** 2)
            wrong = np.mean((reference - grams[ref, other_style]) ** 2)
            same_style_wins.append(right < wrong)
            per_style[ref_style].append(right < wrong)
    rate = float(np.mean(same_style_wins))
    by_style = ", ".join(f"{style} {np.mean(wins):.2f}" for style, wins in per_style.items())
    print(f"\nGram readout picks same style over same content: {rate:.3f} of {len(same_style_wins)} triples")
    print(f"  by reference style: {by_style}")
    assert rate >= 0.70


def test_contact_sheet_for_a_person_to_check(
    photos: dict[str, np.ndarray], paintings: dict[tuple[str, str], np.ndarray]
) -> None:
    """Writes PREVIEW_PATH: one row per photo, the photo then each style, titled."""
    width, height = CROP_SIZE
    title_height = 14
    columns = ("photo",) + STYLES
    sheet = Image.new("RGB", (width * len(columns), title_height + height * len(PREVIEW_PHOTOS)), "white")
    pen = ImageDraw.Draw(sheet)
    for column, title in enumerate(columns):
        pen.text((column * width + 4, 1), title, fill="black")
    for row, name in enumerate(PREVIEW_PHOTOS):
        tiles = [photos[name]] + [paintings[name, style] for style in STYLES]
        for column, tile in enumerate(tiles):
            sheet.paste(Image.fromarray(tile), (column * width, title_height + row * height))
    partial = PREVIEW_PATH.with_name(f"{PREVIEW_PATH.stem}.{os.getpid()}.png")
    sheet.save(partial)
    os.replace(partial, PREVIEW_PATH)
    assert PREVIEW_PATH.stat().st_size > 0
