"""The tasks: one module per task in this package, each ending in ``SPEC = register(TaskSpec(...))``.

Task modules are found by listing the package, so adding a task is adding its module (and its
prompt and eval test); helper modules (``base``, ``sources``, ``keypoint_items``) register nothing.
"""

from __future__ import annotations

import importlib
import pkgutil

from plainsight.tasks.base import TASKS, LoadRequest, TaskSpec, parse_task_options, register

HELPER_MODULES = ("base", "sources", "keypoint_items")


def get_task(task_id: str) -> TaskSpec:
    """The registered task ``task_id``; an unknown id is a ConfigError listing the known ones."""
    _discover()
    return TASKS.get(task_id)


def all_tasks() -> dict[str, TaskSpec]:
    """Every registered task, by id."""
    _discover()
    return dict(TASKS.items())


_discovered = False


def _discover() -> None:
    # Lazily, on first use: `import plainsight.tasks` alone stays light (the plugin imports it in every session).
    global _discovered
    if not _discovered:
        for module in pkgutil.iter_modules(__path__):
            if module.name not in HELPER_MODULES:
                importlib.import_module(f"{__name__}.{module.name}")
        _discovered = True


__all__ = ["LoadRequest", "TaskSpec", "parse_task_options", "TASKS", "register", "get_task", "all_tasks"]
