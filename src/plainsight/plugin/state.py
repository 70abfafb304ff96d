"""What the plugin keeps for one pytest process (controller or worker): options, configs, the runner."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from plainsight import report as report_mod
from plainsight.errors import ConfigError, ModelUnavailable
from plainsight.gates import Thresholds, load_thresholds
from plainsight.models.registry import ModelEntry, load_models_toml, select
from plainsight.outcomes import Outcome
from plainsight.protocols import Protocol, get_protocol, task_options_with
from plainsight.records import Record
from plainsight.run_options import RunOptions

if TYPE_CHECKING:
    from plainsight.runner import Runner

STATE_KEY = pytest.StashKey["PluginState"]()


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
        self.records: list[Record] = []
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
            from plainsight.runner import Runner  # the heavy imports wait for the first eval test

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
        from plainsight.models.adapters import read_adaptation

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
    if not values:  # the task modules are only imported when there is something to check
        return task_options_with(protocol, {})
    from plainsight.tasks import all_tasks, parse_task_options

    try:
        return task_options_with(protocol, parse_task_options(values, all_tasks()))
    except ConfigError as exc:
        raise pytest.UsageError(str(exc)) from None


def _checked_source(name: str | None) -> str | None:
    if name is None:
        return None
    from plainsight.tasks import all_tasks
    from plainsight.tasks.sources import check_source_name

    try:
        check_source_name(name, {s for t in all_tasks().values() for s in t.sources})
    except ConfigError as exc:
        raise pytest.UsageError(str(exc)) from None
    return name


def family_tasks(state: PluginState, family: str) -> list[str]:
    """The ids of a task family's tasks that this run evaluates (``--tasks`` filters)."""
    from plainsight.tasks import all_tasks

    tasks = sorted(t.id for t in all_tasks().values() if t.family == family)
    if state.task_filter:
        tasks = [t for t in tasks if t in state.task_filter]
    return tasks
