"""Art style (BLINK Art_Style): the loader, the Gram-matrix readout and the embedded twin."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from native_fixtures import blink_row, shuffled_control, write_blink
from PIL import Image

from plainsight.errors import DataError
from plainsight.models.encoders import Features
from plainsight.models.registry import load_models_toml
from plainsight.readouts.style import gram_matrix, style_readout
from plainsight.runner import Runner, RunOptions
from plainsight.scoring import wilson_interval
from plainsight.tasks import LoadRequest, get_task

EXE = Path(sys.executable).parent / "plainsight"
REPO = Path(__file__).resolve().parents[1]
SUBTASK = "Art_Style"


def _striped(period: int, seed: int, size=(48, 36)) -> Image.Image:
    """Vertical stripes of a given period in a random colour: 'style' = the period, 'content' = the colour."""
    rng = np.random.default_rng(seed)
    colour = rng.integers(40, 220, size=3)
    x = np.arange(size[0])
    stripes = ((x // period) % 2)[None, :, None] * 0.6 + 0.4
    return Image.fromarray(np.broadcast_to(colour * stripes, (size[1], size[0], 3)).astype(np.uint8))


def _art_row(idx: str, answer: str, images: list[Image.Image]) -> dict:
    row = blink_row(idx, images, answer, n_choices=2, fmt="PNG")
    row.update(sub_task="Art Style", choices=["the second image", "the third image"],
               prompt="…use the first image as the reference image…\n(A) the second image\n(B) the third image")  # fmt: skip
    return row


def _rows() -> list[dict]:
    return [
        _art_row("val_Art_Style_1", "(A)", [_striped(2, 0), _striped(2, 1), _striped(8, 0)]),
        _art_row("val_Art_Style_2", "(B)", [_striped(8, 2), _striped(2, 2), _striped(8, 3)]),
    ]


# ---------------------------------------------------------------- loader


def test_loads_reference_and_two_candidates_with_the_stored_prompt(tmp_path):
    write_blink(tmp_path, SUBTASK, _rows())
    items = get_task("art_style").load_items(LoadRequest(tmp_path))
    assert [it.id for it in items] == ["val_Art_Style_1", "val_Art_Style_2"]
    assert [it.gold for it in items] == ["A", "B"]
    item = items[0]
    assert item.choices == ("A", "B") and len(item.images) == 3 and item.task == "art_style"
    assert item.prompt.endswith("(B) the third image") and item.option_texts == ("the second image", "the third image")
    assert item.images[2].size == (48, 36) and item.meta["subtask"] == SUBTASK


def test_a_row_without_both_candidates_is_an_error_naming_it(tmp_path):
    rows = _rows()
    rows[1]["image_3"] = None
    path = write_blink(tmp_path, SUBTASK, rows)
    with pytest.raises(
        DataError,
        match=r"\(val_Art_Style_2\): an Art_Style row needs a reference and one image per choice \(3 images\), it has 2",
    ) as err:
        get_task("art_style").load_items(LoadRequest(tmp_path))
    assert str(path) in str(err.value)


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("answer", "(C)", r"row 0 \(val_Art_Style_1\): field 'answer' must be one of \['\(A\)', '\(B\)'\]"),
        (
            "image_3",
            {"bytes": b"garbage", "path": "x.jpg"},
            r"row 0 \(val_Art_Style_1\): field 'image_3': cannot decode",
        ),
        ("prompt", " ", r"row 0 \(val_Art_Style_1\): field 'prompt' is empty"),
    ],
)
def test_malformed_rows_name_file_row_and_field(tmp_path, field, value, message):
    rows = _rows()
    rows[0][field] = value
    write_blink(tmp_path, SUBTASK, rows)
    with pytest.raises(DataError, match=message):
        get_task("art_style").load_items(LoadRequest(tmp_path))


def test_cli_items_on_a_blink_folder(tmp_path):
    write_blink(tmp_path, SUBTASK, _rows())
    out = subprocess.run([str(EXE), "items", "--task", "art_style", "--data-root", str(tmp_path), "--json"],
                         capture_output=True, text=True, cwd=REPO, timeout=300, check=True)  # fmt: skip
    recs = [json.loads(line) for line in out.stdout.splitlines()]
    assert [r["gold"] for r in recs] == ["A", "B"] and len(recs[0]["images"]) == 3


# ---------------------------------------------------------------- readout


def test_gram_matrix_is_channel_co_activation_per_patch():
    feats = torch.arange(24, dtype=torch.float32).reshape(2, 3, 4)
    flat = feats.reshape(2, 12).double()
    assert torch.allclose(gram_matrix(feats), flat @ flat.T / 12)


@settings(max_examples=50, deadline=None)
@given(st.integers(1, 6), st.integers(1, 5), st.integers(1, 5), st.integers(0, 2**31 - 1))
def test_gram_matrix_ignores_where_patches_are(channels, height, width, seed):
    """Shuffling the patches' positions (content layout) leaves the Gram matrix unchanged; it is symmetric PSD."""
    rng = np.random.default_rng(seed)
    feats = torch.from_numpy(rng.normal(size=(channels, height, width)))
    order = torch.from_numpy(rng.permutation(height * width))
    shuffled = feats.reshape(channels, -1)[:, order].reshape(channels, height, width)
    gram = gram_matrix(feats)
    assert torch.allclose(gram, gram_matrix(shuffled), atol=1e-10)
    assert torch.allclose(gram, gram.T) and float(torch.linalg.eigvalsh(gram).min()) > -1e-9


class _StripeEncoder:
    """Patch features = horizontal grey-level differences (they see stripe period, not colour)."""

    name = "stripes"

    def encode(self, images):
        out = []
        for im in images:
            grey = torch.from_numpy(np.asarray(im.convert("L"), dtype=np.float64) / 255)
            diffs = torch.stack(
                [grey[:, k:][:, : grey.shape[1] - 8] - grey[:, : grey.shape[1] - 8] for k in (1, 2, 4, 8)]
            )
            out.append(Features(diffs.abs(), torch.zeros(1), None))
        return out


def test_readout_matches_style_not_content(tmp_path):
    write_blink(tmp_path, SUBTASK, _rows())
    for item in get_task("art_style").load_items(LoadRequest(tmp_path)):
        result = style_readout(_StripeEncoder(), item)
        assert max(result.scores, key=result.scores.get) == item.gold


# ---------------------------------------------------------------- embedded twin


def _truth(embedded_data: Path) -> dict[str, dict]:
    lines = (embedded_data / "BLINK" / SUBTASK / "plainsight_truth.jsonl").read_text().splitlines()
    return {rec["idx"]: rec for rec in map(json.loads, lines)}


def _same_style_letter(images: list[dict]) -> str:
    return "AB"[[im["style"] for im in images[1:]].index(images[0]["style"])]


def _colour_histogram(image: Image.Image, bins: int = 4) -> np.ndarray:
    quantised = (np.asarray(image, dtype=np.int64) * bins) // 256
    index = (quantised[..., 0] * bins + quantised[..., 1]) * bins + quantised[..., 2]
    return np.bincount(index.ravel(), minlength=bins**3) / index.size


@pytest.fixture(scope="module")
def twin_items(embedded_data):
    return get_task("art_style").load_items(LoadRequest(embedded_data))


def test_twin_oracle_and_shuffled_control(embedded_data, twin_items):
    items = twin_items
    assert len(items) == 120 and {g: sum(it.gold == g for it in items) for g in "AB"} == {"A": 60, "B": 60}
    truth = _truth(embedded_data)
    oracle = sum(_same_style_letter(truth[it.id]["images"]) == it.gold for it in items)
    assert oracle == len(items)
    # Every wrong candidate shows the reference's own photo and crop.
    for item in items:
        images = truth[item.id]["images"]
        wrong = images[1 + (1 - item.gold_index)]
        assert (wrong["photo"], wrong["crop"]) == (images[0]["photo"], images[0]["crop"])
        assert wrong["style"] != images[0]["style"]
    # The oracle reading another item's truth: chance.
    letters = [_same_style_letter(truth[it.id]["images"]) for it in items]
    control = shuffled_control(letters, [it.gold for it in items], chance=0.5)
    print(f"\nart_style twin: oracle {oracle}/{len(items)}; shuffled truth {control}")
    assert control.ok()


def test_twin_defeats_a_content_readout(twin_items):
    """A colour-histogram readout (content only) prefers the same photo in the wrong style: the twin tests style."""
    hits = 0
    for item in twin_items:
        ref, first, second = (_colour_histogram(im) for im in item.load_images())
        distances = [np.abs(first - ref).sum(), np.abs(second - ref).sum()]
        hits += "AB"[int(np.argmin(distances))] == item.gold
    lo, hi = wilson_interval(hits, len(twin_items))
    print(f"\nart_style twin: colour-histogram readout {hits}/{len(twin_items)} [{lo:.3f}, {hi:.3f}]")
    assert hi < 0.5


def test_twin_gram_readout_with_pixels_features(twin_items):
    """The Gram readout on the pixels model's NCC windows (local texture statistics), printed for the record."""
    entries = load_models_toml(REPO / "fixtures" / "models.toml")
    runner = Runner(RunOptions(), {"pixels": entries["pixels"]})
    run = runner.run("art_style", "pixels", "vision")
    correct = sum(o.correct for o in run.outcomes)
    lo, hi = wilson_interval(correct, len(run.outcomes))
    print(f"\nart_style twin: pixels Gram readout {correct}/{len(run.outcomes)} [{lo:.3f}, {hi:.3f}]")
    assert len(run.outcomes) == 120 and all(o.valid for o in run.outcomes)
    assert lo > 0.5
