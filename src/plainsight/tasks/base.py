"""What a task is: how its items are built from data, what the VLM is shown, and how it is read out.

A task reads one or more dataset formats (sources), in order of preference: ``--data-source NAME``
picks one; otherwise the first present under the data folder is used (a protocol's preferred ones
first), so pointing ``--data-root`` at one dataset's folder selects that dataset.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Iterable, Mapping

from PIL import Image

from plainsight.data import embedded_root
from plainsight.errors import ConfigError, DataError, DatasetNotFound
from plainsight.items import Item
from plainsight.registry import Registry


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


SourceLoader = Callable[[Path, LoadRequest], list[Item]]  # (data folder, request) → items; DatasetNotFound if absent


@dataclass(frozen=True)
class TaskSpec:
    """One multiple-choice task.

    ``sources`` maps each dataset format the task reads (a name registered in
    :data:`plainsight.data.SOURCES`) to the loader that builds its items, in order of
    preference; ``render`` draws the visual prompt onto an item's clean images (returns them
    unchanged when ``item.markers_drawn``); ``prompt_id`` names a prompt of
    :data:`plainsight.prompts.PROMPTS` and ``readout`` a readout of
    :data:`plainsight.readouts.READOUTS` (checked by ``tests/test_registries.py``).
    """

    id: str
    family: str
    prompt_id: str
    readout: str
    sources: Mapping[str, SourceLoader]
    render: Callable[[Item, list[Image.Image]], list[Image.Image]]
    options: Mapping[str, str] = field(default_factory=dict)  # option name → help (`--task-option TASK.NAME=VALUE`)

    def load_items(self, req: LoadRequest) -> list[Item]:
        """The task's items (deterministic for a seed) from the first of its sources present (see ``load_from_sources``)."""
        return load_from_sources(self.id, req, self.sources)


TASKS: Registry[TaskSpec] = Registry("task")


def register(spec: TaskSpec) -> TaskSpec:
    """Add a task (a task module's last statement: ``SPEC = register(TaskSpec(...))``)."""
    return TASKS.register(spec.id, spec)


def parse_task_options(
    values: Iterable[str], tasks: Mapping[str, TaskSpec], *, task: str | None = None
) -> dict[str, dict[str, str]]:
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


def _limit(items: list[Item], req: LoadRequest) -> list[Item]:
    _check_unique_ids(items)
    return items[: req.limit] if req.limit is not None else items


def _check_unique_ids(items: list[Item]) -> None:
    """Outcomes, reports, baselines and resume are keyed by item id: two items with one id would be lost silently."""
    seen: set[str] = set()
    repeated = sorted({it.id for it in items if it.id in seen or seen.add(it.id)})
    if repeated:
        raise DataError(f"{items[0].task}: {len(repeated)} item id(s) used twice, e.g. {', '.join(repeated[:3])}")
