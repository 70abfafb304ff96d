"""findings: which of the paper's claims a (vision, VLM, blind) triple of records supports, by Wilson intervals."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from plainsight.findings import INCONCLUSIVE, OVERLOOKS, USES_IMAGE, finding, findings
from plainsight.scoring import wilson_interval


def _record(role: str, correct: int, n: int, *, model: str = "vlm", task: str = "depth", chance: float = 0.5,
            tv_to_blind: float | None = None) -> dict:  # fmt: skip
    low, high = wilson_interval(correct, n)
    return {"task": task, "model": model if role != "vision" else "vlm/own_tower", "role": role, "n": n,
            "correct": correct, "accuracy": correct / n, "ci95": [low, high], "chance": chance, "chance_floor": chance,
            "paired_with": "vlm/own_tower" if role == "vlm" else None, "tv_to_blind": tv_to_blind,
            "verdict": "xfail"}  # fmt: skip


def test_the_paper_pattern_is_overlooks():
    vision, vlm, blind = (
        _record("vision", 110, 160),
        _record("vlm", 80, 160, tv_to_blind=0.01),
        _record("blind", 78, 160),
    )
    result = finding(vlm, vision, blind)
    assert result.label == OVERLOOKS
    assert "vision 0.69 [0.61, 0.75]" in result.why and "TV to blind 0.01" in result.why


def test_a_vlm_above_its_blind_run_uses_the_image():
    vision, vlm, blind = _record("vision", 97, 120), _record("vlm", 86, 120), _record("blind", 60, 120)
    assert finding(vlm, vision, blind).label == USES_IMAGE
    assert finding(vlm, None, blind).label == USES_IMAGE  # no vision pair needed for this claim


def test_overlapping_intervals_claim_nothing():
    # The vision readout is better, but its interval overlaps the VLM's at n = 40.
    vision, vlm, blind = _record("vision", 26, 40), _record("vlm", 20, 40), _record("blind", 20, 40)
    assert finding(vlm, vision, blind).label == INCONCLUSIVE
    # A vision readout that is not above chance is no evidence that the VLM overlooks anything.
    vision, vlm, blind = _record("vision", 85, 160), _record("vlm", 60, 160), _record("blind", 60, 160)
    assert finding(vlm, vision, blind).label == INCONCLUSIVE
    # Without a vision pair, a VLM at its blind level is inconclusive, not "overlooks".
    assert finding(_record("vlm", 80, 160), None, _record("blind", 80, 160)).label == INCONCLUSIVE


def test_below_its_blind_run_is_not_within_it():
    vision, vlm, blind = _record("vision", 150, 160), _record("vlm", 20, 160), _record("blind", 100, 160)
    assert finding(vlm, vision, blind).label == INCONCLUSIVE


@given(st.integers(40, 200), st.data())
def test_labels_follow_the_intervals(n, data):
    v, m, b = (data.draw(st.integers(0, n)) for _ in range(3))
    vision, vlm, blind = _record("vision", v, n), _record("vlm", m, n), _record("blind", b, n)
    label = finding(vlm, vision, blind).label
    (vl, _), (ml, mh), (bl, bh) = vision["ci95"], vlm["ci95"], blind["ci95"]
    if label == USES_IMAGE:
        assert ml > bh
    elif label == OVERLOOKS:
        assert vl > 0.5 and vl > mh and ml <= bh and bl <= mh
    else:
        assert not ml > bh and not (vl > 0.5 and vl > mh and ml <= bh and bl <= mh)


def test_findings_pair_records_by_task_and_skip_vlms_without_a_blind_run():
    records = [_record("vision", 110, 160), _record("vlm", 80, 160), _record("blind", 78, 160),
               _record("vlm", 80, 160, task="art_style")]  # fmt: skip
    (only,) = findings(records)
    assert (only.task, only.vlm, only.vision, only.label) == ("depth", "vlm", "vlm/own_tower", OVERLOOKS)


def test_report_md_and_html_show_the_findings_of_gated_vlms_only():
    from plainsight.report import findings_section
    from plainsight.report_html.page import _findings_section

    records = [_record("vision", 110, 160), _record("vlm", 80, 160, tv_to_blind=0.01), _record("blind", 78, 160)]
    lines = findings_section(records)
    assert lines[0].startswith("## The paper's finding")
    assert "- **depth × vlm**: overlooks its encoder — vision 0.69 [0.61, 0.75]" in lines[2]
    html = _findings_section(records)
    assert 'class="findings-figure"' in html and "overlooks its encoder" in html and "TV to blind 0.01" in html
    smoke = [dict(r, smoke=True) for r in records]
    assert findings_section(smoke) == [] and _findings_section(smoke) == ""
