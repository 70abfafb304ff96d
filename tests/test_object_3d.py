"""3D object awareness (MOCHI): the loader, the odd-one-out readout and the embedded twin."""

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
from native_fixtures import mochi_row, shuffled_control, write_mochi

from plainsight.data.mochi import load_trials
from plainsight.errors import ConfigError, DataError, DatasetNotFound
from plainsight.items import LETTERS
from plainsight.models.registry import load_models_toml
from plainsight.readouts.odd_one_out import odd_one_out_readout, odd_one_out_scores
from plainsight.runner import Runner, RunOptions
from plainsight.scoring import wilson_interval
from plainsight.tasks import LoadRequest, get_task

EXE = Path(sys.executable).parent / "plainsight"
REPO = Path(__file__).resolve().parents[1]


def _rows() -> list[dict]:
    return [
        mochi_row("shapegen2527", 2, seed=1),
        mochi_row("shapenet0001", 0, dataset="shapenet", seed=2),
        mochi_row("barense_hisim_01", 3, n_objects=4, dataset="barense", seed=3),
        mochi_row("hvm0042", 1, dataset="hvm", seed=4),
    ]


# ---------------------------------------------------------------- loader


def test_three_image_trials_by_default_and_the_four_image_one_counted(tmp_path):
    write_mochi(tmp_path, _rows())
    loaded = load_trials(tmp_path)
    assert [it.id for it in loaded.items] == ["mochi-shapegen2527", "mochi-shapenet0001", "mochi-hvm0042"]
    assert [it.gold for it in loaded.items] == ["C", "A", "B"]  # oddity_index is 0-based
    assert loaded.excluded == {"4-image trials": 1}
    item = loaded.items[0]
    assert item.choices == ("A", "B", "C") and len(item.images) == 3 and not item.markers_drawn
    assert item.option_texts == ("the first image", "the second image", "the third image")
    assert item.prompt.endswith("(C) the third image") and "(D)" not in item.prompt
    assert item.meta["dataset"] == "shapegen" and item.meta["human_avg"] == 0.8
    # the odd image of the fixture is the dark one: the gold really points at it
    means = [float(np.asarray(im).mean()) for im in item.load_images()]
    assert int(np.argmin(means)) == item.gold_index


def test_four_image_trials_behind_the_task_option(tmp_path):
    write_mochi(tmp_path, _rows())
    items = get_task("object_3d").load_items(LoadRequest(tmp_path, options={"n_objects": "4"}))
    assert [it.id for it in items] == ["mochi-barense_hisim_01"]
    assert items[0].choices == ("A", "B", "C", "D") and items[0].gold == "D"
    assert items[0].prompt.endswith("(D) the fourth image")
    with pytest.raises(ConfigError, match="n_objects='5'"):
        get_task("object_3d").load_items(LoadRequest(tmp_path, options={"n_objects": "5"}))


@pytest.mark.parametrize("where", ["root", "MOCHI", "data"])
def test_the_dataset_folder_given_directly(tmp_path, where):
    write_mochi(tmp_path, _rows())
    root = {"root": tmp_path, "MOCHI": tmp_path / "MOCHI", "data": tmp_path / "MOCHI" / "data"}[where]
    assert len(load_trials(root).items) == 3


def test_missing_dataset_names_the_expected_layout(tmp_path):
    with pytest.raises(DatasetNotFound, match=r"MOCHI/data/train-00000-of-00001\.parquet"):
        load_trials(tmp_path)


def _broken(rows: list[dict], case: str) -> list[dict]:
    row = rows[0]
    if case == "oddity_out_of_range":
        row["oddity_index"] = 3
    elif case == "negative_oddity":
        row["oddity_index"] = -1
    elif case == "count_mismatch":
        row["images"] = row["images"][:2]
    elif case == "bad_image":
        row["images"][1] = {"bytes": b"not an image", "path": "x.png"}
    elif case == "duplicate_trial":
        rows[1]["trial"] = row["trial"]
    elif case == "missing_trial":
        row["trial"] = ""
    return rows


@pytest.mark.parametrize(
    "case, message",
    [
        ("oddity_out_of_range", r"row 0 \(shapegen2527\): field 'oddity_index' is 3; it must be 0-based"),
        ("negative_oddity", r"field 'oddity_index' is -1"),
        ("count_mismatch", r"field 'images' holds 2 images but 'n_objects' says 3"),
        ("bad_image", r"field 'images'\[1\]: cannot decode image bytes"),
        ("duplicate_trial", r"row 1 \(shapegen2527\): trial 'shapegen2527' appears twice"),
        ("missing_trial", r"row 0: field 'trial' must be a non-empty string"),
    ],
)
def test_malformed_trials_name_file_row_and_field(tmp_path, case, message):
    path = write_mochi(tmp_path, _broken(_rows(), case))
    with pytest.raises(DataError, match=message) as err:
        load_trials(tmp_path)
    assert str(path) in str(err.value)


def test_missing_column_and_wrong_types(tmp_path):
    rows = _rows()
    for row in rows:
        del row["oddity_index"]
    write_mochi(tmp_path, rows, schema_from_rows=True)
    with pytest.raises(DataError, match=r"missing column\(s\) oddity_index; it has"):
        load_trials(tmp_path)
    rows = _rows()
    rows[0]["n_objects"] = "three"
    for row in rows[1:]:
        row["n_objects"] = str(row["n_objects"])
    write_mochi(tmp_path, rows, schema_from_rows=True)
    with pytest.raises(DataError, match=r"field 'n_objects' must be an integer, got 'three'"):
        load_trials(tmp_path)


def test_cli_items_on_a_mochi_folder(tmp_path):
    write_mochi(tmp_path, _rows())

    def items(*extra: str) -> list[dict]:
        out = subprocess.run([str(EXE), "items", "--task", "object_3d", "--data-root", str(tmp_path), "--json", *extra],
                             capture_output=True, text=True, cwd=REPO, timeout=300, check=True)  # fmt: skip
        return [json.loads(line) for line in out.stdout.splitlines()]

    recs = items()
    assert [r["gold"] for r in recs] == ["C", "A", "B"] and recs[0]["images"][0]["size"] == [16, 16]
    (four,) = items("--option", "n_objects=4")
    assert four["choices"] == ["A", "B", "C", "D"] and four["gold"] == "D"


# ---------------------------------------------------------------- readout


def test_readout_picks_the_image_unlike_the_others():
    same = torch.tensor([1.0, 0.2, 0.0])
    pooled = torch.stack([same, torch.tensor([0.0, 0.1, 1.0]), same * 2])
    scores = odd_one_out_scores(pooled)
    assert int(np.argmax(scores)) == 1


@settings(max_examples=60, deadline=None)
@given(st.integers(3, 5), st.integers(0, 2**31 - 1))
def test_readout_scores_follow_the_images_when_they_are_permuted(n, seed):
    rng = np.random.default_rng(seed)
    pooled = torch.from_numpy(rng.normal(size=(n, 6)))
    perm = rng.permutation(n)
    scores = np.array(odd_one_out_scores(pooled))
    np.testing.assert_allclose(np.array(odd_one_out_scores(pooled[perm])), scores[perm], atol=1e-6)
    # invariant to each image's feature scale (cosine)
    np.testing.assert_allclose(
        odd_one_out_scores(pooled * torch.from_numpy(rng.uniform(0.1, 9, size=(n, 1)))), scores, atol=1e-6
    )


class _PooledEncoder:
    """Pooled feature = the image's mean colour (a stand-in encoder with a known answer)."""

    name = "mean-colour"

    def encode(self, images):
        from plainsight.models.encoders import Features

        return [Features(torch.zeros(1, 1, 1), torch.from_numpy(np.asarray(im, dtype=np.float64).mean(axis=(0, 1)) - 120), None)
                for im in images]  # fmt: skip


def test_readout_on_loaded_trials(tmp_path):
    write_mochi(tmp_path, _rows())
    for item in load_trials(tmp_path).items:  # the odd image is the dark one
        result = odd_one_out_readout(_PooledEncoder(), item)
        assert max(result.scores, key=result.scores.get) == item.gold


def test_readout_reports_non_finite_features_as_invalid(tmp_path):
    write_mochi(tmp_path, _rows())
    item = load_trials(tmp_path).items[0]

    class NaNEncoder(_PooledEncoder):
        def encode(self, images):
            feats = super().encode(images)
            feats[0].pooled[0] = float("nan")
            return feats

    result = odd_one_out_readout(NaNEncoder(), item)
    assert result.scores is None and "non-finite" in result.invalid_reason


# ---------------------------------------------------------------- embedded twin


def _truth(embedded_data: Path) -> dict[str, dict]:
    lines = (embedded_data / "MOCHI" / "plainsight_truth.jsonl").read_text().splitlines()
    return {rec["trial"]: rec for rec in map(json.loads, lines)}


def _odd_letter(record: dict) -> str:
    return LETTERS[[view["object"] for view in record["views"]].index("odd")]


def test_twin_oracle_and_shuffled_control(embedded_data):
    items = get_task("object_3d").load_items(LoadRequest(embedded_data))
    assert len(items) == 120
    assert {g: sum(it.gold == g for it in items) for g in "ABC"} == {"A": 40, "B": 40, "C": 40}
    assert {it.meta["dataset"] for it in items} == {"shapenet", "shapegen"}
    truth = _truth(embedded_data)
    oracle = sum(_odd_letter(truth[it.meta["trial"]]) == it.gold for it in items)
    assert oracle == len(items)
    # The same oracle reading another trial's truth: nothing but chance is left.
    letters = [_odd_letter(truth[it.meta["trial"]]) for it in items]
    control = shuffled_control(letters, [it.gold for it in items], chance=1 / 3)
    print(f"\nobject_3d twin: oracle {oracle}/{len(items)}; shuffled truth {control}")
    assert control.ok()


def test_twin_barense_trials_are_excluded_by_default_and_counted(embedded_data):
    loaded = load_trials(embedded_data)
    assert loaded.excluded == {"4-image trials": 12}
    four = load_trials(embedded_data, n_objects=4).items
    assert len(four) == 12 and all(len(it.images) == 4 for it in four)
    truth = _truth(embedded_data)
    assert all(_odd_letter(truth[it.meta["trial"]]) == it.gold for it in four)


def test_twin_views_of_one_object_differ_and_colour_says_nothing(embedded_data):
    """Same plain colour on every object of a trial: the mean colour of the odd image is no cue."""
    items = get_task("object_3d").load_items(LoadRequest(embedded_data))
    hits = sum(
        max((r := odd_one_out_readout(_PooledEncoder(), it)).scores, key=r.scores.get) == it.gold for it in items
    )
    lo, hi = wilson_interval(hits, len(items))
    print(f"\nobject_3d twin: mean-colour readout {hits}/{len(items)} [{lo:.3f}, {hi:.3f}]")
    assert lo < 1 / 3  # not significantly above chance: colour and on-screen size are no cue
    truth = _truth(embedded_data)
    for item in items[:10]:
        azimuths = [v["azimuth"] for v in truth[item.meta["trial"]]["views"] if v["object"] == "same"]
        assert abs((azimuths[0] - azimuths[1] + np.pi) % (2 * np.pi) - np.pi) >= np.deg2rad(40) - 1e-3


def test_twin_readouts_reported(embedded_data):
    """Training-free readouts on the twin, printed for the record (pixels: thumbnail NCC)."""
    entries = load_models_toml(REPO / "fixtures" / "models.toml")
    runner = Runner(RunOptions(), {"pixels": entries["pixels"]})
    run = runner.run("object_3d", "pixels", "vision")
    correct = sum(o.correct for o in run.outcomes)
    lo, hi = wilson_interval(correct, len(run.outcomes))
    print(f"\nobject_3d twin: pixels (thumbnail NCC) {correct}/{len(run.outcomes)} [{lo:.3f}, {hi:.3f}]")
    assert len(run.outcomes) == 120 and all(o.valid for o in run.outcomes)
