"""The record of one (task, model, role): the suite's product, one entry of results.json.

:class:`Record` is built here — from per-item outcomes by :func:`summarize`, or for a pair that
has no outcomes (skipped, failed before scoring) by :meth:`Record.empty` — and read back from a
``plainsight.results/1`` document by :meth:`Record.from_json`; the plugin, ``plainsight merge``
and the report all use it. Every number is re-derivable from items.jsonl: accuracy, Wilson CI,
answer and gold distributions, TV distances, ties, and the paired comparison with the vision
baseline (McNemar on the items both scored). Accuracy is over every item of the run (an item
invalid for the model, or a data fault, counts wrong); ``n_valid`` and ``accuracy_valid`` give the
scored items alone. ``invalid`` counts the items the model's preprocessing cannot use;
``data_errors`` the items whose data is bad (missing or undecodable image, geometry outside it),
and ``data_error_files`` names every distinct fault (file and reason), untruncated.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

from plainsight.errors import ConfigError
from plainsight.outcomes import INVALID, ROLE_VLM, Outcome, RoleRun
from plainsight.scoring import chance_floor, distribution, mcnemar_exact, tv_distance, wilson_interval

SCHEMA = "plainsight.results/1"  # results.json: run metadata and a list of records


class _Absent:
    """A field this record does not have (left out of results.json, not written as null)."""

    def __repr__(self) -> str:
        return "ABSENT"


ABSENT: Any = _Absent()


def _absent() -> Any:
    return field(default=ABSENT)


@dataclass
class Record:
    """One results.json record. Fields after ``reason`` apply to some records only (ABSENT: not written)."""

    task: str
    model: str
    role: str
    n: int = 0  # items of the run (every one counts in accuracy)
    n_items: int = 0  # items the task has (the integrity gate checks every one has an outcome)
    correct: int = 0
    accuracy: float | None = None
    n_valid: int = 0  # items scored (neither invalid for the model nor a data fault)
    accuracy_valid: float | None = None
    chance: float | None = None
    chance_floor: float | None = None  # max(1/k, majority gold share): what above_chance must beat
    ci95: list[float | None] = field(default_factory=lambda: [None, None])  # Wilson 95% interval of accuracy
    answer_dist: dict[str, float] = field(default_factory=dict)
    gold_dist: dict[str, float] = field(default_factory=dict)
    tv_to_gold: float | None = None
    tv_to_blind: float | None = None
    blind_accuracy: float | None = None
    parse_failures: int = 0
    ties: int = 0
    invalid: int = 0
    data_errors: int = 0
    data_error_files: list[str] = field(default_factory=list)
    paired_with: str | None = None
    verdict: str = "pending"  # pass | fail | xfail | skip | not_comparable | error (set by the gate)
    reason: str = ""
    # -- from the outcomes, when there were any
    n_outcomes: int = _absent()
    nan: int = _absent()
    invalid_reasons: list[str] = _absent()
    smoke: bool = _absent()
    item_set: str = _absent()  # fingerprint of the task's item list
    seconds: float = _absent()
    # -- from the run: where and how it ran
    readout: str = _absent()
    device: str = _absent()
    dtype: str = _absent()
    preprocess: str | None = _absent()
    probe: dict[str, Any] = _absent()
    probe_data: str = _absent()
    image_mode: str = _absent()
    image_resize: str = _absent()
    scoring: str = _absent()
    data_source: str | None = _absent()
    data_skipped: dict[str, int] = _absent()
    image_attention: list[float] = _absent()
    # -- VLM records: blind control and the paired comparison with the vision baseline
    blind_answer_dist: dict[str, float] = _absent()
    paired_n: int = _absent()
    vision_accuracy: float = _absent()
    paired_vlm_accuracy: float = _absent()
    gap_to_vision: float | None = _absent()
    only_vision_correct: int = _absent()
    only_vlm_correct: int = _absent()
    mcnemar_p: float | None = _absent()
    # -- gates, tuning and probes
    checks: dict[str, bool] = _absent()
    baseline: dict[str, Any] = _absent()
    tuning: dict[str, Any] = _absent()
    vs_base: dict[str, Any] = _absent()
    best_layer: int = _absent()
    layer_series: list[dict[str, Any]] = _absent()

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.task, self.model, self.role)

    @property
    def label(self) -> str:
        """``task × model (role)``, how messages name a record."""
        return f"{self.task} × {self.model} ({self.role})"

    def has(self, name: str) -> bool:
        """Whether the record has field ``name`` (an ABSENT field is not written to results.json)."""
        return getattr(self, name) is not ABSENT

    def get(self, name: str, default: Any = None) -> Any:
        """Field ``name``, or ``default`` where the record does not have it."""
        value = getattr(self, name)
        return default if value is ABSENT else value

    def update(self, **values: Any) -> None:
        """Set fields (a name that is not a field is a TypeError: records are typed)."""
        for name, value in values.items():
            if name not in _FIELDS:
                raise TypeError(f"Record has no field {name!r}")
            setattr(self, name, value)

    def to_json(self) -> dict[str, Any]:
        """The results.json form: every field the record has, ABSENT ones left out."""
        return {f: value for f in _FIELDS if (value := getattr(self, f)) is not ABSENT}

    @classmethod
    def from_json(cls, data: dict[str, Any], *, where: str = "record") -> Record:
        """A record from its results.json form; an unknown field is a ConfigError naming it and ``where``."""
        unknown = sorted(set(data) - set(_FIELDS))
        if unknown:
            raise ConfigError(f"{where}: unknown record field(s) {', '.join(unknown)} (schema plainsight.results/1)")
        missing = [k for k in ("task", "model", "role") if k not in data]
        if missing:
            raise ConfigError(f"{where}: a record needs {', '.join(missing)}")
        return cls(**data)

    @classmethod
    def empty(cls, task: str, model: str, role: str, verdict: str, reason: str) -> Record:
        """The record of a pair without outcomes: skipped (no data, no model) or failed before it was scored."""
        return cls(task, model, role, verdict=verdict, reason=reason)


_FIELDS = tuple(f.name for f in fields(Record))
# The fields a RoleRun's ``info`` sets (where and how it ran); the rest of a record is derived from outcomes.
RUN_INFO_FIELDS = (
    "readout", "device", "dtype", "preprocess", "probe", "probe_data", "image_mode", "image_resize", "scoring",
    "data_source", "data_skipped", "image_attention",
)  # fmt: skip


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
) -> Record:
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
    record = {
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
    return Record(**record)


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
