"""HPatches loader on tiny native-format folders written here; malformed inputs name the path."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from plainsight.data.hpatches import FOLDER, find_hpatches_root, find_sequences, load_pairs, read_homography
from plainsight.errors import DataError, DatasetNotFound


def write_sequence(folder: Path, *, size=(64, 48), shift=3.0) -> list[np.ndarray]:
    folder.mkdir(parents=True)
    rng = np.random.default_rng(len(folder.name))
    Hs = []
    for k in range(1, 7):
        Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)).save(folder / f"{k}.ppm")
        if k > 1:
            H = np.array([[1.0, 0.01 * k, shift * k], [0.0, 1.0, -shift], [0.0, 0.0, 1.0]])
            # real files use runs of spaces
            (folder / f"H_1_{k}").write_text("\n".join("   ".join(f"{v:.8f}" for v in row) for row in H) + "\n")
            Hs.append(H)
    return Hs


def test_three_layouts_and_counts(tmp_path: Path):
    data = tmp_path / "data"
    Hs = write_sequence(data / FOLDER / "v_a")
    write_sequence(data / FOLDER / "i_b")
    pairs = load_pairs(data)
    assert [(p.sequence, p.k) for p in pairs] == [("i_b", k) for k in range(2, 7)] + [("v_a", k) for k in range(2, 7)]
    v = [p for p in pairs if p.sequence == "v_a"]
    assert all(np.allclose(p.H, H) for p, H in zip(v, Hs))  # H round trip, runs of spaces included
    assert v[1].ref_size == (64, 48) and v[1].target_size == (64, 48)
    assert v[0].ref_path == f"{FOLDER}/v_a/1.ppm" and (v[0].root / v[0].target_path).is_file()
    assert find_hpatches_root(data) == data
    # the release folder itself, and one sequence folder
    root, seqs = find_sequences(data / FOLDER)
    assert root == find_hpatches_root(data / FOLDER) == data / FOLDER and [s.name for s in seqs] == ["i_b", "v_a"]
    root, seqs = find_sequences(data / FOLDER / "v_a")
    assert root == data / FOLDER and [s.name for s in seqs] == ["v_a"]
    assert [(p.sequence, p.ref_path) for p in load_pairs(data / FOLDER / "v_a")][:1] == [("v_a", "v_a/1.ppm")]


def test_png_and_jpg_images_are_accepted(tmp_path: Path):
    seq = tmp_path / FOLDER / "v_a"
    write_sequence(seq, size=(40, 30))
    for k, ext in ((1, ".png"), (2, ".jpg")):
        Image.open(seq / f"{k}.ppm").save(seq / f"{k}{ext}")
        (seq / f"{k}.ppm").unlink()
    pair = load_pairs(tmp_path)[0]
    assert (pair.ref_path, pair.target_path) == (f"{FOLDER}/v_a/1.png", f"{FOLDER}/v_a/2.jpg")
    assert pair.target_size == (40, 30)


def test_high_resolution_scenes_are_dropped_by_default(tmp_path: Path):
    write_sequence(tmp_path / FOLDER / "v_talent")
    write_sequence(tmp_path / FOLDER / "v_ok")
    assert {p.sequence for p in load_pairs(tmp_path)} == {"v_ok"}
    assert {p.sequence for p in load_pairs(tmp_path, exclude_hires=False)} == {"v_ok", "v_talent"}


def test_no_dataset_is_a_dataset_not_found_naming_the_layouts(tmp_path: Path):
    (tmp_path / "something_else").mkdir()
    with pytest.raises(DatasetNotFound) as err:
        find_hpatches_root(tmp_path)
    assert str(tmp_path) in str(err.value) and FOLDER in str(err.value) and "something_else/" in str(err.value)
    with pytest.raises(DataError) as err:
        load_pairs(tmp_path / "missing")
    assert str(tmp_path / "missing") in str(err.value) and "does not exist" in str(err.value)


def test_missing_homography_beside_its_image_names_the_file(tmp_path: Path):
    write_sequence(tmp_path / FOLDER / "v_a")
    (tmp_path / FOLDER / "v_a" / "H_1_5").unlink()
    with pytest.raises(DataError) as err:
        load_pairs(tmp_path)
    assert str(tmp_path / FOLDER / "v_a" / "H_1_5") in str(err.value)


def test_missing_image_names_the_sequence(tmp_path: Path):
    write_sequence(tmp_path / FOLDER / "v_a")
    (tmp_path / FOLDER / "v_a" / "6.ppm").unlink()
    with pytest.raises(DataError) as err:
        load_pairs(tmp_path)
    assert str(tmp_path / FOLDER / "v_a") in str(err.value) and "6.ppm" in str(err.value)


@pytest.mark.parametrize(
    "text, message",
    [("1 0 0\n0 1 0\n", "expected 3 rows"), ("1 0 0\n0 1 zero\n0 0 1\n", "not a number"),
     ("1 0 0\n0 nan 0\n0 0 1\n", "non-finite"), ("0 0 0\n0 0 0\n0 0 0\n", "singular")],
)  # fmt: skip
def test_malformed_homography_names_the_file(tmp_path: Path, text: str, message: str):
    write_sequence(tmp_path / FOLDER / "v_a")
    bad = tmp_path / FOLDER / "v_a" / "H_1_3"
    bad.write_text(text)
    with pytest.raises(DataError) as err:
        load_pairs(tmp_path)
    assert str(bad) in str(err.value) and message in str(err.value)
    assert read_homography(tmp_path / FOLDER / "v_a" / "H_1_2").shape == (3, 3)


def test_garbage_image_names_the_file(tmp_path: Path):
    write_sequence(tmp_path / FOLDER / "v_a")
    bad = tmp_path / FOLDER / "v_a" / "4.ppm"
    bad.write_bytes(b"not an image")
    with pytest.raises(DataError) as err:
        load_pairs(tmp_path)
    assert str(bad) in str(err.value)


def test_truncated_image_names_the_file_when_decoded(tmp_path: Path):
    from plainsight.tasks.low_level_matching import build_items

    write_sequence(tmp_path / FOLDER / "v_a")
    bad = tmp_path / FOLDER / "v_a" / "3.ppm"
    bad.write_bytes(bad.read_bytes()[:200])  # the header survives, the pixels do not
    pairs = load_pairs(tmp_path)  # headers only
    with pytest.raises(DataError) as err:
        build_items(pairs)
    assert str(bad) in str(err.value)
