"""Model doubles with known behaviour, to prove that gates, statistics and diagnostics compute the right thing.

Selectable in a models.toml as ``source = "double:<kind>"``. Each counts one forward per item.
- ``oracle``: answers the gold letter when it can see images; with all-white images (the blind
  control) it falls back to "A" — a model that truly uses the image. ``options.miss`` lists item
  ids it answers wrongly (for regression-gate tests).
- ``constant-a`` (``constant-b`` …): always that letter.
- ``image-blind``: ignores the images; a fixed pseudo-random letter per item, identical blind or not.
- ``tying``: equal scores for every letter (an argmax tie on every item).
- ``nan``: NaN scores.
Any double takes ``options.delay`` (seconds per item): a slow model, for interruption and resume tests.
"""

from __future__ import annotations

import math
import time
import zlib
from typing import Any

import numpy as np

from plainsight.errors import ConfigError
from plainsight.models.backends import BACKENDS, DOUBLE, Backend
from plainsight.models.vlms import LetterScores, VLMRequest

HIGH, LOW = math.log(0.97), math.log(0.01)


def _is_blank(request: VLMRequest) -> bool:
    # Blind images are white; a side-by-side composite keeps its thin black separator.
    return all(np.mean(np.asarray(im.convert("L")) == 255) > 0.9 for im in request.images)


class _Double:
    def __init__(self, name: str):
        self.name = name
        self.forward_count = 0
        self.delay = 0.0

    def score_letters(self, requests: list[VLMRequest]) -> list[LetterScores]:
        self.forward_count += len(requests)
        time.sleep(self.delay * len(requests))
        return [LetterScores(self.scores(r)) for r in requests]

    def scores(self, request: VLMRequest) -> dict[str, float]:
        raise NotImplementedError

    def generate(self, requests: list[VLMRequest], *, max_new_tokens: int = 8) -> list[str]:
        """A reply naming the preferred letter; no unique preference -> a reply that names none."""
        self.forward_count += len(requests)
        replies = []
        for r in requests:
            scores = self.scores(r)
            best = max(scores.values())
            top = [letter for letter, v in scores.items() if v == best]
            replies.append(f"The answer is ({top[0]})." if len(top) == 1 else "I cannot decide.")
        return replies

    @staticmethod
    def prefer(letters: tuple[str, ...], best: str) -> dict[str, float]:
        return {letter: HIGH if letter == best else LOW for letter in letters}


class OracleVLM(_Double):
    def __init__(self, name: str, miss: list[str] | tuple[str, ...] = ()):
        super().__init__(name)
        self.miss = frozenset(miss)

    def scores(self, request: VLMRequest) -> dict[str, float]:
        if request.item is None:
            raise ValueError("the oracle double needs the item")
        best = request.letters[0] if _is_blank(request) else request.item.gold
        if request.item.id in self.miss:
            best = next(letter for letter in request.letters if letter != request.item.gold)
        return self.prefer(request.letters, best)


class ConstantVLM(_Double):
    def __init__(self, name: str, letter: str = "A"):
        super().__init__(name)
        self.letter = letter

    def scores(self, request: VLMRequest) -> dict[str, float]:
        return self.prefer(request.letters, self.letter)


class ImageBlindVLM(_Double):
    def scores(self, request: VLMRequest) -> dict[str, float]:
        key = f"{request.prompt}|{request.item.id if request.item else ''}"
        return self.prefer(request.letters, request.letters[zlib.crc32(key.encode()) % len(request.letters)])


class TyingVLM(_Double):
    def scores(self, request: VLMRequest) -> dict[str, float]:
        return {letter: -1.0 for letter in request.letters}


class NaNVLM(_Double):
    def scores(self, request: VLMRequest) -> dict[str, float]:
        return {letter: float("nan") for letter in request.letters}


def make_double(kind: str, name: str, options: dict | None = None) -> _Double:
    """A double by kind: oracle (``options.miss``: item ids to get wrong), constant-<letter>, image-blind, tying, nan."""
    options = options or {}
    simple = {"image-blind": ImageBlindVLM, "tying": TyingVLM, "nan": NaNVLM}
    if kind == "oracle":
        double: _Double = OracleVLM(name, miss=tuple(options.get("miss", ())))
    elif kind in simple:
        double = simple[kind](name)
    elif kind.startswith("constant-") and len(kind) == len("constant-") + 1:
        double = ConstantVLM(name, kind[-1].upper())
    else:
        raise ConfigError(f"unknown double {kind!r}; kinds: oracle, constant-<letter>, image-blind, tying, nan")
    double.delay = float(options.get("delay", 0.0))
    return double


def load_double(entry: Any, *, device: str = "cpu", dtype: Any = "float32") -> _Double:
    """The double a ``double:<kind>`` entry names (device and dtype do not apply)."""
    return make_double(entry.source.removeprefix(DOUBLE), entry.name, entry.options)


BACKENDS.register("vlm:double", Backend(load_double, preprocess_spec=lambda entry: None))  # no geometry of its own
