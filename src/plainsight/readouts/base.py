"""What a vision readout is, and the registry the tasks name theirs in (``TaskSpec.readout``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from plainsight.registry import Registry


@dataclass
class ReadoutResult:
    """Per-choice scores (higher = more likely), or None with the reason the item is invalid for this encoder."""

    scores: dict[str, float] | None
    invalid_reason: str | None = None


@dataclass(frozen=True)
class Readout:
    """How an encoder answers an item: ``answer(encoder, item, features, **prepared)``.

    ``prepare(runner, model_name, encoder)``, when set, runs once per (task, encoder) first and returns the
    keyword arguments ``answer`` takes (and an ``info`` dict for the record) — the depth probe's training.
    ``uses_features = False``: ``answer`` runs the encoder itself, so the runner does not encode the images.
    """

    answer: Callable[..., ReadoutResult]
    prepare: Callable[[Any, str, Any], dict[str, Any]] | None = None
    uses_features: bool = True


READOUTS: Registry[Readout] = Registry("readout")
