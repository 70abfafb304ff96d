"""What an eval test talks to: computes a case's records and turns their verdicts into test outcomes."""

from __future__ import annotations

from typing import Any

import pytest

from plainsight.errors import ConfigError, DataError, DatasetNotFound, ModelLoadError, ModelUnavailable
from plainsight.gates import data_error_failure, gate_record
from plainsight.models.registry import ModelEntry
from plainsight.outcomes import OWN_TOWER_SUFFIX, ROLE_BLIND, ROLE_PROBE, ROLE_VISION, ROLE_VLM
from plainsight.plugin.cases import ANSWERS_PROPERTY, RECORDS_PROPERTY, Case
from plainsight.plugin.state import PluginState
from plainsight.records import Record, summarize


class Harness:
    """What an eval test talks to: computes a case's record and applies its gates."""

    def __init__(self, state: PluginState, node: pytest.Item):
        self.state = state
        self.node = node
        runner = state._runner
        self._counted = (runner.reused, runner.computed) if runner is not None else (0, 0)

    def evaluate(self, case: Case) -> Record:
        """Compute the records of a case (a VLM case also runs its blind control and paired vision baseline)."""
        state = self.state
        entry = state.all_entries[case.model]
        runner = state.runner
        try:
            items = runner.items(case.task)
            if case.role == ROLE_VISION:
                run = runner.run(case.task, case.model, ROLE_VISION)
                record = summarize(run, choices=choices_of(items), smoke=entry.smoke, n_items=len(items))
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
        choices = choices_of(items)
        record = summarize(vlm, choices=choices, blind=blind, vision=vision, smoke=entry.smoke, n_items=len(items))
        if entry.adapter_dir is not None:
            try:
                record.update(**self._versus_base(case, entry, vlm))
            except ModelUnavailable as exc:
                self._skip(case, f"original model {entry.base} unavailable: {exc}")
            except ConfigError as exc:
                pytest.fail(str(exc), pytrace=False)
        blind_record = summarize(blind, choices=choices, smoke=entry.smoke, n_items=len(items))
        blind_record.update(
            verdict="skip", reason="control run (white images): not gated; see the vlm record's tv_to_blind"
        )
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
        from plainsight.models.adapters import read_adaptation
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

    def probe(self, case: Case) -> Record:
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
        record = Record.empty(case.task, case.model, ROLE_PROBE, "pending", "")
        record.update(smoke=self.state.all_entries[case.model].smoke)
        record.update(
            n=n, n_items=len(items), correct=correct, accuracy=best["accuracy"], n_valid=n_valid,
            accuracy_valid=best["accuracy_valid"], chance=1 / len(choices_of(items)),
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
        if record.verdict == "fail":
            pytest.fail(record.reason, pytrace=False)
        return record

    def gate(self, record: Record) -> None:
        """Gate a record (thresholds.toml, and ``--baseline``) and turn its verdict into the test outcome."""
        state = self.state
        shard = state.options.shard
        if shard is not None:
            record.update(verdict="skip", reason=f"shard {shard[0]}/{shard[1]}: recorded, not gated (`plainsight merge` "
                                                 "gates the merged shards)", checks={})  # fmt: skip
            return
        baseline, outcomes, prompt_fingerprint = None, None, None
        if state.baseline_dir is not None:
            from plainsight import prompts
            from plainsight.tasks import get_task

            try:
                baseline = state.baseline
            except ConfigError as exc:
                pytest.fail(str(exc), pytrace=False)
            run = state.runner.run(*record.key)
            outcomes = {o.item_id: o.correct for o in run.outcomes if o.valid}
            prompt_fingerprint = prompts.get(get_task(record.task).prompt_id).fingerprint
        verdict = gate_record(
            record, state.thresholds, smoke=state.all_entries[record.model].smoke, baseline=baseline,
            outcomes=outcomes, prompt_fingerprint=prompt_fingerprint,
        )  # fmt: skip
        if verdict.status == "fail":
            pytest.fail(verdict.reason, pytrace=False)
        if verdict.status == "xfail":
            pytest.xfail(verdict.reason)
        if verdict.status == "not_comparable":
            pytest.skip(f"not comparable with the baseline: {verdict.reason}")

    def _attach(self, records: list[Record]) -> None:
        self.node.user_properties.append((RECORDS_PROPERTY, records))
        runner = self.state._runner
        if runner is not None:
            reused, computed = runner.reused - self._counted[0], runner.computed - self._counted[1]
            self._counted = (runner.reused, runner.computed)
            self.node.user_properties.append((ANSWERS_PROPERTY, {"reused": reused, "computed": computed}))

    def _skip(self, case: Case, reason: str) -> None:
        roles = [case.role]
        self._attach([Record.empty(case.task, case.model, role, "skip", reason) for role in roles])
        pytest.skip(reason)


def choices_of(items: list[Any]) -> tuple[str, ...]:
    """The letters of a task's items (A–D where there are none)."""
    return items[0].choices if items else ("A", "B", "C", "D")
