"""What a model answered: per-item outcomes and the role runs that hold them.

The vocabulary every layer above the models shares — the runner produces outcomes, records
summarise them, merge and baselines read them back from items.jsonl — kept in a leaf module so
that none of those needs to import the runner.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

ROLES = ("vision", "vlm", "blind")
ROLE_VISION, ROLE_VLM, ROLE_BLIND = ROLES
ROLE_PROBE = "probe"  # the layer-wise probe (-m probe): a record, no per-item outcomes
OWN_TOWER_SUFFIX = "/own_tower"
INVALID = "invalid"  # the model's preprocessing cannot use the item (cropped image or marker, unreadable markers)
DATA_ERROR = "data_error"  # the item's data is bad (missing or undecodable image, size or geometry that does not fit)


@dataclass
class Outcome:
    """What one model in one role answered on one item."""

    item_id: str
    gold: str
    pred: str | None
    reason: str | None = None  # None | "tie" | "nan" | "invalid" | "parse_failure" | "data_error"
    scores: dict[str, float] | None = None
    detail: str | None = None  # invalid: why; data_error: the file (or item) and what is wrong with it
    attention: list[float] | None = None  # per LLM layer: the answer position's attention share on image tokens

    @property
    def valid(self) -> bool:
        """Scored: neither invalid for the model nor a data fault (both count wrong in ``accuracy``)."""
        return self.reason not in (INVALID, DATA_ERROR)

    @property
    def data_error(self) -> bool:
        return self.reason == DATA_ERROR

    @property
    def correct(self) -> bool:
        return self.valid and self.pred is not None and self.pred == self.gold

    def to_json(self, task: str, model: str, role: str) -> dict[str, Any]:
        scores = None
        if self.scores is not None:
            scores = {k: (round(v, 6) if np.isfinite(v) else str(v)) for k, v in self.scores.items()}
        return {
            "task": task,
            "model": model,
            "role": role,
            "item": self.item_id,
            "gold": self.gold,
            "pred": self.pred,
            "correct": self.correct,
            "reason": self.reason,
            "detail": self.detail,
            "scores": scores,
            **({"image_attention": [round(a, 6) for a in self.attention]} if self.attention is not None else {}),
        }


@dataclass
class RoleRun:
    """One (task, model, role) run: its outcomes in item order, run info (placement, readout…) and time."""

    task: str
    model: str
    role: str
    item_set: str
    outcomes: list[Outcome]
    info: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0


OutcomeSink = Callable[[str, str, str, Outcome, "str | None"], None]  # task, model, role, outcome, answer key


def outcome_from_json(row: dict[str, Any]) -> Outcome:
    """An items.jsonl line back into an Outcome (scores written as "nan"/"inf" strings become floats)."""
    scores = row.get("scores")
    if scores is not None:
        scores = {k: float(v) for k, v in scores.items()}
    return Outcome(
        row["item"], row["gold"], row["pred"], row.get("reason"), scores, row.get("detail"), row.get("image_attention")
    )
