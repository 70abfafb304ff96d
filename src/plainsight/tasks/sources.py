"""Source loaders several tasks share (BLINK's correspondence subtasks) and the ``--data-source`` check.

How a task picks among its sources is ``plainsight.tasks.base.load_from_sources``.
"""

from __future__ import annotations

from pathlib import Path

from plainsight.errors import ConfigError
from plainsight.items import Item
from plainsight.tasks.base import LoadRequest, SourceLoader


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
