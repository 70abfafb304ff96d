"""Bad configuration and bad data files: a clear message naming the file (and table/key, row
or field), never a bare traceback or a silently wrong number (issue 18)."""

from __future__ import annotations

from pathlib import Path

import pytest

from plainsight.errors import ConfigError
from plainsight.gates import check_models, load_thresholds

# --- thresholds.toml --------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, message",
    [
        ('[defaults.vlm]\nmin_accuracy = "high"\n', "[defaults.vlm]: min_accuracy must be a number"),
        ("[defaults.vlm]\nmin_accuracy = 1.5\n", "[defaults.vlm]: min_accuracy = 1.5 is out of range"),
        ('[defaults.vision]\nabove_chance = "yes"\n', "[defaults.vision]: above_chance must be true or false"),
        ("[tasks.depth.vlm]\nmax_gap_to_vision = true\n", "[tasks.depth.vlm]: max_gap_to_vision must be a number, not bool"),
        ("[models.m]\nmin_tv_to_blind = false\n", "[models.m]: min_tv_to_blind must be a number, not bool"),
        ('[baseline]\nalpha = "0.05"\n', "[baseline]: alpha must be a number"),
        ("[baseline]\nalpha = 0\n", "[baseline]: alpha = 0 is out of range (0"),
        ("[baseline]\ntolerance = -0.1\n", "[baseline]: tolerance = -0.1 is out of range"),
        ("[baseline]\ntolerence = 0.1\n", "[baseline]: unknown key 'tolerence'"),
        ('[models.m.depth]\nexpect = "fail"\nreason = "x"\n', '[models.m.depth]: expect must be "xfail"'),
        ('[models.m.depth]\nexpect = "xfail"\nreason = 3\n', "[models.m.depth]: reason must be a string"),
        ("[tasks.art_styl.vision]\nabove_chance = true\n", "[tasks.art_styl]: unknown task 'art_styl'; known: art_style"),
        ("[models.m.art_styl]\nabove_chance = false\n", "[models.m.art_styl]: unknown task 'art_styl'; known: art_style"),
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
    import json

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
    import json

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
    import json

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
    assert str(err.value).startswith(f"{path} row 0 (idx 7): field 'bbox' entry A must be [x1, y1, x2, y2]"), str(err.value)


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
    from PIL import Image

    from native_fixtures import blink_row, write_blink
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
