"""``--shard i/n``: which of a task's items one shard of a run scores."""

from __future__ import annotations

from typing import Any

from plainsight.errors import PlainsightError


def parse_shard(value: str) -> tuple[int, int]:
    """``"i/n"`` (1 ≤ i ≤ n) → (i, n); anything else is a PlainsightError saying the form."""
    index, sep, count = value.partition("/")
    try:
        i, n = int(index), int(count)
    except ValueError:
        i, n = 0, 0
    if not sep or not 1 <= i <= n:
        raise PlainsightError(f"--shard {value!r}: expected i/n with 1 <= i <= n, e.g. 2/3")
    return i, n


def shard_items(items: list[Any], shard: tuple[int, int] | None) -> list[Any]:
    """Shard i of n takes every n-th item starting at the (i-1)-th: deterministic, balanced, disjoint."""
    if shard is None:
        return items
    index, count = shard
    return items[index - 1 :: count]
