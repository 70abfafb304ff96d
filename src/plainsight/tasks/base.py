"""What a task is: how its items are built from data, what the VLM is shown, and how it is read out."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Mapping

from PIL import Image

from plainsight.errors import ConfigError
from plainsight.items import Item


@dataclass(frozen=True)
class LoadRequest:
    """Where and how to build a task's items.

    ``data_root`` is the user's ``--data-root`` (a folder holding datasets under
    their usual names, or one dataset folder itself); ``None`` means the
    embedded benchmark in ``fixtures/data``. ``source`` picks one of a task's
    dataset formats (e.g. ``"blink"``) when the folder holds several; ``None`` takes
    the first found in the task's order (``prefer`` puts some first, without requiring
    them). ``options`` are the task's own options
    (``TaskSpec.options``, e.g. object_3d's ``n_objects``), names already checked.
    """

    data_root: Path | None
    seed: int = 0
    limit: int | None = None
    source: str | None = None
    options: Mapping[str, str] = field(default_factory=dict)
    prefer: tuple[str, ...] = ()  # sources tried first where present (a protocol's), before the task's own order
    # reason → rows the loader left out; loaders fill it (``skip``), the run reports it (results.json data.skipped)
    skipped: dict[str, int] = field(default_factory=dict, compare=False)

    def skip(self, reason: str, count: int = 1) -> None:
        """Count ``count`` source rows left out for ``reason``: nothing a loader drops goes unreported."""
        if count:
            self.skipped[reason] = self.skipped.get(reason, 0) + count


@dataclass(frozen=True)
class TaskSpec:
    """One multiple-choice task.

    ``load_items`` turns data into items (deterministic for a seed), ``render``
    draws the visual prompt onto an item's clean images (returns them unchanged
    when ``item.markers_drawn``), ``readout`` names the vision readout in
    :mod:`plainsight.readouts`.
    """

    id: str
    family: str
    n_choices: int
    prompt_id: str
    readout: str
    load_items: Callable[[LoadRequest], list[Item]]
    render: Callable[[Item, list[Image.Image]], list[Image.Image]]
    description: str = ""
    sources: tuple[str, ...] = ()  # dataset formats it reads, in order of preference (see tasks/sources.py)
    options: Mapping[str, str] = field(default_factory=dict)  # option name → help (`--task-option TASK.NAME=VALUE`)

    @property
    def chance(self) -> float:
        return 1.0 / self.n_choices


def parse_task_options(values: Iterable[str], tasks: Mapping[str, TaskSpec], *, task: str | None = None) -> dict[str, dict[str, str]]:
    """``TASK.NAME=VALUE`` strings (``NAME=VALUE`` when ``task`` is given) → {task: {name: value}}.

    An unknown task or option name is a ConfigError listing what exists; values are checked by the task's loader.
    """
    parsed: dict[str, dict[str, str]] = {}
    for raw in values:
        key, sep, value = raw.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"task option {raw!r}: expected TASK.NAME=VALUE")
        target, dot, name = key.strip().rpartition(".")
        if not dot:
            if task is None:
                raise ConfigError(f"task option {raw!r}: expected TASK.NAME=VALUE (which task?)")
            target = task
        if target not in tasks:
            raise ConfigError(f"task option {raw!r}: unknown task {target!r}; known: {', '.join(sorted(tasks))}")
        known = tasks[target].options
        if name not in known:
            listed = ", ".join(f"{k} ({v})" for k, v in sorted(known.items())) or "none"
            raise ConfigError(f"task option {raw!r}: {target} has no option {name!r}; its options: {listed}")
        parsed.setdefault(target, {})[name] = value.strip()
    return parsed
