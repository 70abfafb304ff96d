"""The eval tests' parametrization: a task × model pair in a role, found back from items and node ids.

An eval test asks for ``vision_case``, ``vlm_case`` or ``probe_case``; each is a :class:`Case`.
Records travel to the xdist controller on ``report.user_properties`` (``RECORDS_PROPERTY``) and
are keyed by (task, model, role), never by node ids (xdist rewrites those). Under ``--dist
loadgroup`` a VLM and its paired encoder stay on one worker (:func:`xdist_group_for`).
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from plainsight.models.registry import ModelEntry
from plainsight.outcomes import ROLE_PROBE, ROLE_VISION, ROLE_VLM

RECORDS_PROPERTY = "plainsight.records"
CASE_PROPERTY = "plainsight.case"  # [task, model, role] of an eval test's reports: a failure becomes an error record
ANSWERS_PROPERTY = "plainsight.answers"  # per test: outcomes reused from an earlier run vs computed (--resume)
# The parametrized fixtures an eval test asks for, and the role each stands for.
CASE_FIXTURES = {"vision_case": ROLE_VISION, "vlm_case": ROLE_VLM, "probe_case": ROLE_PROBE}


@dataclass(frozen=True)
class Case:
    """One task × model pair in one role (vision or vlm)."""

    task: str
    model: str
    role: str
    paired_with: str | None = None

    @property
    def id(self) -> str:
        return f"{self.task}-{self.model}"


def xdist_group_for(entry: ModelEntry, entries: dict[str, ModelEntry]) -> str:
    """A VLM's group is its name; an encoder joins the (first) VLM that pairs with it."""
    if entry.kind == "vlm":
        return entry.base or entry.name  # a tuned model runs beside its original
    partners = sorted(e.name for e in entries.values() if e.kind == "vlm" and e.pairs_with == entry.name)
    return xdist_group_for(entries[partners[0]], entries) if partners else entry.name


def case_of_nodeid(nodeid: str, entries: dict[str, ModelEntry], task_ids: list[str]) -> tuple[str, str] | None:
    """(task, model) of an eval test from its id ``…[<task>-<model>]`` (an xdist ``@group`` suffix ignored)."""
    nodeid = nodeid.split("@", 1)[0]
    if nodeid.endswith("]") and "[" in nodeid:
        param = nodeid[nodeid.rindex("[") + 1 : -1]
        for task in sorted(task_ids, key=len, reverse=True):
            model = param[len(task) + 1 :] if param.startswith(f"{task}-") else None
            if model in entries:
                return task, model
    return None


def group_of_nodeid(nodeid: str, entries: dict[str, ModelEntry], task_ids: list[str]) -> str:
    """The xdist group of a test from its id ``…[<task>-<model>]``: the model's group; other tests keep their id.

    A ``@group`` suffix (pytest-xdist's own, where it can set one) is taken as it is.
    """
    if "@" in nodeid:
        return nodeid.rsplit("@", 1)[-1]
    case = case_of_nodeid(nodeid, entries, task_ids)
    return xdist_group_for(entries[case[1]], entries) if case else nodeid


def is_empty_case(item: pytest.Item) -> bool:
    """An eval test parametrized over an empty matrix (pytest fills in a NOTSET placeholder)."""
    params = getattr(getattr(item, "callspec", None), "params", {})
    return any(name in params for name in CASE_FIXTURES) and case_of(item) is None


def case_of(item: pytest.Item) -> Case | None:
    """The Case an eval test item was parametrized with (None for any other test)."""
    params = getattr(getattr(item, "callspec", None), "params", {})
    return next((params[name] for name in CASE_FIXTURES if isinstance(params.get(name), Case)), None)
