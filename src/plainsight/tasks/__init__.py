"""Task registry: one module per task; adding a task = one module + one line here."""

from __future__ import annotations

from plainsight.errors import ConfigError
from plainsight.tasks.base import LoadRequest, TaskSpec, parse_task_options

TASKS: dict[str, TaskSpec] = {}


def register(spec: TaskSpec) -> TaskSpec:
    if spec.id in TASKS:
        raise ValueError(f"task {spec.id} registered twice")
    TASKS[spec.id] = spec
    return spec


def get_task(task_id: str) -> TaskSpec:
    _load_builtin()
    try:
        return TASKS[task_id]
    except KeyError:
        raise ConfigError(f"unknown task {task_id!r}; known tasks: {', '.join(sorted(TASKS))}") from None


def all_tasks() -> dict[str, TaskSpec]:
    _load_builtin()
    return dict(TASKS)


def _load_builtin() -> None:
    # Imported lazily so that `plainsight.tasks.base` has no import cycle with the task modules.
    from plainsight.tasks import (  # noqa: F401
        art_style,
        depth,
        functional_correspondence,
        low_level_matching,
        object_3d,
        semantic_correspondence,
    )


__all__ = ["LoadRequest", "TaskSpec", "parse_task_options", "TASKS", "register", "get_task", "all_tasks"]
