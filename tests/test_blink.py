"""BLINK parquet: loader, stored prompt and answer, coordinate recovery, malformed input, the CLI on every format."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from native_fixtures import SIZE, SRC_POINTS, TRG_POINTS, blink_row, write_blink, write_funkpoint, write_spair
from PIL import Image

from plainsight.data.blink import load_correspondence_items, load_items
from plainsight.embedded.blink_twin import TRUTH
from plainsight.errors import DataError
from plainsight.items import UNRECOVERED
from plainsight.readouts.correspondence import correspondence_readout
from plainsight.render import draw_point_markers
from plainsight.tasks import LoadRequest, get_task

EXE = Path(sys.executable).parent / "plainsight"
REPO = Path(__file__).resolve().parents[1]


def _pictures(seed: int) -> tuple[Image.Image, Image.Image]:
    rng = np.random.default_rng(seed)
    size = (192, 144)
    a = Image.fromarray((rng.uniform(90, 170, (size[1], size[0], 3))).astype(np.uint8))
    b = Image.fromarray((rng.uniform(90, 170, (size[1], size[0], 3))).astype(np.uint8))
    return a, b


REF_AT = (40.0, 70.0)
CHOICES_AT = {"A": (30.0, 40.0), "B": (150.0, 30.0), "C": (60.0, 110.0), "D": (140.0, 100.0)}


def _marked_row(idx: str, answer: str = "(C)", fmt: str = "JPEG") -> dict:
    a, b = _pictures(len(idx))
    return blink_row(idx, [draw_point_markers(a, {"REF": REF_AT}), draw_point_markers(b, CHOICES_AT)], answer, fmt=fmt)


def test_loader_keeps_prompt_answer_and_images(tmp_path):
    rows = [_marked_row("val_Semantic_Correspondence_1"), _marked_row("val_Semantic_Correspondence_2", "(A)", "PNG")]
    write_blink(tmp_path, "Semantic_Correspondence", rows)
    items, path = load_items(tmp_path, "Semantic_Correspondence", task="semantic_correspondence")
    assert path.name == "val-00000-of-00001.parquet"
    assert [it.id for it in items] == ["val_Semantic_Correspondence_1", "val_Semantic_Correspondence_2"]
    assert [it.gold for it in items] == ["C", "A"]
    for item, row in zip(items, rows):
        assert item.prompt == row["prompt"] and item.markers_drawn and item.choices == ("A", "B", "C", "D")
        assert len(item.images) == 2 and item.images[0].load().size == (192, 144)


def test_markers_are_recovered_within_a_pixel(tmp_path):
    write_blink(tmp_path, "Semantic_Correspondence", [_marked_row("val_Semantic_Correspondence_1")])
    (item,) = load_correspondence_items(tmp_path, "Semantic_Correspondence", task="semantic_correspondence")
    assert UNRECOVERED not in item.meta
    assert np.hypot(*np.subtract(item.images[0].points["REF"], REF_AT)) <= 1.0
    for letter, xy in CHOICES_AT.items():
        assert np.hypot(*np.subtract(item.images[1].points[letter], xy)) <= 1.0


def test_unrecoverable_item_is_vlm_only_with_the_reason(tmp_path):
    a, b = _pictures(3)
    three = {k: v for k, v in CHOICES_AT.items() if k != "D"}
    row = blink_row(
        "val_Semantic_Correspondence_9", [draw_point_markers(a, {"REF": REF_AT}), draw_point_markers(b, three)], "(B)"
    )
    write_blink(tmp_path, "Semantic_Correspondence", [row])
    (item,) = load_correspondence_items(tmp_path, "Semantic_Correspondence", task="semantic_correspondence")
    assert "image 2" in item.meta[UNRECOVERED] and not item.images[1].points
    result = correspondence_readout(encoder=None, item=item)  # never reaches the encoder
    assert result.scores is None and "marker coordinates unknown" in result.invalid_reason


@pytest.mark.parametrize(
    "change, message",
    [
        ({"answer": "(E)"}, r"row 0 \(val_x\): field 'answer' must be one of"),
        ({"choices": ["(A)"]}, r"row 0 \(val_x\): field 'choices' must be a list of 2"),
        ({"image_2": {"bytes": b"not an image", "path": "x.jpg"}}, r"row 0 \(val_x\): field 'image_2': cannot decode"),
        ({"prompt": " "}, r"row 0 \(val_x\): field 'prompt' is empty"),
    ],
)
def test_malformed_rows_name_file_row_and_field(tmp_path, change, message):
    row = _marked_row("val_x") | change
    path = write_blink(tmp_path, "Functional_Correspondence", [row])
    with pytest.raises(DataError, match=message) as info:
        load_items(tmp_path, "Functional_Correspondence", task="functional_correspondence")
    assert str(path) in str(info.value)


def test_missing_column_names_it(tmp_path):
    row = _marked_row("val_x")
    del row["prompt"]
    write_blink(tmp_path, "Visual_Correspondence", [row])
    with pytest.raises(DataError, match=r"val-00000-of-00001\.parquet: missing column\(s\) prompt"):
        get_task("low_level_matching").load_items(LoadRequest(tmp_path))


def test_coordinate_recovery_on_our_own_blink_renders(embedded_data: Path):
    """≥ 95% of the embedded BLINK twin's items recovered, median error ≤ 2 px (numbers printed for the record)."""
    for subtask, task in (("Semantic_Correspondence", "semantic_correspondence"),
                          ("Functional_Correspondence", "functional_correspondence")):  # fmt: skip
        folder = embedded_data / "BLINK" / subtask
        truth = {t["idx"]: t for t in map(json.loads, (folder / TRUTH).read_text().splitlines())}
        items = load_correspondence_items(embedded_data, subtask, task=task)
        assert len(items) >= 50 and set(truth) == {it.id for it in items}
        errors, recovered = [], 0
        for item in items:
            if item.meta.get(UNRECOVERED):
                continue
            recovered += 1
            for image, points in zip(item.images, truth[item.id]["points"]):
                assert set(image.points) == set(points)
                errors += [float(np.hypot(*np.subtract(image.points[k], xy))) for k, xy in points.items()]
        rate, median = recovered / len(items), float(np.median(errors))
        print(f"{subtask}: recovered {recovered}/{len(items)} ({rate:.1%}), median error {median:.2f} px, "
              f"max {max(errors):.2f} px over {len(errors)} markers")  # fmt: skip
        assert rate >= 0.95 and median <= 2.0 and max(errors) <= 3.0


def _cli_items(*args: str) -> list[dict]:
    out = subprocess.run([str(EXE), "items", "--json", *args], capture_output=True, text=True, cwd=REPO, timeout=300)
    assert out.returncode == 0, out.stderr
    return [json.loads(line) for line in out.stdout.splitlines()]


def test_cli_items_for_every_format(tmp_path):
    write_spair(tmp_path / "spair")
    (rec,) = _cli_items("--task", "semantic_correspondence", "--data-root", str(tmp_path / "spair"))
    ref_id = rec["meta"]["ref_keypoint"]
    assert rec["images"][0]["points"]["REF"] == list(SRC_POINTS[int(ref_id)])
    assert rec["images"][1]["points"][rec["gold"]] == list(TRG_POINTS[int(ref_id)])
    assert rec["images"][0]["size"] == list(SIZE)

    write_funkpoint(tmp_path / "fkp")
    recs = _cli_items("--task", "functional_correspondence", "--data-root", str(tmp_path / "fkp"))
    assert len(recs) == 4 and all(r["images"][0]["path"].startswith("images/") for r in recs)

    write_blink(tmp_path / "blink", "Semantic_Correspondence", [_marked_row("val_Semantic_Correspondence_1")])
    (rec,) = _cli_items("--task", "semantic_correspondence", "--data-root", str(tmp_path / "blink"))
    assert rec["markers_drawn"] and rec["gold"] == "C"
    assert np.hypot(*np.subtract(rec["images"][1]["points"]["B"], CHOICES_AT["B"])) <= 1.0
    w, h = rec["images"][1]["size"]
    assert all(0 <= x < w and 0 <= y < h for x, y in rec["images"][1]["points"].values())


def test_cli_source_choice(tmp_path, embedded_data: Path):
    spair = _cli_items("--task", "semantic_correspondence", "--limit", "3")
    blink = _cli_items("--task", "semantic_correspondence", "--source", "blink", "--limit", "3")
    assert spair[0]["meta"]["source"] == "spair" and blink[0]["meta"]["source"] == "blink"
    out = subprocess.run([str(EXE), "items", "--task", "semantic_correspondence", "--source", "nyu"],
                         capture_output=True, text=True, cwd=REPO, timeout=300)  # fmt: skip
    assert out.returncode == 2 and "unknown data source 'nyu'; known: blink, spair" in out.stderr
