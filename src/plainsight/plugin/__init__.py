"""The pytest plugin: options, the task × model parametrization, the per-worker runner, gates and the report.

An eval module opts in with a family marker and asks for ``vision_case`` or
``vlm_case``; the plugin parametrizes those from ``models.toml`` with ids
``<task>-<model>``::

    pytestmark = pytest.mark.plainsight_family("correspondence")

    def test_vlm(vlm_case, plainsight):
        record = plainsight.evaluate(vlm_case)
        plainsight.gate(record)

This module holds the hooks and fixtures (it is the ``pytest11`` entry point); the rest lives in
``cases`` (parametrization, xdist grouping), ``state`` (per-process options, configs, runner),
``harness`` (what an eval test calls) and ``report_writer`` (records → results.json, report.md,
report.html). In a session that collects no eval test (``pytest tests``) the plugin adds its
options and markers and does nothing else: it reads no config, imports no task, claims no report dir.
"""

from __future__ import annotations

from typing import Any

import pytest

from plainsight.errors import ConfigError
from plainsight.outcomes import ROLE_VISION
from plainsight.plugin.cases import (
    CASE_FIXTURES,
    CASE_PROPERTY,
    RECORDS_PROPERTY,
    Case,
    case_of,
    group_of_nodeid,
    is_empty_case,
    xdist_group_for,
)
from plainsight.plugin.harness import Harness
from plainsight.plugin.report_writer import ReportWriter
from plainsight.plugin.state import STATE_KEY, PluginState, family_tasks


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("plainsight", "plainsight evaluations")
    group.addoption(
        "--models", default=None, help="comma list of model names or globs from the model config (default: all)"
    )
    group.addoption("--model-config", default=None, help="models.toml to read (default: fixtures/models.toml)")
    group.addoption("--thresholds", default=None, help="thresholds.toml to read (default: fixtures/thresholds.toml)")
    group.addoption(
        "--tasks", default=None, help="comma list of task ids (default: all tasks of the collected eval modules)"
    )
    group.addoption("--data-root", default=None, help="folder holding real datasets (default: the embedded benchmark)")
    group.addoption(
        "--data-source",
        default=None,
        help="dataset format to read where a task has several under --data-root, e.g. blink "
        "(default: each task's first one present; see `plainsight items --help`)",
    )
    group.addoption("--protocol", default="default", choices=("default", "paper"),
                    help="paper: Fu et al. 2025's setting (BLINK correspondence and art style where present, CV-Bench "
                         "depth, MOCHI 3-image trials, letter scoring, side by side, letterbox); default: each task's "
                         "first format present, VLM settings from models.toml")  # fmt: skip
    group.addoption(
        "--task-option",
        action="append",
        default=[],
        metavar="TASK.NAME=VALUE",
        help="a task's own option, repeatable, e.g. object_3d.n_objects=4 (MOCHI's 4-image trials)",
    )
    group.addoption(
        "--probe-recipe",
        default="auto",
        choices=("auto", "full", "small"),
        help="depth probe training recipe: full (probe3d's sizes), small (CPU, seconds); "
        "default auto: full on CUDA, small on CPU",
    )
    group.addoption("--cache-dir", default=None, help="where trained probes are kept (default: .plainsight-cache/)")
    group.addoption(
        "--report-dir", default=None, help="where results.json, items.jsonl and report.md go (default: reports/latest)"
    )
    group.addoption("--limit", type=int, default=None, help="use only the first N items of each task")
    group.addoption("--device", default="auto", help="auto | cpu | cuda | cuda:N (default auto: cuda when available)")
    group.addoption(
        "--dtype", default="auto", help="auto | float32 | bfloat16 | float16 (default auto: bf16 on cuda, fp32 on cpu)"
    )
    group.addoption("--seed", type=int, default=0, help="seed for item sampling and letter balancing (default 0)")
    group.addoption(
        "--scoring",
        default=None,
        choices=("letters", "generate"),
        help="VLM scoring for every model: letter log-probabilities or greedy generation + strict parser "
        "(default: each model's `scoring`, letters unless set)",
    )
    group.addoption(
        "--shard",
        default=None,
        metavar="I/N",
        help="score only shard I of N of every task's items (records, does not gate; `plainsight merge` "
        "combines the shards and gates)",
    )
    group.addoption(
        "--resume",
        action="store_true",
        help="continue the run in --report-dir: answers it already stored (same item, model, prompt, "
        "placement and scoring) are reused, not recomputed",
    )
    group.addoption(
        "--baseline", default=None, help="fail pairs that are significantly worse than the run stored in DIR"
    )
    group.addoption("--update-baseline", default=None, help="store this run's results.json and items.jsonl in DIR")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "plainsight_family(name): eval module for the tasks of a task family")
    # pytest-xdist registers this too; declared here so runs with `-p no:xdist` stay warning-free.
    config.addinivalue_line("markers", "xdist_group(name): keep tests of one model on one xdist worker")
    config.addinivalue_line("markers", "probe: layer-wise probing evals (run with -m probe)")
    state = PluginState(config)
    config.stash[STATE_KEY] = state
    if not state.is_worker:
        config.pluginmanager.register(ReportWriter(state), "plainsight-report")


def pytest_unconfigure(config: pytest.Config) -> None:
    state = config.stash.get(STATE_KEY, None)
    if state is not None:
        state.close()  # workers: flush the item log and release the model


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """``--dist loadgroup`` that keeps each VLM and its paired encoder on one worker.

    pytest-xdist marks a group by appending ``@group`` to the node id, which pytest 9 no longer
    lets it do (node ids moved to ``Node._id``), so its grouping silently did nothing; this
    scheduler reads the group from the test id instead.
    """
    if config.getvalue("dist") != "loadgroup":
        return None
    from xdist.scheduler import LoadScopeScheduling

    from plainsight.tasks import all_tasks

    state: PluginState = config.stash[STATE_KEY]
    entries, task_ids = state.all_entries, list(all_tasks())

    class ModelGroupScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return group_of_nodeid(nodeid, entries, task_ids)

    return ModelGroupScheduling(config, log)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    wanted = [name for name in CASE_FIXTURES if name in metafunc.fixturenames]
    if not wanted:
        return
    marker = metafunc.definition.get_closest_marker("plainsight_family")
    if marker is None:
        raise pytest.UsageError(
            f"{metafunc.definition.nodeid}: eval modules need pytest.mark.plainsight_family(<family>)"
        )
    state: PluginState = metafunc.config.stash[STATE_KEY]
    try:
        entries = state.entries
    except ConfigError as exc:
        raise pytest.UsageError(str(exc)) from None
    kind = "encoder" if wanted[0] == "vision_case" else "vlm"
    role = CASE_FIXTURES[wanted[0]]
    params = []
    for task in family_tasks(state, marker.args[0]):
        for entry in sorted(entries.values(), key=lambda e: e.name):
            if entry.kind != kind:
                continue
            case = Case(task=task, model=entry.name, role=role, paired_with=entry.pairs_with)
            group = xdist_group_for(entry, state.all_entries)
            params.append(pytest.param(case, id=case.id, marks=pytest.mark.xdist_group(group)))
    metafunc.parametrize(wanted[0], params)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Run each model's tests together (vision before its VLM), so each model is loaded once.

    An eval test whose role has no model in the matrix (e.g. ``--models`` picked only VLMs) is deselected.
    """
    state: PluginState = config.stash[STATE_KEY]
    # Layer-wise probes are an analysis: they run when asked for with `-m probe`.
    probes_wanted = "probe" in (config.getoption("markexpr", "") or "")
    dropped = [it for it in items if is_empty_case(it) or (not probes_wanted and it.get_closest_marker("probe"))]
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = [it for it in items if it not in dropped]

    def key(item: pytest.Item) -> tuple:
        case = case_of(item)
        if case is None:
            return (0, "", 0, "")
        entry = state.all_entries[case.model]
        return (
            1,
            xdist_group_for(entry, state.all_entries),
            0 if case.role == ROLE_VISION else 1,
            case.model,
            case.task,
        )

    items.sort(key=key)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Any:
    """Every report of an eval test names its (task, model, role), so a failure is reported as that pair's."""
    report = yield
    case = case_of(item)
    if case is not None:
        report.user_properties.append((CASE_PROPERTY, [case.task, case.model, case.role]))
        # Records (attached by the harness, final once the test has run) cross to the xdist controller as JSON.
        report.user_properties[:] = [
            (name, [r.to_json() for r in value]) if name == RECORDS_PROPERTY else (name, value)
            for name, value in report.user_properties
        ]
    return report


@pytest.fixture
def vision_case(request: pytest.FixtureRequest) -> Case:
    return request.param


@pytest.fixture
def vlm_case(request: pytest.FixtureRequest) -> Case:
    return request.param


@pytest.fixture
def probe_case(request: pytest.FixtureRequest) -> Case:
    return request.param


@pytest.fixture
def plainsight(request: pytest.FixtureRequest) -> Harness:
    """The harness for one eval test (the runner behind it is per worker)."""
    return Harness(request.config.stash[STATE_KEY], request.node)
