"""Gate semantics: thresholds resolution, verdicts, integrity checks."""

from pathlib import Path

import pytest

from plainsight.errors import ConfigError
from plainsight.gates import Thresholds, judge, load_thresholds
from plainsight.records import Record


def record(**overrides):
    base = {
        "task": "low_level_matching", "model": "m", "role": "vlm", "n": 100, "n_valid": 100, "n_items": 100, "n_outcomes": 100,
        "correct": 60, "accuracy": 0.6, "ci95": [0.50, 0.69], "chance_floor": 0.25, "nan": 0,
        "answer_dist": {"A": 0.25, "B": 0.25, "C": 0.25, "D": 0.25}, "gold_dist": {"A": 0.25, "B": 0.25, "C": 0.25, "D": 0.25},
        "gap_to_vision": 0.05, "vision_accuracy": 0.65, "paired_vlm_accuracy": 0.6, "paired_n": 100,
        "paired_with": "enc", "mcnemar_p": 0.3, "tv_to_blind": 0.4,
    }  # fmt: skip
    base.update(overrides)
    return Record(**base)


GATES = {"above_chance": True, "max_gap_to_vision": 0.1, "min_tv_to_blind": 0.05}


def test_passing_record_passes():
    assert judge(record(), GATES, smoke=False).status == "pass"


def test_not_above_chance_fails_with_numbers():
    v = judge(record(accuracy=0.27, ci95=[0.19, 0.36]), GATES, smoke=False)
    assert v.status == "fail"
    assert "0.190" in v.reason and "chance floor 0.250" in v.reason


def test_chance_floor_uses_majority_share():
    # lower bound 0.30 beats 1/4 but not a 0.35 majority-letter floor
    v = judge(record(ci95=[0.30, 0.5], chance_floor=0.35), GATES, smoke=False)
    assert v.status == "fail"


def test_gap_to_vision_gate_names_pair_and_p_value():
    v = judge(record(gap_to_vision=0.3, mcnemar_p=0.001), GATES, smoke=False)
    assert v.status == "fail" and "enc" in v.reason and "p=0.001" in v.reason


def test_blind_gate():
    v = judge(record(tv_to_blind=0.0), GATES, smoke=False)
    assert v.status == "fail" and "min_tv_to_blind" in v.reason


def test_expected_gap_is_xfail_not_pass():
    gates = GATES | {"expect": "xfail", "reason": "paper gap"}
    assert judge(record(gap_to_vision=0.5), gates, smoke=False).status == "xfail"
    assert judge(record(), gates, smoke=False).status == "pass"


def test_smoke_models_get_integrity_only():
    assert judge(record(accuracy=0.0, ci95=[0.0, 0.04]), GATES, smoke=True).status == "pass"
    v = judge(record(nan=3), GATES, smoke=True)
    assert v.status == "fail" and "NaN" in v.reason


def test_integrity_missing_outcomes_and_bad_distribution():
    assert judge(record(n_outcomes=99), GATES, smoke=True).status == "fail"
    bad = record(answer_dist={"A": 0.5, "B": 0.2})
    assert "answer_dist sums" in judge(bad, GATES, smoke=True).reason


def test_integrity_failure_is_never_xfail():
    gates = GATES | {"expect": "xfail", "reason": "known"}
    assert judge(record(nan=1), gates, smoke=False).status == "fail"


def test_threshold_resolution_order(tmp_path: Path):
    p = tmp_path / "t.toml"
    p.write_text(
        "[defaults.vlm]\nmax_gap_to_vision = 0.1\nmin_tv_to_blind = 0.05\n"
        "[tasks.depth.vlm]\nmax_gap_to_vision = 0.2\n"
        "[models.m]\nmin_tv_to_blind = 0.0\n"
        "[models.m.depth]\nexpect = 'xfail'\nreason = 'paper'\n"
    )
    t = load_thresholds(p)
    assert t.for_case("depth", "m", "vlm") == {
        "max_gap_to_vision": 0.2,
        "min_tv_to_blind": 0.0,
        "expect": "xfail",
        "reason": "paper",
    }
    assert t.for_case("low_level_matching", "other", "vlm") == {"max_gap_to_vision": 0.1, "min_tv_to_blind": 0.05}


@pytest.mark.parametrize(
    "text, message",
    [
        ("[defaults.vlm]\nmax_gap = 0.1\n", "unknown gate 'max_gap'"),
        ("[defaults.encoder]\nabove_chance = true\n", "role must be one of"),
        ("[models.m]\nexpect = 'xfail'\n", "needs a reason"),
        ("[defaults.vlm\n", "not valid TOML"),
    ],
)
def test_bad_thresholds_name_file_and_field(tmp_path: Path, text: str, message: str):
    p = tmp_path / "thresholds.toml"
    p.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_thresholds(p)
    assert message in str(err.value) and str(p) in str(err.value)


def test_shipped_thresholds_load():
    t = load_thresholds(Path(__file__).resolve().parents[1] / "fixtures" / "thresholds.toml")
    assert isinstance(t, Thresholds) and t.for_case("low_level_matching", "x", "vision")["above_chance"] is True
