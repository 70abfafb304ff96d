"""The pytest plugin: options, the task × model parametrization, the per-worker runner, gates and the report.

An eval module opts in with a family marker and asks for ``vision_case`` or
``vlm_case``; the plugin parametrizes those from ``models.toml`` with ids
``<task>-<model>``::

    pytestmark = pytest.mark.plainsight_family("correspondence")

    def test_vlm(vlm_case, plainsight):
        record = plainsight.evaluate(vlm_case)
        plainsight.gate(record)

Records travel to the xdist controller on ``report.user_properties`` and are keyed
by (task, model, role), never by node ids (xdist rewrites those).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from plainsight import report as report_mod
from plainsight.report import ReportDirLock
from plainsight.errors import ConfigError, DataError, DatasetNotFound, ModelLoadError, ModelUnavailable
from plainsight.gates import Thresholds, check_models, data_error_failure, judge, load_thresholds
from plainsight.items import canonical_hash
from plainsight.models.registry import ModelEntry, load_models_toml, select
from plainsight.protocols import Protocol, get_protocol, task_options_with
from plainsight.outcomes import OWN_TOWER_SUFFIX, ROLE_BLIND, ROLE_PROBE, ROLE_VISION, ROLE_VLM, Outcome
from plainsight.runner import Runner, RunOptions

log = logging.getLogger("plainsight")

RECORDS_PROPERTY = "plainsight.records"
CASE_PROPERTY = "plainsight.case"  # [task, model, role] of an eval test's reports: a failure becomes an error record
ANSWERS_PROPERTY = "plainsight.answers"  # per test: outcomes reused from an earlier run vs computed (--resume)
# The parametrized fixtures an eval test asks for, and the role each stands for.
CASE_FIXTURES = {"vision_case": ROLE_VISION, "vlm_case": ROLE_VLM, "probe_case": ROLE_PROBE}
STATE_KEY = pytest.StashKey["PluginState"]()


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


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("plainsight", "plainsight evaluations")
    group.addoption("--models", default=None, help="comma list of model names or globs from the model config (default: all)")
    group.addoption("--model-config", default=None, help="models.toml to read (default: fixtures/models.toml)")
    group.addoption("--thresholds", default=None, help="thresholds.toml to read (default: fixtures/thresholds.toml)")
    group.addoption("--tasks", default=None, help="comma list of task ids (default: all tasks of the collected eval modules)")
    group.addoption("--data-root", default=None, help="folder holding real datasets (default: the embedded benchmark)")
    group.addoption("--data-source", default=None,
                    help="dataset format to read where a task has several under --data-root, e.g. blink "
                         "(default: each task's first one present; see `plainsight items --help`)")
    group.addoption("--protocol", default="default", choices=("default", "paper"),
                    help="paper: Fu et al. 2025's setting (BLINK correspondence and art style where present, CV-Bench "
                         "depth, MOCHI 3-image trials, letter scoring, side by side, letterbox); default: each task's "
                         "first format present, VLM settings from models.toml")  # fmt: skip
    group.addoption("--task-option", action="append", default=[], metavar="TASK.NAME=VALUE",
                    help="a task's own option, repeatable, e.g. object_3d.n_objects=4 (MOCHI's 4-image trials)")
    group.addoption("--probe-recipe", default="auto", choices=("auto", "full", "small"),
                    help="depth probe training recipe: full (probe3d's sizes), small (CPU, seconds); "
                         "default auto: full on CUDA, small on CPU")
    group.addoption("--cache-dir", default=None, help="where trained probes are kept (default: .plainsight-cache/)")
    group.addoption("--report-dir", default=None, help="where results.json, items.jsonl and report.md go (default: reports/latest)")
    group.addoption("--limit", type=int, default=None, help="use only the first N items of each task")
    group.addoption("--device", default="auto", help="auto | cpu | cuda | cuda:N (default auto: cuda when available)")
    group.addoption("--dtype", default="auto", help="auto | float32 | bfloat16 | float16 (default auto: bf16 on cuda, fp32 on cpu)")
    group.addoption("--seed", type=int, default=0, help="seed for item sampling and letter balancing (default 0)")
    group.addoption("--scoring", default=None, choices=("letters", "generate"),
                    help="VLM scoring for every model: letter log-probabilities or greedy generation + strict parser "
                         "(default: each model's `scoring`, letters unless set)")
    group.addoption("--shard", default=None, metavar="I/N",
                    help="score only shard I of N of every task's items (records, does not gate; `plainsight merge` "
                         "combines the shards and gates)")
    group.addoption("--resume", action="store_true",
                    help="continue the run in --report-dir: answers it already stored (same item, model, prompt, "
                         "placement and scoring) are reused, not recomputed")
    group.addoption("--baseline", default=None, help="fail pairs that are significantly worse than the run stored in DIR")
    group.addoption("--update-baseline", default=None, help="store this run's results.json and items.jsonl in DIR")


class PluginState:
    """Everything the plugin keeps for one pytest process (controller or worker)."""

    def __init__(self, config: pytest.Config):
        self.config = config
        root = Path(config.rootpath)
        opt = config.getoption
        self.model_config = Path(opt("--model-config") or root / "fixtures" / "models.toml")
        self.thresholds_path = Path(opt("--thresholds") or root / "fixtures" / "thresholds.toml")
        self.report_dir = Path(opt("--report-dir") or root / "reports" / "latest")
        data_root = opt("--data-root")
        if data_root is not None and not Path(data_root).is_dir():
            raise pytest.UsageError(f"--data-root {data_root}: no such folder")
        self.protocol = get_protocol(opt("--protocol"))
        if self.protocol.scoring and opt("--scoring") not in (None, self.protocol.scoring):
            raise pytest.UsageError(f"--scoring {opt('--scoring')} contradicts --protocol {self.protocol.name} "
                                    f"(scoring {self.protocol.scoring})")  # fmt: skip
        self.options = RunOptions(
            data_root=Path(data_root).resolve() if data_root else None,
            source=_checked_source(opt("--data-source")),
            seed=opt("--seed"),
            limit=opt("--limit"),
            device=opt("--device"),
            dtype=opt("--dtype"),
            scoring=opt("--scoring"),
            probe_recipe=opt("--probe-recipe"),
            cache_dir=Path(opt("--cache-dir") or root / ".plainsight-cache"),
            task_options=_checked_task_options(opt("--task-option"), self.protocol),
            shard=_checked_shard(opt("--shard")),
            protocol=self.protocol.name,
        )
        self.resume = bool(opt("--resume"))
        self.task_filter = [t.strip() for t in (opt("--tasks") or "").split(",") if t.strip()]
        self.worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
        self.is_worker = hasattr(config, "workerinput")
        self.records: list[dict[str, Any]] = []
        self.answer_counts: dict[str, int] = {}  # reused / computed outcomes over the run (--resume)
        self._entries: dict[str, ModelEntry] | None = None
        self._all_entries: dict[str, ModelEntry] | None = None
        self._thresholds: Thresholds | None = None
        self._runner: Runner | None = None
        self._training_items: dict[str, dict[str, frozenset[str]]] | None = None
        self._item_log: report_mod.ItemLog | None = None
        self.baseline_dir = Path(opt("--baseline")) if opt("--baseline") else None
        self.update_baseline_dir = Path(opt("--update-baseline")) if opt("--update-baseline") else None
        self._baseline: Any = None

    # Config files are read lazily: `pytest tests/` never needs them.
    @property
    def all_entries(self) -> dict[str, ModelEntry]:
        if self._all_entries is None:
            entries = load_models_toml(self.model_config)
            self._all_entries = {name: self.protocol.vlm_entry(entry) for name, entry in entries.items()}
        return self._all_entries

    @property
    def entries(self) -> dict[str, ModelEntry]:
        if self._entries is None:
            self._entries = select(self.all_entries, self.config.getoption("--models"))
        return self._entries

    @property
    def thresholds(self) -> Thresholds:
        if self._thresholds is None:
            self._thresholds = load_thresholds(self.thresholds_path)
        return self._thresholds

    @property
    def baseline(self) -> Any:
        """The stored baseline (``--baseline``), loaded on first use; None without the option."""
        if self.baseline_dir is not None and self._baseline is None:
            from plainsight.baseline import Baseline

            self._baseline = Baseline.load(self.baseline_dir)
        return self._baseline

    @property
    def runner(self) -> Runner:
        if self._runner is None:
            answers = report_mod.stored_answers(self.report_dir) if self.resume else None
            self._runner = Runner(self.options, self.all_entries, sink=self._log_outcome, worker=self.worker,
                                  answers=answers, training_items=self.training_items())  # fmt: skip
        return self._runner

    def training_items(self) -> dict[str, dict[str, frozenset[str]]]:
        """task → {tuned model of this run → the item ids it was trained on} (held out of the whole run).

        Read once: results.json, which reports the counts, is rewritten after every test.
        """
        if self._training_items is None:
            self._training_items = self._read_training_items()
        return self._training_items

    def _read_training_items(self) -> dict[str, dict[str, frozenset[str]]]:
        from plainsight.adapt import read_adaptation

        found: dict[str, dict[str, frozenset[str]]] = {}
        for entry in self.entries.values():
            if entry.adapter_dir is None:
                continue
            try:
                adaptation = read_adaptation(entry.resolved_adapter_dir())
            except ModelUnavailable:
                continue  # the tuned model's tests skip with the reason
            found.setdefault(adaptation.task, {})[entry.name] = adaptation.train_ids
        return found

    def _log_outcome(self, task: str, model: str, role: str, outcome: Outcome, key: str | None) -> None:
        if self._item_log is None:
            self._item_log = report_mod.ItemLog(self.report_dir, self.worker)
        self._item_log.write({**outcome.to_json(task, model, role), "key": key})

    def close(self) -> None:
        if self._item_log is not None:
            self._item_log.close()
        if self._runner is not None:
            self._runner.release()


def _checked_shard(value: str | None) -> tuple[int, int] | None:
    from plainsight.errors import PlainsightError
    from plainsight.shards import parse_shard

    if value is None:
        return None
    try:
        return parse_shard(value)
    except PlainsightError as exc:
        raise pytest.UsageError(str(exc)) from None


def _checked_task_options(values: list[str], protocol: Protocol) -> dict[str, dict[str, str]]:
    from plainsight.tasks import all_tasks, parse_task_options

    try:
        return task_options_with(protocol, parse_task_options(values, all_tasks()))
    except ConfigError as exc:
        raise pytest.UsageError(str(exc)) from None


def _checked_source(name: str | None) -> str | None:
    from plainsight.tasks import all_tasks
    from plainsight.tasks.sources import check_source_name

    try:
        check_source_name(name, {s for t in all_tasks().values() for s in t.sources})
    except ConfigError as exc:
        raise pytest.UsageError(str(exc)) from None
    return name


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


def _family_tasks(state: PluginState, family: str) -> list[str]:
    from plainsight.tasks import all_tasks

    tasks = sorted(t.id for t in all_tasks().values() if t.family == family)
    if state.task_filter:
        tasks = [t for t in tasks if t in state.task_filter]
    return tasks


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
        raise pytest.UsageError(f"{metafunc.definition.nodeid}: eval modules need pytest.mark.plainsight_family(<family>)")
    state: PluginState = metafunc.config.stash[STATE_KEY]
    try:
        entries = state.entries
    except ConfigError as exc:
        raise pytest.UsageError(str(exc)) from None
    kind = "encoder" if wanted[0] == "vision_case" else "vlm"
    role = CASE_FIXTURES[wanted[0]]
    params = []
    for task in _family_tasks(state, marker.args[0]):
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
    dropped = [it for it in items if _is_empty_case(it) or (not probes_wanted and it.get_closest_marker("probe"))]
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = [it for it in items if it not in dropped]

    def key(item: pytest.Item) -> tuple:
        case = _case_of(item)
        if case is None:
            return (0, "", 0, "")
        entry = state.all_entries[case.model]
        return (1, xdist_group_for(entry, state.all_entries), 0 if case.role == ROLE_VISION else 1, case.model, case.task)

    items.sort(key=key)


def _is_empty_case(item: pytest.Item) -> bool:
    """An eval test parametrized over an empty matrix (pytest fills in a NOTSET placeholder)."""
    params = getattr(getattr(item, "callspec", None), "params", {})
    return any(name in params for name in CASE_FIXTURES) and _case_of(item) is None


def _case_of(item: pytest.Item) -> Case | None:
    params = getattr(getattr(item, "callspec", None), "params", {})
    return next((params[name] for name in CASE_FIXTURES if isinstance(params.get(name), Case)), None)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Any:
    """Every report of an eval test names its (task, model, role), so a failure is reported as that pair's."""
    report = yield
    case = _case_of(item)
    if case is not None:
        report.user_properties.append((CASE_PROPERTY, [case.task, case.model, case.role]))
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


class Harness:
    """What an eval test talks to: computes a case's record and applies its gates."""

    def __init__(self, state: PluginState, node: pytest.Item):
        self.state = state
        self.node = node
        runner = state._runner
        self._counted = (runner.reused, runner.computed) if runner is not None else (0, 0)

    def evaluate(self, case: Case) -> dict[str, Any]:
        """Compute the records of a case (a VLM case also runs its blind control and paired vision baseline)."""
        from plainsight.records import summarize

        state = self.state
        entry = state.all_entries[case.model]
        runner = state.runner
        try:
            items = runner.items(case.task)
            if case.role == ROLE_VISION:
                run = runner.run(case.task, case.model, ROLE_VISION)
                record = summarize(run, choices=_choices(items), smoke=entry.smoke, n_items=len(items))
                self._attach([record])
                return record
            paired = case.model + OWN_TOWER_SUFFIX if entry.pairs_with == "own_tower" else entry.pairs_with
            vision = runner.run(case.task, paired, ROLE_VISION) if paired else None
            vlm = runner.run(case.task, case.model, ROLE_VLM)
            blind = runner.run(case.task, case.model, ROLE_BLIND)
        except DatasetNotFound as exc:
            self._skip(case, f"no data for {case.task}: {exc}")
        except ModelUnavailable as exc:
            self._skip(case, f"model {case.model} unavailable: {exc}")
        except DataError as exc:
            pytest.fail(f"{case.task}: {exc}", pytrace=False)
        except (ConfigError, ModelLoadError) as exc:
            pytest.fail(str(exc), pytrace=False)
        choices = _choices(items)
        record = summarize(vlm, choices=choices, blind=blind, vision=vision, smoke=entry.smoke, n_items=len(items))
        if entry.adapter_dir is not None:
            try:
                record.update(self._versus_base(case, entry, vlm))
            except ModelUnavailable as exc:
                self._skip(case, f"original model {entry.base} unavailable: {exc}")
            except ConfigError as exc:
                pytest.fail(str(exc), pytrace=False)
        blind_record = summarize(blind, choices=choices, smoke=entry.smoke, n_items=len(items))
        blind_record.update(verdict="skip", reason="control run (white images): not gated; see the vlm record's tv_to_blind")
        extra = [blind_record]
        if entry.pairs_with == "own_tower" and vision is not None:
            # No test of its own gates the tower; its record is reported beside the VLM's.
            tower = summarize(vision, choices=choices, smoke=entry.smoke, n_items=len(items))
            tower.update(verdict="skip", reason=f"own tower of {case.model}: reported, gated through the VLM's gap")
            extra.append(tower)
        self._attach([record, *extra])
        return record

    def _versus_base(self, case: Case, entry: ModelEntry, tuned: Any) -> dict[str, Any]:
        """A tuned entry's record fields: how it was tuned, and its paired comparison with the original."""
        from plainsight.adapt import read_adaptation
        from plainsight.records import versus_base

        runner = self.state.runner
        adaptation = read_adaptation(entry.resolved_adapter_dir())
        fields: dict[str, Any] = {"tuning": {**adaptation.summary(), "base": entry.base}}
        if adaptation.task != case.task:
            fields["tuning"]["note"] = f"tuned on {adaptation.task}, evaluated on {case.task}"
        original = runner.run(case.task, entry.base, ROLE_VLM)
        original_blind = runner.run(case.task, entry.base, ROLE_BLIND)
        fields["vs_base"] = versus_base(tuned, original, original_blind)
        return fields

    def probe(self, case: Case) -> dict[str, Any]:
        """The per-layer readout series of a VLM (``-m probe``); gated for integrity only."""
        from plainsight.probing import layer_series
        from plainsight.scoring import wilson_interval
        from plainsight.tasks import get_task

        runner = self.state.runner
        try:
            items = runner.items(case.task)
            faults = {it.id: fault for it in items if (fault := runner.data_fault(it)) is not None}
            image_resize = self.state.all_entries[case.model].image_resize
            series = layer_series(runner.model(case.model), get_task(case.task), items, image_resize=image_resize,
                                  data_faults=faults)  # fmt: skip
        except (DatasetNotFound, ModelUnavailable, ConfigError) as exc:
            self._skip(case, f"no layer-wise probe for {case.model}: {exc}")
        if not series:
            pytest.fail(f"{case.task}: no item could be read for the layer-wise probe of {case.model}", pytrace=False)
        best = max(series, key=lambda p: (p["accuracy"] or 0.0, -p["layer"]))
        n, n_valid, correct = best["n"], best["n_valid"], best["correct"]
        lo, hi = wilson_interval(correct, n)
        record = _skip_record(case.task, case.model, ROLE_PROBE, "")
        record.update(smoke=self.state.all_entries[case.model].smoke)
        record.update(
            n=n, n_items=len(items), correct=correct, accuracy=best["accuracy"], n_valid=n_valid,
            accuracy_valid=best["accuracy_valid"], chance=1 / len(_choices(items)),
            ci95=[round(lo, 6), round(hi, 6)], best_layer=best["layer"], layer_series=series,
            invalid=n - n_valid - len(faults), data_errors=len(faults), data_error_files=sorted(set(faults.values())),
            verdict="pass" if n_valid else "fail",
            reason=f"best point: {best['point']}" if n_valid else "every item was invalid for this model",
        )  # fmt: skip
        gates = self.state.thresholds.for_case(case.task, case.model, ROLE_VLM)
        too_many_faults = data_error_failure(record, float(gates.get("max_invalid_share", 0.0)))
        if too_many_faults:
            record.update(verdict="fail", reason=too_many_faults)
        self._attach([record])
        if record["verdict"] == "fail":
            pytest.fail(record["reason"], pytrace=False)
        return record

    def gate(self, record: dict[str, Any]) -> None:
        """Judge a record against thresholds.toml and turn the verdict into the test outcome."""
        shard = self.state.options.shard
        if shard is not None:
            record.update(verdict="skip", reason=f"shard {shard[0]}/{shard[1]}: recorded, not gated (`plainsight merge` "
                                                 "gates the merged shards)", checks={})  # fmt: skip
            return
        entry = self.state.all_entries[record["model"]]
        gates = self.state.thresholds.for_case(record["task"], record["model"], record["role"])
        verdict = judge(record, gates, smoke=entry.smoke)
        if self.state.baseline_dir is not None:
            self._compare_with_baseline(record, verdict)
        record["verdict"] = verdict.status
        record["reason"] = verdict.reason
        record["checks"] = verdict.checks
        if verdict.status == "fail":
            pytest.fail(verdict.reason, pytrace=False)
        if verdict.status == "xfail":
            pytest.xfail(verdict.reason)
        if verdict.status == "not_comparable":
            pytest.skip(f"not comparable with the baseline: {verdict.reason}")

    def _compare_with_baseline(self, record: dict[str, Any], verdict: Any) -> None:
        """The regression gate: a significant drop against the stored run fails; a changed prompt/item set is not comparable."""
        from plainsight import prompts
        from plainsight.tasks import get_task

        state = self.state
        try:
            baseline = state.baseline
        except ConfigError as exc:
            pytest.fail(str(exc), pytrace=False)
        run = state.runner.run(record["task"], record["model"], record["role"])
        outcomes = {o.item_id: o.correct for o in run.outcomes if o.valid}
        prompt = prompts.get(get_task(record["task"]).prompt_id)
        result = baseline.compare(
            record, outcomes, prompt_fingerprint=prompt.fingerprint,
            alpha=state.thresholds.baseline_alpha, tolerance=state.thresholds.baseline_tolerance,
        )  # fmt: skip
        record["baseline"] = {"status": result.status, "reason": result.reason, **result.stats}
        verdict.checks["baseline"] = result.status in ("pass", "missing")
        if result.status == "fail":
            verdict.status = "fail"
            verdict.reasons.append(f"{record['task']} × {record['model']} ({record['role']}): {result.reason}")
        elif result.status == "not_comparable" and verdict.status == "pass":
            verdict.status = "not_comparable"
            verdict.reasons = [result.reason]

    def _attach(self, records: list[dict[str, Any]]) -> None:
        self.node.user_properties.append((RECORDS_PROPERTY, records))
        runner = self.state._runner
        if runner is not None:
            reused, computed = runner.reused - self._counted[0], runner.computed - self._counted[1]
            self._counted = (runner.reused, runner.computed)
            self.node.user_properties.append((ANSWERS_PROPERTY, {"reused": reused, "computed": computed}))

    def _skip(self, case: Case, reason: str) -> None:
        roles = [case.role]
        self._attach([_skip_record(case.task, case.model, role, reason) for role in roles])
        pytest.skip(reason)


def _choices(items: list[Any]) -> tuple[str, ...]:
    return items[0].choices if items else ("A", "B", "C", "D")


def _skip_record(task: str, model: str, role: str, reason: str, verdict: str = "skip") -> dict[str, Any]:
    return {
        "task": task, "model": model, "role": role, "n": 0, "n_items": 0, "correct": 0, "accuracy": None,
        "n_valid": 0, "accuracy_valid": None, "chance": None, "chance_floor": None, "ci95": [None, None],
        "answer_dist": {}, "gold_dist": {}, "tv_to_gold": None, "tv_to_blind": None, "blind_accuracy": None,
        "parse_failures": 0, "ties": 0, "invalid": 0, "data_errors": 0, "data_error_files": [], "paired_with": None,
        "verdict": verdict, "reason": reason,
    }  # fmt: skip


def _error_record(task: str, model: str, role: str, message: str) -> dict[str, Any]:
    """The record of a pair whose test failed before it had one: ``verdict = "error"`` and the message."""
    return _skip_record(task, model, role, message, verdict="error")


def _failure_message(report: pytest.TestReport) -> str:
    """A failed report's message: the exception's (type and text) or pytest.fail's, one line where it is one."""
    crash = getattr(report.longrepr, "reprcrash", None)
    if crash is not None and crash.message:
        return crash.message
    text = str(report.longrepr or "").strip()
    return text.splitlines()[-1] if text else f"{report.when} failed"


@pytest.fixture
def plainsight(request: pytest.FixtureRequest) -> Harness:
    """The harness for one eval test (the runner behind it is per worker)."""
    return Harness(request.config.stash[STATE_KEY], request.node)


class ReportWriter:
    """Collects records on the process that writes the report (the controller under xdist) and writes it.

    The report dir is claimed (a file lock, our pid beside it) as soon as eval tests are collected and
    before any runs, so a second run into the same dir stops with a message instead of mixing files.
    """

    def __init__(self, state: PluginState):
        self.state = state
        self.lock: ReportDirLock | None = None

    # -- claiming the report dir once evals are collected ------------------------------------
    def pytest_collection_finish(self, session: pytest.Session) -> None:
        if any(_case_of(item) is not None for item in session.items):
            self._claim()

    @pytest.hookimpl(optionalhook=True)
    def pytest_xdist_node_collection_finished(self, node: Any, ids: list[str]) -> None:
        from plainsight.tasks import all_tasks

        if self.lock is None and any(case_of_nodeid(i, self.state.all_entries, list(all_tasks())) for i in ids):
            self._claim()

    def _claim(self) -> None:
        state = self.state
        if self.lock is not None:
            return
        try:
            # Before anything runs: a thresholds table naming no task or model of this config would never apply.
            check_models(state.thresholds, state.all_entries)
        except ConfigError as exc:
            raise pytest.UsageError(str(exc)) from None
        self.lock = ReportDirLock(state.report_dir)
        self.lock.acquire()
        if state.resume:
            # What a killed run left in part files joins items.jsonl before anyone reads it.
            report_mod.consolidate_item_logs(state.report_dir)
        for stale in state.report_dir.glob("items.part-*.jsonl"):
            stale.unlink()

    # -- records as tests finish -------------------------------------------------------------
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        props = report.user_properties
        attached = [rec for name, value in props if name == RECORDS_PROPERTY for rec in value]
        new_records = False
        if report.when == "call":
            self.state.records.extend(attached)
            new_records = bool(attached)
            for name, value in props:
                if name == ANSWERS_PROPERTY:
                    for k, v in value.items():
                        self.state.answer_counts[k] = self.state.answer_counts.get(k, 0) + v
        case = next((value for name, value in props if name == CASE_PROPERTY), None)
        if report.failed and case is not None and report.when in ("setup", "call"):
            task, model, role = case
            if not any((r["task"], r["model"], r["role"]) == (task, model, role) for r in attached):
                # The pair failed before its record was made (bad data, a model that cannot load, a bug):
                # reported as an error with the message, never left out.
                self.state.records.append(_error_record(task, model, role, _failure_message(report)))
                new_records = True
        if new_records:
            # A killed run still leaves a readable report of the tests that finished (writes are atomic).
            self._write(complete=False)

    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        state = self.state
        state.close()
        if self.lock is None:
            return  # no eval test was collected, or another run holds the report dir: touch nothing
        try:
            if state.records:
                report_mod.merge_item_logs(state.report_dir)
                # Complete only when the session ran to its end: not on Ctrl-C, -x / --maxfail, or an internal error.
                interrupted = exitstatus in (pytest.ExitCode.INTERRUPTED, pytest.ExitCode.INTERNAL_ERROR)
                self._write(complete=not (interrupted or session.shouldstop or session.shouldfail))
                self._write_html()
        finally:
            self.lock.release()

    def _write_html(self) -> None:
        from plainsight.report_html import item_images_from_run, load_run, write_html

        state = self.state
        results, items = load_run(state.report_dir)
        write_html(state.report_dir, results, items, item_images=item_images_from_run(results))
        if state.update_baseline_dir is not None:
            from plainsight.baseline import store

            store(state.report_dir, state.update_baseline_dir)

    def _write(self, *, complete: bool) -> None:
        state = self.state
        metadata = report_mod.run_metadata(
            seed=state.options.seed,
            options={
                "data_root": str(state.options.data_root) if state.options.data_root else "embedded",
                "data_source": state.options.source,
                "protocol": state.protocol.name,
                "data_sources": _data_sources(state.records),
                # task → {reason: source rows the loader left out} (other tasks' rows, excluded trials, odd rows)
                "data_skipped": _data_skipped(state.records),
                "task_options": state.options.task_options,
                "limit": state.options.limit,
                "device": state.options.device,
                "dtype": state.options.dtype,
                "models": sorted({r["model"] for r in state.records}),
                **({"shard": f"{state.options.shard[0]}/{state.options.shard[1]}"} if state.options.shard else {}),
                "resume": state.resume,
            },
            fingerprints=_fingerprints(state),
        )
        metadata["complete"] = complete
        metadata["answers"] = dict(sorted(state.answer_counts.items()))
        report_mod.write_results(state.report_dir, metadata, state.records)
        report_mod.write_markdown(state.report_dir, metadata, state.records)

    def pytest_terminal_summary(self, terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
        if not self.state.records:
            return
        terminalreporter.section("plainsight")
        rows = report_mod.summary_rows(self.state.records)
        terminalreporter.write_line(report_mod.format_table(report_mod.SUMMARY_HEADER, rows))
        for task, (count, files) in report_mod.data_faults_by_task(self.state.records).items():
            shown = "; ".join(files[:3]) + (f"; and {len(files) - 3} more" if len(files) > 3 else "")
            terminalreporter.write_line(f"data errors: {task}: {count} item(s) not scored (counted wrong): {shown}")
        for task, reasons in _data_skipped(self.state.records).items():
            for reason, n in reasons.items():
                terminalreporter.write_line(f"data: {task}: {n} source rows left out ({reason})")
        if self.state.resume:
            counts = self.state.answer_counts
            terminalreporter.write_line(
                f"resumed: {counts.get('reused', 0)} answers reused from the earlier run, {counts.get('computed', 0)} computed"
            )
        terminalreporter.write_line(
            f"report: {self.state.report_dir / 'report.html'} (.md)  results: {self.state.report_dir / 'results.json'}"
        )


def _data_skipped(records: list[dict[str, Any]]) -> dict[str, dict[str, int]]:
    return {r["task"]: r["data_skipped"] for r in sorted(records, key=lambda r: r["task"]) if r.get("data_skipped")}


def _data_sources(records: list[dict[str, Any]]) -> dict[str, str]:
    """task → the format its items were read from (a protocol prefers some; a task falls back when one is absent)."""
    return {r["task"]: r["data_source"] for r in sorted(records, key=lambda r: r["task"]) if r.get("data_source")}


def _fingerprints(state: PluginState) -> dict[str, Any]:
    from plainsight import prompts
    from plainsight.tasks import get_task

    tasks = sorted({r["task"] for r in state.records})
    data = {t: sorted({r.get("item_set") for r in state.records if r["task"] == t and r.get("item_set")}) for t in tasks}
    prompt_fps = {}
    for t in tasks:
        p = prompts.get(get_task(t).prompt_id)
        prompt_fps[t] = {"prompt": p.key, "fingerprint": p.fingerprint}
    models = {
        name: canonical_hash(state.all_entries[name].fingerprint_fields())
        for name in sorted({r["model"] for r in state.records})
        if name in state.all_entries
    }
    placements = {
        r["model"]: {k: r.get(k) for k in ("device", "dtype", "preprocess")}
        for r in sorted(state.records, key=lambda r: (r["model"], r["role"]))
        if r.get("device")
    }
    held_out = {
        task: {model: len(ids) for model, ids in sorted(by_model.items())}
        for task, by_model in sorted(state.training_items().items()) if task in tasks
    }  # fmt: skip
    return {
        "data_fingerprints": data,
        "prompt_fingerprints": prompt_fps,
        "model_fingerprints": models,
        # task → tuned model → how many of the task's items it was trained on (left out of this whole run)
        "training_items_left_out": held_out,
        # where each model ran and which image-processor class (PIL or torchvision backend) prepared its inputs
        "model_placements": placements,
    }
