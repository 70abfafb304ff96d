"""results.json records re-derived by hand from outcomes."""

import json

import pytest

from plainsight.errors import ConfigError
from plainsight.outcomes import Outcome, RoleRun
from plainsight.records import Record, summarize

CHOICES = ("A", "B", "C", "D")


def run(role, preds, golds, reasons=None, model="m"):
    reasons = reasons or [None] * len(preds)
    outcomes = [Outcome(f"i{k}", g, p, r) for k, (p, g, r) in enumerate(zip(preds, golds, reasons))]
    return RoleRun("low_level_matching", model, role, "set", outcomes)


def test_accuracy_ci_distributions_and_tv():
    golds = list("ABCDABCDAB")
    preds = list("AAAAAAAAAA")
    rec = summarize(run("vlm", preds, golds), choices=CHOICES)
    assert rec.n == 10 and rec.correct == 3 and rec.accuracy == 0.3
    assert rec.answer_dist == {"A": 1.0, "B": 0.0, "C": 0.0, "D": 0.0}
    assert rec.gold_dist == {"A": 0.3, "B": 0.3, "C": 0.2, "D": 0.2}
    assert rec.tv_to_gold == pytest.approx(0.7)
    assert rec.chance == 0.25 and rec.chance_floor == 0.3
    lo, hi = rec.ci95
    assert lo < 0.3 < hi


def test_abstentions_and_invalid_items_count_wrong_and_valid_figures_stand_beside():
    golds = list("ABCD")
    preds = [None, "B", None, None]
    reasons = ["tie", None, "invalid", "nan"]
    rec = summarize(run("vlm", preds, golds, reasons), choices=CHOICES, n_items=4)
    assert rec.n == 4 and rec.invalid == 1 and rec.ties == 1 and rec.nan == 1
    assert rec.correct == 1 and rec.accuracy == pytest.approx(1 / 4)
    assert rec.n_valid == 3 and rec.accuracy_valid == pytest.approx(1 / 3, abs=1e-6)
    # the answer distribution describes the answers given to scored items
    assert rec.answer_dist["none"] == pytest.approx(2 / 3, abs=1e-6)
    assert sum(rec.answer_dist.values()) == pytest.approx(1.0)


def test_data_errors_are_counted_apart_from_invalid_items_and_every_file_is_named():
    golds = list("ABCDABCD")
    preds = ["A", None, None, "D", None, None, None, None]
    reasons = [None, "invalid", "data_error", None, "data_error", "data_error", "data_error", "data_error"]
    details = (
        [None, "cropped", "/d/x.jpg: image file not found"]
        + [None]
        + [f"/d/{k}.jpg: cannot decode image (truncated)" for k in range(4)]
    )
    outcomes = [
        Outcome(f"i{k}", g, p, r, None, d) for k, (g, p, r, d) in enumerate(zip(golds, preds, reasons, details))
    ]
    outcomes.append(Outcome("i8", "A", None, "data_error", None, "/d/x.jpg: image file not found"))  # same file twice
    rec = summarize(RoleRun("depth", "m", "vision", "set", outcomes), choices=CHOICES, n_items=9)
    assert rec.n == 9 and rec.n_valid == 2 and rec.correct == 2
    assert rec.accuracy == pytest.approx(2 / 9, abs=1e-6) and rec.accuracy_valid == 1.0
    assert rec.invalid == 1 and rec.invalid_reasons == ["cropped"]
    assert rec.data_errors == 6
    assert rec.data_error_files == sorted({d for d in details[2:] if d})  # 5 distinct, none dropped
    assert len(rec.data_error_files) == 5
    clean = summarize(run("vlm", list("AB"), list("AB")), choices=CHOICES)
    assert clean.data_errors == 0 and clean.data_error_files == []


def test_roles_share_a_denominator_and_the_gap_uses_items_valid_for_both():
    """An encoder that loses items to its crop is not compared on an easier subset: accuracy is over all
    items for every role, and the paired gap and McNemar use only the items both scored."""
    golds = list("ABCDABCD")
    vision_reasons = [None] * 6 + ["invalid", "invalid"]
    vision = run("vision", list("ABCDAB") + [None, None], golds, vision_reasons, model="enc")
    vlm = run("vlm", list("ABCDAAAA"), golds)
    vis_rec = summarize(vision, choices=CHOICES)
    assert vis_rec.n == 8 and vis_rec.accuracy == pytest.approx(6 / 8)
    assert vis_rec.n_valid == 6 and vis_rec.accuracy_valid == 1.0
    rec = summarize(vlm, choices=CHOICES, vision=vision)
    assert rec.n == vis_rec.n and rec.accuracy == pytest.approx(5 / 8)
    assert rec.paired_n == 6
    assert rec.vision_accuracy == 1.0 and rec.paired_vlm_accuracy == pytest.approx(5 / 6, abs=1e-6)
    assert rec.gap_to_vision == pytest.approx(1 / 6, abs=1e-6)
    assert rec.only_vision_correct == 1 and rec.only_vlm_correct == 0


def test_chance_floor_is_over_every_item():
    golds = list("AAAB")
    rec = summarize(
        run("vision", ["A", None, None, "B"], golds, [None, "invalid", "invalid", None]), choices=("A", "B")
    )
    assert rec.chance_floor == 0.75  # 3 of 4 golds are A, though only one A item was scored


def test_blind_tv_and_paired_comparison():
    golds = list("ABCDABCD")
    vlm = run("vlm", list("ABCDAAAA"), golds)
    blind = run("blind", list("AAAAAAAA"), golds)
    vision = run("vision", list("ABCDABCA"), golds, model="enc")
    rec = summarize(vlm, choices=CHOICES, blind=blind, vision=vision)
    # answers: A 5/8, B,C,D 1/8 each; blind: A 1.0 -> TV = 3/8
    assert rec.tv_to_blind == pytest.approx(3 / 8)
    assert rec.blind_accuracy == pytest.approx(2 / 8)
    assert rec.paired_with == "enc" and rec.paired_n == 8
    assert rec.vision_accuracy == pytest.approx(7 / 8) and rec.paired_vlm_accuracy == pytest.approx(5 / 8)
    assert rec.gap_to_vision == pytest.approx(2 / 8)
    assert rec.only_vision_correct == 2 and rec.only_vlm_correct == 0
    assert rec.mcnemar_p == pytest.approx(0.5)  # two-sided exact: 2 * 0.5**2


def test_record_round_trips_through_its_results_json_form():
    golds = list("ABCDABCDAB")
    rec = summarize(
        run("vlm", list("AAAAAAAAAA"), golds), choices=CHOICES, blind=run("blind", list("AAAAAAAAAA"), golds)
    )
    document = rec.to_json()
    assert "vs_base" not in document and "tuning" not in document  # fields a record does not have are left out
    assert document["tv_to_blind"] == 0.0 and document["accuracy_valid"] == 0.3
    again = Record.from_json(json.loads(json.dumps(document)))
    assert again == rec and again.to_json() == document


def test_a_record_field_that_is_not_in_the_schema_is_an_error_naming_it():
    with pytest.raises(ConfigError, match=r"shard/results.json: unknown record field\(s\) acuracy"):
        Record.from_json({"task": "depth", "model": "m", "role": "vlm", "acuracy": 0.5}, where="shard/results.json")
    with pytest.raises(ConfigError, match="needs role"):
        Record.from_json({"task": "depth", "model": "m"})
    with pytest.raises(TypeError, match="no field 'acuracy'"):
        Record("depth", "m", "vlm").update(acuracy=0.5)
    empty = Record.empty("depth", "m", "vlm", "error", "boom")
    assert empty.to_json()["verdict"] == "error" and not empty.has("n_outcomes") and empty.get("n_outcomes", 7) == 7
