"""Collects records on the process that writes the report (the controller under xdist) and writes it."""

from __future__ import annotations

from typing import Any

import pytest

from plainsight import report as report_mod
from plainsight.errors import ConfigError
from plainsight.gates import check_models
from plainsight.items import canonical_hash
from plainsight.plugin.cases import ANSWERS_PROPERTY, CASE_PROPERTY, RECORDS_PROPERTY, case_of, case_of_nodeid
from plainsight.plugin.state import PluginState
from plainsight.records import Record
from plainsight.report import ReportDirLock


def failure_message(report: pytest.TestReport) -> str:
    """A failed report's message: the exception's (type and text) or pytest.fail's, one line where it is one."""
    crash = getattr(report.longrepr, "reprcrash", None)
    if crash is not None and crash.message:
        return crash.message
    text = str(report.longrepr or "").strip()
    return text.splitlines()[-1] if text else f"{report.when} failed"


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
        if any(case_of(item) is not None for item in session.items):
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
        attached = [Record.from_json(doc) for name, value in props if name == RECORDS_PROPERTY for doc in value]
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
            if not any(r.key == (task, model, role) for r in attached):
                # The pair failed before its record was made (bad data, a model that cannot load, a bug):
                # reported as an error with the message, never left out.
                self.state.records.append(Record.empty(task, model, role, "error", failure_message(report)))
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
                "models": sorted({r.model for r in state.records}),
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
        rows = report_mod.summary_rows([r.to_json() for r in self.state.records])
        terminalreporter.write_line(report_mod.format_table(report_mod.SUMMARY_HEADER, rows))
        for task, (count, files) in report_mod.data_faults_by_task([r.to_json() for r in self.state.records]).items():
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


def _data_skipped(records: list[Record]) -> dict[str, dict[str, int]]:
    return {r.task: r.data_skipped for r in sorted(records, key=lambda r: r.task) if r.get("data_skipped")}


def _data_sources(records: list[Record]) -> dict[str, str]:
    """task → the format its items were read from (a protocol prefers some; a task falls back when one is absent)."""
    return {r.task: r.data_source for r in sorted(records, key=lambda r: r.task) if r.get("data_source")}


def _fingerprints(state: PluginState) -> dict[str, Any]:
    from plainsight import prompts
    from plainsight.tasks import get_task

    tasks = sorted({r.task for r in state.records})
    data = {t: sorted({r.get("item_set") for r in state.records if r.task == t and r.get("item_set")}) for t in tasks}
    prompt_fps = {}
    for t in tasks:
        p = prompts.get(get_task(t).prompt_id)
        prompt_fps[t] = {"prompt": p.key, "fingerprint": p.fingerprint}
    models = {
        name: canonical_hash(state.all_entries[name].fingerprint_fields())
        for name in sorted({r.model for r in state.records})
        if name in state.all_entries
    }
    placements = {
        r.model: {k: r.get(k) for k in ("device", "dtype", "preprocess")}
        for r in sorted(state.records, key=lambda r: (r.model, r.role))
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
