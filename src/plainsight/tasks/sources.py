"""Which dataset a task reads: each task lists its sources (formats) in order of preference.

A source is a name (``"spair"``, ``"blink"``, …) and a loader that raises
:class:`~plainsight.errors.DatasetNotFound` when its dataset is not under the data
folder. ``--data-source NAME`` picks one; otherwise the first present one is used, so
pointing ``--data-root`` at one dataset's folder selects that dataset.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Callable

from plainsight.data import embedded_root
from plainsight.errors import ConfigError, DataError, DatasetNotFound
from plainsight.items import Item
from plainsight.tasks.base import LoadRequest

SourceLoader = Callable[[Path, LoadRequest], list[Item]]


def load_from_sources(task: str, req: LoadRequest, sources: dict[str, SourceLoader]) -> list[Item]:
    """Items from the requested source, or from the first source present under the data folder
    (``req.prefer`` first). Each item's ``meta["source"]`` names the format it was read from."""
    root = req.data_root if req.data_root is not None else embedded_root()
    if req.source in sources:
        return _limit(_stamped(req.source, sources[req.source](root, req)), req)
    # A source only other tasks have (--data-source blink for a task without BLINK items) leaves the default order.
    order = [name for name in req.prefer if name in sources] + [name for name in sources if name not in req.prefer]
    missing = []
    for name in order:
        try:
            return _limit(_stamped(name, sources[name](root, req)), req)
        except DatasetNotFound as exc:
            missing.append(f"{name}: {exc}")
    raise DatasetNotFound(f"no dataset for {task} under {root}:\n  " + "\n  ".join(missing))


def _stamped(name: str, items: list[Item]) -> list[Item]:
    return [it if it.meta.get("source") == name else replace(it, meta={**it.meta, "source": name}) for it in items]


def blink_source(subtask: str, task: str) -> SourceLoader:
    """The loader of a BLINK correspondence subtask's val items (marker coordinates recovered)."""

    def load(root: Path, req: LoadRequest) -> list[Item]:
        from plainsight.data.blink import load_correspondence_items

        return load_correspondence_items(root, subtask, task=task)

    return load


def check_source_name(name: str | None, known: set[str]) -> None:
    """A data source that none of the tasks concerned reads is a usage error."""
    if name is not None and name not in known:
        raise ConfigError(f"unknown data source {name!r}; known: {', '.join(sorted(known))}")


def _limit(items: list[Item], req: LoadRequest) -> list[Item]:
    _check_unique_ids(items)
    return items[: req.limit] if req.limit is not None else items


def _check_unique_ids(items: list[Item]) -> None:
    """Outcomes, reports, baselines and resume are keyed by item id: two items with one id would be lost silently."""
    seen: set[str] = set()
    repeated = sorted({it.id for it in items if it.id in seen or seen.add(it.id)})
    if repeated:
        raise DataError(f"{items[0].task}: {len(repeated)} item id(s) used twice, e.g. {', '.join(repeated[:3])}")
