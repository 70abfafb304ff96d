"""From per-item outcomes to a results.json record (the DESIGN.md schema).

Every number here is re-derivable from items.jsonl: accuracy, Wilson CI, answer and
gold distributions, TV distances, ties, and the paired comparison with the vision
baseline (McNemar on the items both scored). Accuracy is over every item of the run (an item
invalid for the model, or a data fault, counts wrong); ``n_valid`` and ``accuracy_valid`` give the scored
items alone. ``invalid`` counts the items the model's preprocessing cannot use; ``data_errors`` the items
whose data is bad (missing or undecodable image, geometry outside it), and ``data_error_files`` names every
distinct fault (file and reason), untruncated, for the ``max_invalid_share`` gate and the report.
"""

from __future__ import annotations

from typing import Any

from plainsight.outcomes import INVALID, ROLE_VLM, Outcome, RoleRun
from plainsight.scoring import chance_floor, distribution, mcnemar_exact, tv_distance, wilson_interval


def _r(x: float | None, nd: int = 6) -> float | None:
    return None if x is None else round(float(x), nd)


def summarize(
    run: RoleRun,
    *,
    choices: tuple[str, ...],
    blind: RoleRun | None = None,
    vision: RoleRun | None = None,
    smoke: bool = False,
    n_items: int | None = None,
) -> dict[str, Any]:
    """The record of one (task, model, role) run; verdict fields are filled by the gate.

    ``n_items`` is how many items the task has; the integrity gate checks every one got an outcome.
    """
    # Every item counts: an item invalid for this model (cropped, unreadable markers) is counted wrong, so
    # all roles of a task are measured on the same items; n_valid / accuracy_valid say what was scored.
    valid = [o for o in run.outcomes if o.valid]
    invalid = [o for o in run.outcomes if o.reason == INVALID]
    data_errors = [o for o in run.outcomes if o.data_error]
    n, n_valid = len(run.outcomes), len(valid)
    correct = sum(o.correct for o in valid)
    golds = [o.gold for o in valid]
    answer_dist = distribution([o.pred for o in valid], choices)  # the answers the model gave (scored items)
    gold_dist = distribution(golds, choices)
    lo, hi = wilson_interval(correct, n)
    all_golds = [o.gold for o in run.outcomes]
    record: dict[str, Any] = {
        "task": run.task,
        "model": run.model,
        "role": run.role,
        "n": n,
        "n_items": len(run.outcomes) if n_items is None else n_items,
        "n_outcomes": len(run.outcomes),
        "correct": correct,
        "accuracy": _r(correct / n if n else 0.0),
        "n_valid": n_valid,
        "accuracy_valid": _r(correct / n_valid) if n_valid else None,
        "chance": _r(1.0 / len(choices)),
        "chance_floor": _r(chance_floor(all_golds, len(choices)) if all_golds else 1.0 / len(choices)),
        "ci95": [_r(lo), _r(hi)],
        "answer_dist": {k: _r(v) for k, v in answer_dist.items()},
        "gold_dist": {k: _r(v) for k, v in gold_dist.items()},
        "tv_to_gold": _r(tv_distance(answer_dist, gold_dist)),
        "tv_to_blind": None,
        "blind_accuracy": None,
        "parse_failures": sum(o.reason == "parse_failure" for o in valid),
        "ties": sum(o.reason == "tie" for o in valid),
        "nan": sum(o.reason == "nan" for o in valid),
        "invalid": len(invalid),
        "invalid_reasons": sorted({o.detail for o in invalid if o.detail})[:5],
        "data_errors": len(data_errors),
        "data_error_files": sorted({o.detail or f"item {o.item_id}: data error" for o in data_errors}),
        "paired_with": None,
        "smoke": smoke,
        "item_set": run.item_set,
        "seconds": round(run.seconds, 3),
        **{k: v for k, v in run.info.items()},
    }
    if run.role == ROLE_VLM and blind is not None:
        valid_ids = {o.item_id for o in valid}
        blind_valid = [o for o in blind.outcomes if o.item_id in valid_ids]
        blind_dist = distribution([o.pred for o in blind_valid], choices)
        record["tv_to_blind"] = _r(tv_distance(answer_dist, blind_dist))
        record["blind_accuracy"] = _r(sum(o.correct for o in blind_valid) / len(blind_valid) if blind_valid else 0.0)
        record["blind_answer_dist"] = {k: _r(v) for k, v in blind_dist.items()}
    if run.role == ROLE_VLM and vision is not None:
        record.update(paired_comparison(run.outcomes, vision.outcomes))
        record["paired_with"] = vision.model
    return record


def paired_comparison(vlm: list[Outcome], vision: list[Outcome]) -> dict[str, Any]:
    """VLM vs its vision baseline on the items both scored validly."""
    by_id = {o.item_id: o for o in vision if o.valid}
    pairs = [(o, by_id[o.item_id]) for o in vlm if o.valid and o.item_id in by_id]
    n = len(pairs)
    vlm_acc = sum(a.correct for a, _ in pairs) / n if n else 0.0
    vis_acc = sum(b.correct for _, b in pairs) / n if n else 0.0
    only_vision = sum(b.correct and not a.correct for a, b in pairs)
    only_vlm = sum(a.correct and not b.correct for a, b in pairs)
    return {
        "paired_n": n,
        "vision_accuracy": _r(vis_acc),
        "paired_vlm_accuracy": _r(vlm_acc),
        "gap_to_vision": _r(vis_acc - vlm_acc) if n else None,
        "only_vision_correct": only_vision,
        "only_vlm_correct": only_vlm,
        "mcnemar_p": _r(mcnemar_exact(only_vlm, only_vision)) if n else None,
    }


def versus_base(tuned: RoleRun, original: RoleRun, original_blind: RoleRun) -> dict[str, Any]:
    """A tuned model against its original on the same (held-out) items: accuracies, McNemar, blind, attention."""
    paired = paired_comparison(tuned.outcomes, original.outcomes)  # the original plays the baseline's part
    n = paired["paired_n"]
    blind_valid = [o for o in original_blind.outcomes if o.valid]
    return {
        "base": original.model,
        "paired_n": n,
        "base_accuracy": paired["vision_accuracy"] if n else None,
        "accuracy": paired["paired_vlm_accuracy"] if n else None,
        "only_tuned_correct": paired["only_vlm_correct"],
        "only_base_correct": paired["only_vision_correct"],
        "mcnemar_p": paired["mcnemar_p"],
        "base_blind_accuracy": _r(sum(o.correct for o in blind_valid) / len(blind_valid)) if blind_valid else None,
        "base_image_attention": original.info.get("image_attention"),
        "image_attention": tuned.info.get("image_attention"),
    }
