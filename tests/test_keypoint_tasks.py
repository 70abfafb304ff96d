"""Semantic (SPair-71k) and functional (FunKPoint) correspondence: loaders, item construction, malformed input."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from native_fixtures import SIZE, SRC_POINTS, TRG_POINTS, write_funkpoint, write_spair

from plainsight.data.funkpoint import FunKPointColumns, load_rows
from plainsight.data.spair import load_pairs
from plainsight.errors import DataError, DatasetNotFound
from plainsight.items import LETTERS
from plainsight.tasks import LoadRequest, get_task
from plainsight.tasks.functional_correspondence import load_funkpoint_items
from plainsight.tasks.keypoint_items import KeypointDifficulty, KeypointPair, build_keypoint_items, min_distance_px
from plainsight.tasks.semantic_correspondence import load_spair_items

# ---------------------------------------------------------------- SPair-71k


def test_spair_pairs_read_as_written(tmp_path):
    written = write_spair(tmp_path, hidden_in_target="4")
    for split in ("trn", "val", "test"):
        (pair,) = load_pairs(tmp_path, split)
        record = written[split]
        assert pair.name == record["filename"] and pair.category == "cow"
        assert pair.src_path == f"JPEGImages/cow/{record['src_imname']}"
        assert pair.src_size == pair.trg_size == SIZE
        assert sorted(pair.src_kps) == ["0", "1", "2", "3"]  # "4" is hidden in the target
        assert pair.src_kps["1"] == SRC_POINTS[1] and pair.trg_kps["3"] == TRG_POINTS[3]
        assert "4" not in pair.trg_all_kps
        assert pair.trg_bbox == (5.0, 5.0, 90.0, 66.0)
    # The SPair-71k folder itself works as --data-root too.
    assert len(load_pairs(tmp_path / "SPair-71k", "test")) == 1


def test_spair_items_point_at_the_annotations(tmp_path):
    write_spair(tmp_path)
    (item,) = load_spair_items(tmp_path)
    ref_id = item.meta["ref_keypoint"]
    assert item.images[0].points["REF"] == SRC_POINTS[int(ref_id)]
    assert item.images[1].points[item.gold] == TRG_POINTS[int(ref_id)]
    assert item.meta["keypoints"][item.gold] == ref_id
    for letter, kp in item.meta["keypoints"].items():
        assert item.images[1].points[letter] == TRG_POINTS[int(kp)]
    assert item.images[0].load().size == SIZE  # paths resolve against the SPair root
    assert item.prompt.startswith("Humans can find corresponding points for different objects in the same category.")


def test_spair_missing_field_names_file_and_field(tmp_path):
    written = write_spair(tmp_path)
    path = tmp_path / "SPair-71k" / "PairAnnotation" / "test" / f"{written['test']['filename']}.json"
    record = json.loads(path.read_text())
    del record["trg_kps"]
    path.write_text(json.dumps(record))
    with pytest.raises(DataError, match=r"PairAnnotation/test/.*:cow\.json: missing field\(s\) trg_kps"):
        load_pairs(tmp_path, "test")


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("src_kps", [[1, 2], [3]], r"field 'src_kps'\[1\] must be \[x, y\]"),
        ("kps_ids", ["0", "1"], r"differ in length"),
        ("trg_imsize", [96], r"field 'trg_imsize' must be \[W, H, C\]"),
        ("src_bndbox", [50, 5, 10, 66], r"field 'src_bndbox' has x2 < x1"),
        ("trg_kps", [[500, 1], [1, 1], [1, 1], [1, 1]], r"field 'trg_kps'\[0\] = \(500.0, 1.0\) lies outside"),
    ],
)
def test_spair_malformed_fields(tmp_path, field, value, message):
    written = write_spair(tmp_path)
    path = tmp_path / "SPair-71k" / "PairAnnotation" / "test" / f"{written['test']['filename']}.json"
    record = json.loads(path.read_text())
    record[field] = value
    path.write_text(json.dumps(record))
    with pytest.raises(DataError, match=message) as info:
        load_pairs(tmp_path, "test")
    assert str(path) in str(info.value)


def test_spair_absent_is_dataset_not_found(tmp_path):
    with pytest.raises(DatasetNotFound, match="no SPair-71k found"):
        load_pairs(tmp_path, "test")


# ---------------------------------------------------------------- FunKPoint


def test_funkpoint_rows_in_pixels(tmp_path):
    written = write_funkpoint(tmp_path)
    rows = load_rows(tmp_path)
    assert len(rows) == len(written) == 4
    assert [r.action for r in rows] == ["Scoop", "Scoop", "Brush/Dust", "Brush/Dust"]
    for row in rows:
        expected = SRC_POINTS if row.category in ("spoon", "brush") else TRG_POINTS
        np.testing.assert_allclose(row.points, expected, atol=1e-9)
        assert row.size == SIZE


def test_funkpoint_items_pair_same_action_other_object(tmp_path):
    write_funkpoint(tmp_path)
    items = load_funkpoint_items(tmp_path)
    assert len(items) == 4
    for item in items:
        assert item.meta["src_category"] != item.meta["trg_category"]
        k = int(item.meta["ref_keypoint"]) - 1
        src_points = SRC_POINTS if item.meta["src_category"] in ("spoon", "brush") else TRG_POINTS
        trg_points = TRG_POINTS if src_points is SRC_POINTS else SRC_POINTS
        np.testing.assert_allclose(item.images[0].points["REF"], src_points[k], atol=1e-9)
        np.testing.assert_allclose(item.images[1].points[item.gold], trg_points[k], atol=1e-9)
        assert f'"{item.meta["action"]}"' in item.prompt


def test_funkpoint_missing_column_says_what_was_expected(tmp_path):
    write_funkpoint(tmp_path)
    labels = tmp_path / "FunKPoint" / "labels.csv"
    labels.write_text(labels.read_text().replace("p3_y", "p3_yy"))
    with pytest.raises(DataError, match=r"labels\.csv: missing column\(s\) p3_y; the header has .*p3_yy") as info:
        load_rows(tmp_path)
    assert "FunKPointColumns" in str(info.value)


def test_funkpoint_bad_value_names_line_and_column(tmp_path):
    write_funkpoint(tmp_path)
    labels = tmp_path / "FunKPoint" / "labels.csv"
    lines = labels.read_text().splitlines()
    header = lines[0].split(",")
    cells = lines[2].split(",")
    cells[header.index("p2_x")] = "left"
    lines[2] = ",".join(cells)
    labels.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=r"labels\.csv:3: column 'p2_x' is not a number: 'left'"):
        load_rows(tmp_path)


def test_funkpoint_columns_are_configurable(tmp_path):
    write_funkpoint(tmp_path)
    labels = tmp_path / "FunKPoint" / "labels.csv"
    text = labels.read_text().replace("image_path", "file").replace("object_category", "object")
    for i in range(1, 6):
        text = text.replace(f"p{i}_x", f"x{i}").replace(f"p{i}_y", f"y{i}")
    labels.write_text(text)
    columns = FunKPointColumns(image="file", category="object", point_x="x{i}", point_y="y{i}")
    assert len(load_rows(tmp_path, columns)) == 4
    with pytest.raises(DataError, match="missing column"):
        load_rows(tmp_path)


# ---------------------------------------------------------------- item construction (property)


@st.composite
def keypoint_pairs(draw):
    w, h = draw(st.integers(80, 400)), draw(st.integers(80, 400))
    n = draw(st.integers(4, 14))
    coords = st.tuples(st.floats(0, w - 1, allow_nan=False), st.floats(0, h - 1, allow_nan=False))
    src = {str(i): draw(coords) for i in range(n)}
    trg_all = {str(i): draw(coords) for i in range(n)}
    hidden = draw(st.sets(st.sampled_from(sorted(trg_all)), max_size=n // 3))
    pool = {k: v for k, v in trg_all.items() if k not in hidden}
    shared = {k: v for k, v in pool.items() if draw(st.booleans())}
    return KeypointPair(
        id="pair", root=None, src_path="a.jpg", trg_path="b.jpg", src_size=(w, h),
        trg_size=(w, h), src_kps={k: src[k] for k in shared}, trg_kps=shared, trg_pool=pool,
        object_size=draw(st.floats(20, max(w, h))), prompt="p", prompt_key="p@v1", option_texts=("A", "B", "C", "D"),
    )  # fmt: skip


@settings(max_examples=150, deadline=None)
@given(st.lists(keypoint_pairs(), min_size=1, max_size=6), st.integers(0, 3), st.integers(1, 3))
def test_gold_is_the_annotated_counterpart_and_distractors_are_visible_and_apart(pairs, seed, per_pair):
    pairs = [replace(p, id=f"pair{i}") for i, p in enumerate(pairs)]
    difficulty = KeypointDifficulty(points_per_pair=per_pair)
    items = build_keypoint_items(pairs, task="semantic_correspondence", seed=seed, difficulty=difficulty)
    by_id = {p.id: p for p in pairs}
    for item in items:
        pair = by_id[item.id.rsplit("-p", 1)[0]]
        ref = item.meta["ref_keypoint"]
        assert item.images[0].points["REF"] == pair.src_kps[ref]
        assert item.images[1].points[item.gold] == pair.trg_kps[ref]
        points = item.images[1].points
        for letter in item.choices:
            if letter != item.gold:
                kp = item.meta["keypoints"][letter]
                assert kp != ref and kp in pair.trg_pool and points[letter] == pair.trg_pool[kp]
        dist = min_distance_px(pair, difficulty)
        for a in item.choices:
            for b in item.choices:
                if a < b:
                    assert np.hypot(points[a][0] - points[b][0], points[a][1] - points[b][1]) >= dist - 1e-9
    golds = [it.gold for it in items]
    counts = [golds.count(letter) for letter in LETTERS[:4]]
    assert max(counts) - min(counts) <= 1  # balanced letters


def test_source_choice_and_absence(tmp_path):
    write_spair(tmp_path)
    task = get_task("semantic_correspondence")
    assert len(task.load_items(LoadRequest(tmp_path))) == 1
    with pytest.raises(DatasetNotFound, match="no BLINK Semantic_Correspondence found"):
        task.load_items(LoadRequest(tmp_path, source="blink"))
    assert len(task.load_items(LoadRequest(tmp_path, source="hpatches"))) == 1  # another task's source: default order
    with pytest.raises(DatasetNotFound, match="spair: .*no SPair-71k found.*\n  blink: .*no BLINK"):
        get_task("semantic_correspondence").load_items(LoadRequest(tmp_path / "SPair-71k" / "Layout"))
