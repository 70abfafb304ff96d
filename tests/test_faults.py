"""Fault injection (issue 18): bad configuration, bad data files, broken models and interrupted or clashing runs
give a clear message naming the file (and table/key, row or field) or an honest report — never a bare
traceback, a silently wrong number or a report that claims completeness. The run-level probes go end to end
through pytester (at the end of this module)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from plainsight.errors import ConfigError
from plainsight.gates import check_models, load_thresholds
from plainsight.report import ReportDirLock

REPO = Path(__file__).resolve().parents[1]

# --- thresholds.toml --------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, message",
    [
        ('[defaults.vlm]\nmin_accuracy = "high"\n', "[defaults.vlm]: min_accuracy must be a number"),
        ("[defaults.vlm]\nmin_accuracy = 1.5\n", "[defaults.vlm]: min_accuracy = 1.5 is out of range"),
        ('[defaults.vision]\nabove_chance = "yes"\n', "[defaults.vision]: above_chance must be true or false"),
        (
            "[tasks.depth.vlm]\nmax_gap_to_vision = true\n",
            "[tasks.depth.vlm]: max_gap_to_vision must be a number, not bool",
        ),
        ("[models.m]\nmin_tv_to_blind = false\n", "[models.m]: min_tv_to_blind must be a number, not bool"),
        ('[baseline]\nalpha = "0.05"\n', "[baseline]: alpha must be a number"),
        ("[baseline]\nalpha = 0\n", "[baseline]: alpha = 0 is out of range (0"),
        ("[baseline]\ntolerance = -0.1\n", "[baseline]: tolerance = -0.1 is out of range"),
        ("[baseline]\ntolerence = 0.1\n", "[baseline]: unknown key 'tolerence'"),
        ('[models.m.depth]\nexpect = "fail"\nreason = "x"\n', '[models.m.depth]: expect must be "xfail"'),
        ('[models.m.depth]\nexpect = "xfail"\nreason = 3\n', "[models.m.depth]: reason must be a string"),
        (
            "[tasks.art_styl.vision]\nabove_chance = true\n",
            "[tasks.art_styl]: unknown task 'art_styl'; known: art_style",
        ),
        (
            "[models.m.art_styl]\nabove_chance = false\n",
            "[models.m.art_styl]: unknown task 'art_styl'; known: art_style",
        ),
        ("[default.vlm]\nabove_chance = true\n", "unknown top-level key or table 'default'"),
        ("[defaults.vlm.depth]\nabove_chance = true\n", "[defaults.vlm].depth: unexpected table"),
        ('other_models = "m"\n', "other_models must be a list"),
    ],
)
def test_bad_threshold_values_name_file_table_and_key(tmp_path: Path, text: str, message: str):
    p = tmp_path / "thresholds.toml"
    p.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_thresholds(p)
    assert str(p) in str(err.value) and message in str(err.value), str(err.value)


def test_thresholds_naming_unknown_models_are_refused_unless_exempt(tmp_path: Path):
    p = tmp_path / "thresholds.toml"
    p.write_text("[models.pixel.depth]\nabove_chance = false\n[models.clip]\nmin_accuracy = 0.3\n")
    thresholds = load_thresholds(p)
    check_models(thresholds, ["pixel", "clip", "dino"])  # all known: no error
    with pytest.raises(ConfigError) as err:
        check_models(thresholds, ["pixels", "clip"])
    message = str(err.value)
    assert str(p) in message and "[models.pixel]" in message and "[models.clip]" not in message
    assert "known models: clip, pixels" in message and "other_models" in message

    p.write_text('other_models = ["pixel"]\n[models.pixel.depth]\nabove_chance = false\n')
    check_models(load_thresholds(p), ["pixels", "clip"])  # exempt: no error


def test_shipped_thresholds_stay_valid():
    repo = Path(__file__).resolve().parents[1]
    load_thresholds(repo / "fixtures" / "thresholds.toml")


# --- text files that are not UTF-8 ------------------------------------------------------


def _hpatches_sequence(folder: Path) -> None:
    from PIL import Image

    folder.mkdir(parents=True)
    for k in (1, 2):
        Image.new("RGB", (32, 24), (40 * k, 0, 0)).save(folder / f"{k}.png")
    (folder / "H_1_2").write_text("1 0 0\n0 1 0\n0 0 1\n")


def _not_utf8(path: Path, text: bytes = "caf\u00e9".encode("latin-1")) -> int:
    """Append latin-1 text to ``path``; returns the offset of the first non-UTF-8 byte."""
    before = path.read_bytes()
    path.write_bytes(before + text + b"\n")
    return len(before) + text.index(b"\xe9")


def _assert_not_utf8(err: pytest.ExceptionInfo, path: Path, offset: int) -> None:
    message = str(err.value)
    assert message.startswith(f"{path}: not UTF-8 text (byte 0xe9 at offset {offset}"), message


def test_hpatches_homography_not_utf8_names_the_file(tmp_path: Path):
    from plainsight.data.hpatches import FOLDER, load_pairs
    from plainsight.errors import DataError

    _hpatches_sequence(tmp_path / FOLDER / "v_a")
    bad = tmp_path / FOLDER / "v_a" / "H_1_2"
    offset = _not_utf8(bad)
    with pytest.raises(DataError) as err:
        load_pairs(tmp_path)
    _assert_not_utf8(err, bad, offset)


def test_cvbench_jsonl_not_utf8_names_the_file(tmp_path: Path):
    from plainsight.data.cvbench import load_depth
    from plainsight.errors import DataError

    (tmp_path / "CV-Bench").mkdir()
    bad = tmp_path / "CV-Bench" / "test_3d.jsonl"
    bad.write_text('{"idx": 0, "task": "Distance"}\n')
    offset = _not_utf8(bad, b'{"idx": 1, "task": "Distance", "prompt": "caf\xe9"}')
    with pytest.raises(DataError) as err:
        load_depth(tmp_path)
    _assert_not_utf8(err, bad, offset)
    assert "line 2" in str(err.value)


def test_spair_layout_not_utf8_names_the_file(tmp_path: Path):
    from native_fixtures import write_spair

    from plainsight.data.spair import load_pairs
    from plainsight.errors import DataError

    write_spair(tmp_path)
    bad = tmp_path / "SPair-71k" / "Layout" / "large" / "test.txt"
    offset = _not_utf8(bad)
    with pytest.raises(DataError) as err:
        load_pairs(tmp_path, "test")
    _assert_not_utf8(err, bad, offset)


def test_funkpoint_labels_not_utf8_names_the_file(tmp_path: Path):
    from native_fixtures import write_funkpoint

    from plainsight.data.funkpoint import load_rows
    from plainsight.errors import DataError

    write_funkpoint(tmp_path)
    bad = tmp_path / "FunKPoint" / "labels.csv"
    offset = _not_utf8(bad, b"images/n0000/0001.jpg,Scoop,n0000,caf\xe9,1")
    with pytest.raises(DataError) as err:
        load_rows(tmp_path)
    _assert_not_utf8(err, bad, offset)


# --- booleans (and NaN) are not numbers -------------------------------------------------


def _spair_pair_file(root: Path) -> Path:
    return next((root / "SPair-71k" / "PairAnnotation" / "test").glob("*.json"))


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("src_kps", lambda kps: [[True, kps[0][1]], *kps[1:]], "field 'src_kps'[0] must be [x, y] finite numbers"),
        ("trg_bndbox", lambda box: [5, 5, 90, True], "field 'trg_bndbox' must be [x1, y1, x2, y2] finite numbers"),
        ("src_imsize", lambda size: [True, size[1], 3], "field 'src_imsize' must be [W, H, C] positive integers"),
    ],
)
def test_spair_pair_bool_is_not_a_coordinate(tmp_path: Path, field, value, message):

    from native_fixtures import write_spair

    from plainsight.data.spair import load_pairs
    from plainsight.errors import DataError

    write_spair(tmp_path)
    path = _spair_pair_file(tmp_path)
    record = json.loads(path.read_text())
    record[field] = value(record[field])
    path.write_text(json.dumps(record))
    with pytest.raises(DataError) as err:
        load_pairs(tmp_path, "test")
    assert str(err.value).startswith(f"{path}: {message}"), str(err.value)


def test_spair_image_annotation_bool_is_not_a_coordinate(tmp_path: Path):

    from native_fixtures import write_spair

    from plainsight.data.spair import load_pairs
    from plainsight.errors import DataError

    write_spair(tmp_path)
    trg = json.loads(_spair_pair_file(tmp_path).read_text())["trg_imname"]
    path = tmp_path / "SPair-71k" / "ImageAnnotation" / "cow" / f"{Path(trg).stem}.json"
    record = json.loads(path.read_text())
    record["kps"]["0"] = [True, 20.0]
    path.write_text(json.dumps(record))
    with pytest.raises(DataError) as err:
        load_pairs(tmp_path, "test")
    assert str(err.value).startswith(f"{path}: field 'kps.0'[0] must be [x, y] finite numbers"), str(err.value)


def test_cvbench_bbox_bool_is_not_a_coordinate(tmp_path: Path):

    from PIL import Image

    from plainsight.data.cvbench import load_depth
    from plainsight.errors import DataError

    folder = tmp_path / "CV-Bench"
    (folder / "img").mkdir(parents=True)
    Image.new("RGB", (64, 48)).save(folder / "img" / "0.png")
    row = {"idx": 7, "task": "Depth", "filename": "img/0.png", "choices": ["lamp", "chair"], "answer": "(A)",
           "prompt": "Which is closer?", "bbox": [[True, 2, 20, 20], [30, 10, 60, 40]]}  # fmt: skip
    path = folder / "test_3d.jsonl"
    path.write_text(json.dumps(row) + "\n")
    with pytest.raises(DataError) as err:
        load_depth(tmp_path)
    assert str(err.value).startswith(f"{path} row 0 (idx 7): field 'bbox' entry A must be [x1, y1, x2, y2]"), str(
        err.value
    )


def test_funkpoint_nan_coordinate_is_refused(tmp_path: Path):
    from native_fixtures import write_funkpoint

    from plainsight.data.funkpoint import FunKPointColumns, load_rows
    from plainsight.errors import DataError

    write_funkpoint(tmp_path)
    path = tmp_path / "FunKPoint" / "labels.csv"
    lines = path.read_text().splitlines()
    header = lines[0].split(",")
    cells = lines[1].split(",")
    cells[header.index("p1_x")] = "nan"
    path.write_text("\n".join([lines[0], ",".join(cells), *lines[2:]]) + "\n")
    with pytest.raises(DataError) as err:  # pixel coordinates: no [0, 1] range check to catch it
        load_rows(tmp_path, FunKPointColumns(normalized=False))
    assert str(err.value) == f"{path}:2: column 'p1_x' is not a finite number: 'nan'"


# --- a BLINK parquet whose image column was renamed --------------------------------------


@pytest.mark.parametrize("column", ["image_1", "image_2"])
def test_blink_renamed_image_column_names_missing_and_present_columns(tmp_path: Path, column: str):
    import pyarrow.parquet as pq
    from native_fixtures import blink_row, write_blink
    from PIL import Image

    from plainsight.data.blink import load_correspondence_items
    from plainsight.errors import DataError

    row = blink_row("val_Semantic_Correspondence_1", [Image.new("RGB", (32, 24)), Image.new("RGB", (32, 24))], "(A)")
    path = write_blink(tmp_path, "Semantic_Correspondence", [row])
    table = pq.read_table(path)
    renamed = column.replace("_", "")
    pq.write_table(table.rename_columns([renamed if c == column else c for c in table.column_names]), path)
    with pytest.raises(DataError) as err:
        load_correspondence_items(tmp_path, "Semantic_Correspondence", task="semantic_correspondence")
    message = str(err.value)
    assert message.startswith(f"{path}: missing column(s) {column}; it has "), message
    assert renamed in message and "choices" in message


# --- per-item data faults: one bad image costs its items, not the task --------------------

FAULT_TASK = "semantic_correspondence"  # SPair's loader reads sizes from the annotations, not the images


def _fault_entries(tmp_path: Path) -> dict:
    from plainsight.models.registry import ModelEntry

    return {
        "pixels": ModelEntry("pixels", "encoder", "pixels", base_dir=tmp_path),
        "oracle": ModelEntry("oracle", "vlm", "double:oracle", pairs_with="pixels", base_dir=tmp_path),
    }


def _spair_copy(tmp_path: Path, embedded_data: Path) -> Path:

    root = tmp_path / "data"
    shutil.copytree(embedded_data / "SPair-71k", root / "SPair-71k")
    return root


def _items(root: Path, limit: int) -> list:
    from plainsight.tasks import LoadRequest, get_task

    return get_task(FAULT_TASK).load_items(LoadRequest(data_root=root, limit=limit))


def _break_two_files(root: Path, items: list) -> tuple[Path, Path, set[str]]:
    """Truncate one image file and delete another, each used by some of ``items``; returns them and the ids hit."""
    truncated = items[0].images[1].root / items[0].images[1].path
    uses = lambda path: {it.id for it in items if any(im.root / im.path == path for im in it.images)}  # noqa: E731
    deleted = next(
        im.root / im.path for it in items for im in it.images
        if im.root / im.path != truncated and not uses(im.root / im.path) & uses(truncated)
    )  # fmt: skip
    hit = uses(truncated) | uses(deleted)
    assert 0 < len(hit) < len(items) // 2, "the test needs good items beside the bad ones"
    data = truncated.read_bytes()
    truncated.write_bytes(data[: len(data) // 2])
    deleted.unlink()
    return truncated, deleted, hit


def test_bad_image_files_are_data_faults_of_their_items_and_the_rest_is_scored(tmp_path: Path, embedded_data: Path):
    from plainsight.gates import judge
    from plainsight.outcomes import DATA_ERROR
    from plainsight.records import summarize
    from plainsight.runner import Runner, RunOptions

    root = _spair_copy(tmp_path, embedded_data)
    limit = 24
    truncated, deleted, hit = _break_two_files(root, _items(root, limit))
    seen = []
    runner = Runner(RunOptions(data_root=root, limit=limit), _fault_entries(tmp_path), sink=lambda *a: seen.append(a))
    vision = runner.run(FAULT_TASK, "pixels", "vision")  # raised DataError at the first bad file before
    vlm = runner.run(FAULT_TASK, "oracle", "vlm")
    blind = runner.run(FAULT_TASK, "oracle", "blind")
    for run in (vision, vlm, blind):
        assert len(run.outcomes) == limit
        faults = {o.item_id: o for o in run.outcomes if o.reason == DATA_ERROR}
        assert set(faults) == hit, run.role  # blind too: white images, same item set
        for o in faults.values():
            assert (str(truncated) in o.detail and "cannot decode" in o.detail) or (
                str(deleted) in o.detail and "not found" in o.detail
            ), o.detail
            assert o.pred is None and not o.valid and not o.correct
        scored = [o for o in run.outcomes if o.item_id not in hit]
        assert all(o.valid and o.pred is not None for o in scored), run.role
    assert all(o.correct for o in vlm.outcomes if o.item_id not in hit)  # the oracle saw every good item
    # Streamed like any outcome (items.jsonl), with the file in `detail`.
    lines = [outcome.to_json(task, model, role) for task, model, role, outcome, _ in seen]
    assert sum(line["reason"] == "data_error" for line in lines) == 3 * len(hit)

    choices = ("A", "B", "C", "D")
    record = summarize(vlm, choices=choices, blind=blind, vision=vision, n_items=limit)
    assert record.data_errors == len(hit) and record.invalid == 0
    assert record.n_valid == limit - len(hit) and record.correct == limit - len(hit)
    assert record.accuracy == round((limit - len(hit)) / limit, 6)  # counted wrong
    assert record.paired_n == limit - len(hit)
    files = record.data_error_files
    assert len(files) == 2 and any(str(truncated) in f for f in files) and any(str(deleted) in f for f in files)

    failed = judge(record, {}, smoke=False)  # max_invalid_share defaults to 0: nothing hidden
    assert failed.status == "fail" and not failed.checks["integrity"]
    assert str(truncated) in failed.reason and str(deleted) in failed.reason
    assert f"{len(hit)} of {limit} item(s)" in failed.reason
    assert judge(record, {}, smoke=True).status == "fail"  # an integrity gate: smoke models too
    assert judge(record, {"expect": "xfail", "reason": "known"}, smoke=False).status == "fail"
    assert judge(record, {"max_invalid_share": 0.5}, smoke=False).status == "pass"
    vision_record = summarize(vision, choices=choices, n_items=limit)
    assert vision_record.data_error_files == files


def test_blind_run_alone_finds_the_same_data_faults(tmp_path: Path, embedded_data: Path):
    """The blind role shows white images, yet decodes each image once: its faults do not depend on run order."""
    from plainsight.outcomes import DATA_ERROR
    from plainsight.runner import Runner, RunOptions

    root = _spair_copy(tmp_path, embedded_data)
    _, _, hit = _break_two_files(root, _items(root, 16))
    blind = Runner(RunOptions(data_root=root, limit=16), _fault_entries(tmp_path)).run(FAULT_TASK, "oracle", "blind")
    assert {o.item_id for o in blind.outcomes if o.reason == DATA_ERROR} == hit
    assert all(o.pred is not None for o in blind.outcomes if o.item_id not in hit)


def test_vision_features_of_a_failed_image_are_not_cached_as_a_success(tmp_path: Path, embedded_data: Path):
    """An image that failed to decode stays a fault for every item using it; the encoder never sees it."""
    from plainsight.outcomes import DATA_ERROR
    from plainsight.runner import Runner, RunOptions

    root = _spair_copy(tmp_path, embedded_data)
    items = _items(root, 24)
    shared = items[0].images[0]  # the source image, used by several pairs
    path = shared.root / shared.path
    users = {it.id for it in items if any(im.root / im.path == path for im in it.images)}
    assert len(users) > 1
    path.write_bytes(b"not a jpeg")
    runner = Runner(RunOptions(data_root=root, limit=24), _fault_entries(tmp_path))
    encoded = []
    encoder = runner.encoder("pixels")
    original = encoder.encode
    encoder.encode = lambda images: (encoded.extend(images), original(images))[1]
    vision = runner.run(FAULT_TASK, "pixels", "vision")
    assert {o.item_id for o in vision.outcomes if o.reason == DATA_ERROR} == users
    assert len(encoded) == len({(im.root, im.path) for it in items if it.id not in users for im in it.images})


def test_point_outside_its_image_is_a_data_fault_found_before_the_model(tmp_path: Path, embedded_data: Path):
    import dataclasses

    from plainsight.items import out_of_image
    from plainsight.outcomes import DATA_ERROR
    from plainsight.runner import Runner, RunOptions

    runner = Runner(RunOptions(data_root=embedded_data, limit=6), _fault_entries(tmp_path))
    items = runner.items(FAULT_TASK)
    target = items[2].images[1]
    w, h = target.size
    moved = dict(target.points, B=(w - 0.5, 10.0))  # the first column past the right edge
    bad_image = dataclasses.replace(target, points=moved)
    items[2] = dataclasses.replace(items[2], images=(items[2].images[0], bad_image))
    assert all(out_of_image(it) is None for i, it in enumerate(items) if i != 2)
    message = out_of_image(items[2])
    assert message is not None and "point B" in message and "outside the image" in message
    assert str(target.root / target.path) in message and items[2].id in message

    for role, model in (("vision", "pixels"), ("vlm", "oracle"), ("blind", "oracle")):
        run = runner.run(FAULT_TASK, model, role)
        reasons = [o.reason for o in run.outcomes]
        assert reasons[2] == DATA_ERROR and reasons.count(DATA_ERROR) == 1, role
        assert run.outcomes[2].detail == message


@pytest.mark.parametrize(
    "points, boxes, fault",
    [
        ({"A": (-0.5, 0.0), "B": (31.49, 23.49)}, {}, None),  # the image's continuous extent, both ends
        ({"A": (-0.51, 0.0)}, {}, "point A (-0.51, 0) lies outside"),
        ({"A": (3.0, 23.5)}, {}, "point A (3, 23.5) lies outside"),
        ({"A": (float("nan"), 3.0)}, {}, "point A (nan, 3.0) is not finite"),
        ({}, {"A": (-3.0, -3.0, 40.0, 30.0)}, None),  # overhanging boxes are clipped by the readouts
        ({}, {"A": (31.5, 2.0, 40.0, 10.0)}, "box A [31.5, 2.0, 40.0, 10.0] lies outside"),
        ({}, {"B": (5.0, 9.0, 4.0, 12.0)}, "box B [5.0, 9.0, 4.0, 12.0] is inverted"),
    ],
)
def test_out_of_image_points_and_boxes(points: dict, boxes: dict, fault: str | None):
    from plainsight.items import Item, ItemImage, out_of_image

    item = Item("x", "depth", (ItemImage("a.png", (32, 24), points, boxes),), ("A", "B"), "A", "?", "p")
    message = out_of_image(item)
    if fault is None:
        assert message is None
    else:
        assert message is not None and fault in message and message.startswith("a.png: image 1 of item x"), message


def test_max_invalid_share_is_validated_like_the_other_gates(tmp_path: Path):
    p = tmp_path / "thresholds.toml"
    for text, message in [
        (
            "[defaults.vlm]\nmax_invalid_share = 1.5\n",
            "[defaults.vlm]: max_invalid_share = 1.5 is out of range [0.0, 1.0]",
        ),
        ("[models.m]\nmax_invalid_share = true\n", "[models.m]: max_invalid_share must be a number, not bool"),
        (
            '[tasks.depth.vision]\nmax_invalid_share = "5%"\n',
            "[tasks.depth.vision]: max_invalid_share must be a number",
        ),
    ]:
        p.write_text(text)
        with pytest.raises(ConfigError) as err:
            load_thresholds(p)
        assert str(p) in str(err.value) and message in str(err.value), str(err.value)
    p.write_text("[defaults.vlm]\nmax_invalid_share = 0.02\n[models.m.depth]\nmax_invalid_share = 0\n")
    thresholds = load_thresholds(p)
    assert thresholds.for_case("depth", "m", "vlm")["max_invalid_share"] == 0
    assert thresholds.for_case("art_style", "m", "vlm")["max_invalid_share"] == 0.02


def test_data_error_message_names_ten_files_then_how_many_more():
    from plainsight.gates import judge
    from plainsight.records import Record

    files = [f"/data/img{k:02d}.jpg: image file not found" for k in range(13)]
    record = Record(
        "depth", "m", "vision", n=100, n_valid=87, n_items=100, n_outcomes=100, nan=0,
        answer_dist={"A": 0.5, "B": 0.5}, gold_dist={"A": 0.5, "B": 0.5}, data_errors=13,
        data_error_files=files, accuracy=0.5, ci95=[0.4, 0.6], chance_floor=0.5,
    )  # fmt: skip
    verdict = judge(record, {"max_invalid_share": 0.1}, smoke=False)
    assert verdict.status == "fail"
    assert "13 of 100 item(s) (13.0%)" in verdict.reason and "max_invalid_share 0.1" in verdict.reason
    assert all(f in verdict.reason for f in files[:10]) and files[10] not in verdict.reason
    assert verdict.reason.endswith("; and 3 more")
    assert judge(record, {"max_invalid_share": 0.13}, smoke=True).status == "pass"  # at the limit: allowed


def test_resume_tries_data_faults_again_once_the_file_is_fixed(tmp_path: Path, embedded_data: Path):
    from plainsight.outcomes import DATA_ERROR
    from plainsight.runner import Runner, RunOptions

    root = _spair_copy(tmp_path, embedded_data)
    items = _items(root, 12)
    bad = items[0].images[1].root / items[0].images[1].path
    good_bytes = bad.read_bytes()
    bad.write_bytes(good_bytes[:100])
    rows = {}

    def sink(task, model, role, outcome, key):
        rows[key] = outcome.to_json(task, model, role)

    first = Runner(RunOptions(data_root=root, limit=12), _fault_entries(tmp_path), sink=sink).run(
        FAULT_TASK, "oracle", "vlm"
    )
    hit = {o.item_id for o in first.outcomes if o.reason == DATA_ERROR}
    assert hit and str(bad) in next(o.detail for o in first.outcomes if o.item_id in hit)
    bad.write_bytes(good_bytes)
    resumed = Runner(RunOptions(data_root=root, limit=12), _fault_entries(tmp_path), answers=rows)
    second = resumed.run(FAULT_TASK, "oracle", "vlm")
    assert all(o.valid and o.correct for o in second.outcomes)
    assert resumed.computed == len(hit) and resumed.reused == 12 - len(hit)


# -- run-level probes, end to end through pytester ------------------------------------------------------------

pytest_plugins = ["pytester"]


MODELS = """
[models.pixels]
kind = "encoder"
source = "pixels"

[models.broken]
kind = "encoder"
source = "./broken-dinov2"

[models.oracle]
kind = "vlm"
source = "double:oracle"
pairs_with = "pixels"
"""


@pytest.fixture
def project(pytester: pytest.Pytester) -> pytest.Pytester:
    shutil.copy(REPO / "evals" / "test_correspondence.py", pytester.path / "test_correspondence.py")
    (pytester.path / "models.toml").write_text(MODELS)
    broken = pytester.path / "broken-dinov2"
    shutil.copytree(REPO / "fixtures" / "models" / "tiny-dinov2", broken)
    weights = broken / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])  # a truncated download
    return pytester


def run(pytester: pytest.Pytester, *extra: str, report: str = "report") -> tuple[pytest.RunResult, dict]:
    result = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", f"--model-config={pytester.path / 'models.toml'}",
        f"--thresholds={REPO / 'fixtures' / 'thresholds.toml'}", f"--report-dir={pytester.path / report}",
        f"--data-root={REPO / 'fixtures' / 'data'}", "--limit=8", "--tasks=low_level_matching", *extra,
    )  # fmt: skip
    path = pytester.path / report / "results.json"
    return result, json.loads(path.read_text()) if path.is_file() else {}


def records(results: dict) -> dict:
    return {(r["task"], r["model"], r["role"]): r for r in results["results"]}


def test_a_model_that_cannot_load_is_one_line_and_an_error_record(project):
    result, results = run(project)
    result.assert_outcomes(passed=2, failed=1)
    weights = project.path / "broken-dinov2" / "model.safetensors"
    result.stdout.fnmatch_lines([f"*[[]models.broken[]] {weights}: cannot be loaded (SafetensorError: *"])
    assert "Traceback" not in result.stdout.str()
    broken = records(results)[("low_level_matching", "broken", "vision")]
    assert broken["verdict"] == "error" and str(weights) in broken["reason"] and "SafetensorError" in broken["reason"]
    assert records(results)[("low_level_matching", "oracle", "vlm")]["verdict"] == "pass"
    assert results["complete"] is True
    assert "broken" in (project.path / "report" / "report.md").read_text()


def test_a_run_in_which_every_test_fails_still_replaces_the_report(project):
    _, good = run(project, "--models=pixels")
    assert good["results"] and all(r["model"] == "pixels" for r in good["results"])
    result, failed = run(project, "--models=broken")
    result.assert_outcomes(failed=1)
    assert [(r["model"], r["verdict"]) for r in failed["results"]] == [("broken", "error")]
    assert failed["complete"] is True
    assert (project.path / "report" / "items.jsonl").read_text() == ""  # the earlier run's items are gone too


def test_an_interrupted_run_is_not_complete(project):
    (project.path / "conftest.py").write_text(
        "def pytest_runtest_logfinish(nodeid, location):\n    raise KeyboardInterrupt\n"  # Ctrl-C after one test
    )
    result, results = run(project, "--models=pixels")
    assert result.ret == pytest.ExitCode.INTERRUPTED
    assert len(results["results"]) == 1 and results["complete"] is False


def test_stopping_at_the_first_failure_is_not_complete(project):
    result, results = run(project, "-x")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    assert results["complete"] is False


def test_a_second_run_into_a_held_report_dir_is_refused_and_touches_nothing(project):
    report = project.path / "report"
    report.mkdir()
    (report / "results.json").write_text('{"sentinel": true}')
    (report / "items.part-gw0.jsonl").write_text('{"another": "run"}\n')
    lock = ReportDirLock(report)
    lock.acquire()
    try:
        result, results = run(project, "--models=pixels")
        assert result.ret == pytest.ExitCode.USAGE_ERROR
        result.stderr.fnmatch_lines([f"*{report} is in use by another plainsight run (pid {os.getpid()}, started *"
                                     "*--report-dir DIR*"])  # fmt: skip
        assert results == {"sentinel": True}
        assert (report / "items.part-gw0.jsonl").read_text() == '{"another": "run"}\n'
        # A pytest session that collects no eval test does not need (or take) the report dir.
        # Nor does it read a config or import a task module: the always-on plugin stays out of its way.
        (project.path / "test_plain.py").write_text(
            "import sys\n\n"
            "def test_plain():\n"
            "    assert not [m for m in sys.modules if m.startswith(('plainsight.tasks.', 'plainsight.runner'))]\n"
        )
        plain = project.runpytest_subprocess("-p", "no:cacheprovider", f"--report-dir={report}", "test_plain.py",
                                             "--model-config=no-such-models.toml")  # fmt: skip
        plain.assert_outcomes(passed=1)
        (project.path / "test_plain.py").unlink()  # the eval run below must not collect it
    finally:
        lock.release()
    result, results = run(project, "--models=pixels")
    assert result.ret == pytest.ExitCode.OK and results["complete"] is True
    assert not (report / ReportDirLock.OWNER).exists()


# -- loaders: nothing dropped without a count, no size taken on trust ------------------------------------------


def test_cvbench_rows_left_out_are_counted_by_reason_in_results_and_the_summary(pytester: pytest.Pytester):
    from test_depth import _cvbench_rows, _write_cvbench_jsonl

    rows = _cvbench_rows()
    no_task = {k: v for k, v in rows[0].items() if k != "task"} | {"idx": 3, "filename": "img/3D/depth/d.png"}
    lower = rows[0] | {"idx": 4, "task": "depth", "filename": "img/3D/depth/e.png"}
    _write_cvbench_jsonl(pytester.path / "data", rows + [no_task, lower])
    shutil.copy(REPO / "evals" / "test_depth.py", pytester.path / "test_depth.py")
    (pytester.path / "models.toml").write_text('[models.oracle]\nkind = "vlm"\nsource = "double:oracle"\n')
    result = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", f"--model-config={pytester.path / 'models.toml'}",
        f"--thresholds={REPO / 'fixtures' / 'thresholds.toml'}", f"--report-dir={pytester.path / 'report'}",
        f"--data-root={pytester.path / 'data'}", "--tasks=depth",
    )  # fmt: skip
    result.stdout.fnmatch_lines([
        "data: depth: 1 source rows left out (test_3d.jsonl: rows of task 'Distance' (not depth))",
        "data: depth: 1 source rows left out (test_3d.jsonl: rows with task 'depth' (not 'Depth'))",
        "data: depth: 1 source rows left out (test_3d.jsonl: rows without a 'task' field)",
    ])  # fmt: skip
    results = json.loads((pytester.path / "report" / "results.json").read_text())
    assert results["options"]["data_skipped"] == {"depth": {
        "test_3d.jsonl: rows of task 'Distance' (not depth)": 1, "test_3d.jsonl: rows with task 'depth' (not 'Depth')": 1,
        "test_3d.jsonl: rows without a 'task' field": 1,
    }}  # fmt: skip
    assert all(r["n"] == 2 for r in results["results"] if r["role"] == "vlm")


def test_an_spair_size_that_disagrees_with_its_jpeg_names_both_files(tmp_path):
    from native_fixtures import write_spair

    from plainsight.data.spair import read_pair
    from plainsight.errors import DataError

    write_spair(tmp_path)
    root = tmp_path / "SPair-71k"
    pair_file = next((root / "PairAnnotation" / "test").glob("*.json"))
    data = json.loads(pair_file.read_text())
    w, h = data["trg_imsize"][:2]
    data["trg_imsize"] = [w + 10, h, 3]
    pair_file.write_text(json.dumps(data))
    with pytest.raises(DataError, match=rf"{pair_file}: field 'trg_imsize' says {w + 10}x{h} but .*\.jpg is {w}x{h}"):
        read_pair(root, "test", pair_file.stem)


def test_bad_images_fail_the_pair_by_name_and_the_rest_of_the_task_is_scored_and_reported(pytester, embedded_data):
    """Probes 1 and 11: one truncated and one missing SPair JPEG. The task stays in every report, each bad file
    is named at once (terminal, report.md, the gate), every other item is scored."""
    data = pytester.path / "data"
    shutil.copytree(embedded_data / "SPair-71k", data / "SPair-71k")
    jpegs = sorted((data / "SPair-71k" / "JPEGImages").rglob("*.jpg"))
    truncated, missing = jpegs[0], jpegs[1]  # two chairs: both among the first 40 items
    truncated.write_bytes(truncated.read_bytes()[:400])
    missing.unlink()
    shutil.copy(REPO / "evals" / "test_correspondence.py", pytester.path / "test_correspondence.py")
    (pytester.path / "models.toml").write_text(
        MODELS.replace('[models.broken]\nkind = "encoder"\nsource = "./broken-dinov2"\n', "")
    )
    report = pytester.path / "report"
    result = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", f"--model-config={pytester.path / 'models.toml'}",
        f"--thresholds={REPO / 'fixtures' / 'thresholds.toml'}", f"--report-dir={report}",
        f"--data-root={data}", "--tasks=semantic_correspondence", "--limit=40",
    )  # fmt: skip
    result.assert_outcomes(failed=2)
    result.stdout.fnmatch_lines(["data errors: semantic_correspondence: * item(s) not scored (counted wrong): *"])
    out = result.stdout.str()
    assert truncated.name in out and missing.name in out
    results = json.loads((report / "results.json").read_text())
    assert results["complete"] is True
    oracle = records(results)[("semantic_correspondence", "oracle", "vlm")]
    assert oracle["verdict"] == "fail" and truncated.name in oracle["reason"] and missing.name in oracle["reason"]
    assert oracle["data_errors"] > 0 and oracle["n"] == 40 and oracle["correct"] == 40 - oracle["data_errors"]
    markdown = (report / "report.md").read_text()
    assert "## Data errors" in markdown and truncated.name in markdown and missing.name in markdown
    lines = [json.loads(line) for line in (report / "items.jsonl").read_text().splitlines()]
    oracle_lines = [line for line in lines if (line["model"], line["role"]) == ("oracle", "vlm")]
    assert {line["reason"] for line in oracle_lines if not line["correct"]} == {"data_error"}


def test_a_misspelt_model_table_in_thresholds_stops_the_run_before_it_starts(project):
    """Probe 4: [models.pixel.art_style] (pixels misspelt) would never apply; the run refuses to start."""
    thresholds = project.path / "thresholds.toml"
    thresholds.write_text(
        (REPO / "fixtures" / "thresholds.toml").read_text() + "\n[models.pixel.art_style]\nabove_chance = false\n"
    )
    result = project.runpytest_subprocess(
        "-p", "no:cacheprovider", f"--model-config={project.path / 'models.toml'}", f"--thresholds={thresholds}",
        f"--report-dir={project.path / 'report'}", "--limit=4", "--tasks=low_level_matching",
    )  # fmt: skip
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [f"*{thresholds}: [[]models.pixel[]]: no such model in the model config; known models: *"]
    )
    assert not (project.path / "report").exists()


def test_hpatches_images_that_cannot_be_decoded_are_all_named_at_once(tmp_path: Path, embedded_data: Path):
    """HPatches items are built from the pixels (corners), so a broken image cannot leave its pairs as data faults:
    the task stops with one message naming every bad file, not just the first."""
    from plainsight.errors import DataError
    from plainsight.tasks import LoadRequest, get_task

    root = tmp_path / "hpatches-sequences-release"
    shutil.copytree(embedded_data / "hpatches-sequences-release", root)
    first, second = sorted(root.glob("v_*/3.*"))[:2]
    for path in (first, second):
        path.write_bytes(path.read_bytes()[:300])
    with pytest.raises(DataError, match="2 HPatches image") as err:
        get_task("low_level_matching").load_items(LoadRequest(tmp_path))
    assert str(first) in str(err.value) and str(second) in str(err.value)
