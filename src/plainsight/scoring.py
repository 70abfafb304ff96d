"""Scoring and statistics: choices from scores, accuracy intervals, distributions, paired tests.

Pure Python/numpy (no scipy). Conventions:
- an abstention (tie, NaN, unparseable answer) has letter ``None``: counted wrong, reported;
- TV(P, Q) = ½ Σ_x |P(x) − Q(x)| over the union of outcomes;
- McNemar counts are the discordant pairs of two systems scored on the same items.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np

Z95 = 1.959963984540054  # two-sided 95% normal quantile
NONE_KEY = "none"  # the distribution key for abstentions


@dataclass(frozen=True)
class Choice:
    letter: str | None  # None = abstain
    reason: str | None = None  # None | "tie" | "nan" | "parse_failure"


def choose(logprobs: Mapping[str, float], letters: Sequence[str], *, tie_tol: float = 0.0) -> Choice:
    """Argmax of the scores over the valid ``letters``; scores for other keys are ignored.

    Abstains instead of defaulting to the first letter: reason "nan" when any valid score is NaN
    or every one is -inf (no information), "tie" when the top two are equal or within ``tie_tol``.
    A valid letter without a score is a caller bug and raises ValueError.
    """
    if not tie_tol >= 0:  # also rejects NaN
        raise ValueError(f"tie_tol must be >= 0, got {tie_tol}")
    valid = list(dict.fromkeys(letters))  # "AAB" must not tie A with itself
    if not valid:
        raise ValueError("choose() needs at least one valid letter")
    missing = [letter for letter in valid if letter not in logprobs]
    if missing:
        raise ValueError(f"no score for valid letter(s) {missing}; scores were given for {sorted(logprobs)}")
    values = [(letter, float(logprobs[letter])) for letter in valid]
    if any(math.isnan(v) for _, v in values) or all(v == -math.inf for _, v in values):
        return Choice(None, "nan")
    ranked = sorted(values, key=lambda lv: lv[1], reverse=True)
    if len(ranked) > 1:
        best, second = ranked[0][1], ranked[1][1]
        # equality first: inf - inf is NaN, which would slip past the tolerance comparison
        if best == second or best - second <= tie_tol:
            return Choice(None, "tie")
    return Choice(ranked[0][0], None)


def _check_counts(**counts: int) -> None:
    for name, value in counts.items():
        if value < 0:
            raise ValueError(f"{name} must be >= 0, got {value}")


def wilson_interval(correct: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval for ``correct`` successes out of ``n``; (0, 1) when n == 0."""
    _check_counts(correct=correct, n=n)
    if correct > n:
        raise ValueError(f"correct ({correct}) exceeds n ({n})")
    if n == 0:
        return 0.0, 1.0
    p = correct / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    # At k = 0 and k = n the bound is exactly 0 or 1; rounding must not put p̂ outside its own interval.
    lo = 0.0 if correct == 0 else max(0.0, min(p, centre - half))
    hi = 1.0 if correct == n else min(1.0, max(p, centre + half))
    return lo, hi


def chance_floor(gold_letters: Sequence[str], n_choices: int) -> float:
    """max(1/k, share of the most common gold letter): what "always answer X" would score."""
    if n_choices < 1:
        raise ValueError(f"n_choices must be >= 1, got {n_choices}")
    if not gold_letters:
        return 1.0 / n_choices
    top = Counter(gold_letters).most_common(1)[0][1]
    return max(1.0 / n_choices, top / len(gold_letters))


def distribution(letters: Sequence[str | None], choices: Sequence[str]) -> dict[str, float]:
    """Share of each choice letter, plus "none" for abstentions (the key exists only when any abstained).

    Values sum to 1 (all zeros when ``letters`` is empty). A letter outside ``choices`` raises
    ValueError: it is a bug upstream, not an abstention.
    """
    n = len(letters)
    counts = Counter(letters)
    unknown = sorted(str(k) for k in counts if k is not None and k not in choices)
    if unknown:
        raise ValueError(f"letters {unknown} are not among the choices {list(choices)}")
    dist = {c: (counts.get(c, 0) / n if n else 0.0) for c in choices}
    if counts.get(None):
        dist[NONE_KEY] = counts[None] / n
    return dist


def tv_distance(p: Mapping[str, float], q: Mapping[str, float]) -> float:
    """Total variation distance ½ Σ |P(x) − Q(x)| over the union of keys (a missing key is 0)."""
    keys = set(p) | set(q)
    return 0.5 * sum(abs(p.get(k, 0.0) - q.get(k, 0.0)) for k in keys)


def _log_binom_pmf(k: int, n: int, p: float) -> float:
    if p == 0.0:
        return 0.0 if k == 0 else -math.inf
    if p == 1.0:
        return 0.0 if k == n else -math.inf
    return math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1) + k * math.log(p) + (n - k) * math.log1p(-p)


def binomial_sf(k: int, n: int, p: float) -> float:
    """Exact P[X ≥ k] for X ~ Bin(n, p), summed in log space (relative error ~1e-11 at n = 10_000)."""
    _check_counts(n=n)
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"p must be in [0, 1], got {p}")
    if k <= 0:
        return 1.0
    if k > n:
        return 0.0
    logs = [_log_binom_pmf(i, n, p) for i in range(k, n + 1)]
    top = max(logs)
    if top == -math.inf:
        return 0.0
    return min(1.0, math.exp(top) * math.fsum(math.exp(v - top) for v in logs))


def mcnemar_exact(b: int, c: int) -> float:
    """Two-sided exact McNemar p-value from the discordant counts b and c: min(1, 2 × smaller tail)."""
    _check_counts(b=b, c=c)
    n = b + c
    if n == 0:
        return 1.0
    return min(1.0, 2.0 * binomial_sf(max(b, c), n, 0.5))


def mcnemar_one_sided(b: int, c: int) -> float:
    """P[X ≥ c] for X ~ Bin(b + c, ½): evidence that the second system is worse.

    ``b`` counts items only the second system got right, ``c`` items only the first got right.
    """
    _check_counts(b=b, c=c)
    return binomial_sf(c, b + c, 0.5) if b + c else 1.0


def paired_bootstrap_diff(
    a: Sequence[bool], b: Sequence[bool], *, iters: int = 2000, seed: int = 0
) -> tuple[float, float, float]:
    """(mean of a − b, lo, hi): paired accuracy difference with a seeded 95% percentile bootstrap CI.

    Items are resampled as pairs, so the CI reflects the pairing; empty inputs give (0, 0, 0).
    """
    if iters < 1:
        raise ValueError(f"iters must be >= 1, got {iters}")
    x = np.asarray(a, dtype=float)
    y = np.asarray(b, dtype=float)
    if x.ndim != 1 or x.shape != y.shape:
        raise ValueError(f"paired samples must be 1-D of equal length, got shapes {x.shape} and {y.shape}")
    if x.size == 0:
        return 0.0, 0.0, 0.0
    d = x - y
    rng = np.random.default_rng(seed)
    means = d[rng.integers(0, d.size, size=(iters, d.size))].mean(axis=1)
    lo, hi = np.percentile(means, [2.5, 97.5])
    return float(d.mean()), float(lo), float(hi)


_SPECIAL_TOKEN = re.compile(r"<\|?[^<>\s]{1,40}\|?>")
_MARKUP = re.compile(r"[*_`#]+")
_ANSWER_CUE = re.compile(
    r"(?:answer|option|choice)\s*(?:is|:|=)?\s*(?:option\s*)?[\(\[]?([A-Za-z])[\)\]]?(?![A-Za-z])", re.I
)
_BARE = re.compile(r"^[\(\[]?([A-Za-z])[\)\]]?[.:,;!]?$")
_LEADING = re.compile(r"^[\(\[]?([A-Z])(?:[\)\]][.:]?|[.:])(?:\s|$)")
_STANDALONE = re.compile(r"(?<![A-Za-z'’])[\(\[]?([A-Z])[\)\]]?(?![A-Za-z'’])")


def parse_choice(reply: str, letters: Sequence[str], options: Sequence[str] | None = None) -> str | None:
    """The answer letter a free-text reply commits to, or None when it is missing or ambiguous.

    Only ``letters`` count ("Database" is not D; "E" is not a valid answer among A–D). Accepted:
    "B", "(B)", "B.", "**B**", "Answer: B", "The answer is (B)", "B. bookcase", special-token tails
    ("B</s>"), and the option text itself ("bookcase", "the third image") when ``options`` are given.
    A reply naming two different letters ("A or B") abstains. Never a random fallback.
    """
    valid = {letter.upper() for letter in letters}
    text = _MARKUP.sub("", _SPECIAL_TOKEN.sub(" ", reply)).strip()
    if not text:
        return None
    bare = _BARE.match(text)
    if bare:
        letter = bare.group(1).upper()
        return letter if letter in valid else None
    standalone = {m.group(1) for m in _STANDALONE.finditer(text)}
    cued = {m.group(1).upper() for m in _ANSWER_CUE.finditer(text)}
    if cued:
        if len(cued) == 1 and cued <= valid and not (standalone & valid) - cued:
            return next(iter(cued))
        return None
    leading = _LEADING.match(text)
    if leading:
        letter = leading.group(1)
        if letter in valid and not (standalone & valid) - {letter}:
            return letter
        return None
    if options:
        return _match_option(text, letters, options)
    return None


def _match_option(text: str, letters: Sequence[str], options: Sequence[str]) -> str | None:
    def norm(s: str) -> str:
        return " ".join(re.sub(r"[^a-z0-9 ]+", " ", s.lower()).split())

    reply = f" {norm(text)} "
    hits = [letter for letter, option in zip(letters, options) if norm(option) and f" {norm(option)} " in reply]
    # "the third image" must not also count "the ... image" options that are its substrings: keep the longest
    if len(hits) > 1:
        longest = max(hits, key=lambda letter: len(norm(options[list(letters).index(letter)])))
        others = [h for h in hits if h != longest]
        if all(norm(options[list(letters).index(h)]) in norm(options[list(letters).index(longest)]) for h in others):
            return longest
        return None
    return hits[0] if hits else None
