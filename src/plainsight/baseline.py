"""Stored baselines and the regression gate.

``--update-baseline DIR`` stores a run's results.json and items.jsonl in DIR.
``--baseline DIR`` compares each (task, model, role) record with the stored one on
the items both runs scored, by an exact one-sided McNemar test: the run fails only
when it is significantly worse (p < alpha) *and* worse by more than ``tolerance``
accuracy points (both in thresholds.toml ``[baseline]``). A changed prompt or item
set makes the comparison ``not_comparable`` — never a silent comparison.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from plainsight.documents import read_json_document
from plainsight.errors import ConfigError
from plainsight.outcomes import DATA_ERROR, INVALID
from plainsight.records import SCHEMA, Record
from plainsight.scoring import mcnemar_one_sided

Key = tuple[str, str, str]


@dataclass
class BaselineVerdict:
    status: str  # pass | fail | not_comparable | missing
    reason: str
    stats: dict[str, Any] = field(default_factory=dict)


@dataclass
class Baseline:
    path: Path
    metadata: dict[str, Any]
    records: dict[Key, dict[str, Any]]
    outcomes: dict[Key, dict[str, bool]]  # item id -> correct (valid items only)

    @classmethod
    def load(cls, folder: Path) -> "Baseline":
        folder = Path(folder)
        results_path, items_path = folder / "results.json", folder / "items.jsonl"
        for p in (results_path, items_path):
            if not p.is_file():
                raise ConfigError(
                    f"--baseline {folder}: {p.name} not found (store one with --update-baseline {folder})"
                )
        results = read_json_document(results_path, SCHEMA)
        records = {(r["task"], r["model"], r["role"]): r for r in results.get("results", [])}
        outcomes: dict[Key, dict[str, bool]] = {}
        for n, line in enumerate(items_path.read_text().splitlines(), 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
                key = (rec["task"], rec["model"], rec["role"])
                if rec.get("reason") not in (INVALID, DATA_ERROR):  # compared on items both runs scored
                    outcomes.setdefault(key, {})[rec["item"]] = bool(rec["correct"])
            except (json.JSONDecodeError, KeyError) as exc:
                raise ConfigError(f"{items_path}: line {n} is not an item record ({exc})") from None
        metadata = {k: v for k, v in results.items() if k != "results"}
        return cls(folder, metadata, records, outcomes)

    def compare(
        self,
        record: Record,
        outcomes: dict[str, bool],
        *,
        prompt_fingerprint: str | None,
        alpha: float,
        tolerance: float,
    ) -> BaselineVerdict:
        """The regression verdict of a new record (and its per-item correctness) against this baseline."""
        key = record.key
        stored = self.records.get(key)
        if stored is None or key not in self.outcomes:
            return BaselineVerdict("missing", f"no baseline record for {key} in {self.path}")
        stored_prompt = self.metadata.get("prompt_fingerprints", {}).get(record.task, {}).get("fingerprint")
        if prompt_fingerprint is not None and stored_prompt is not None and stored_prompt != prompt_fingerprint:
            return BaselineVerdict(
                "not_comparable",
                f"prompt changed since the baseline (fingerprint {stored_prompt} -> {prompt_fingerprint})",
            )
        if stored.get("item_set") != record.get("item_set"):
            return BaselineVerdict(
                "not_comparable",
                f"item set changed since the baseline ({stored.get('item_set')} -> {record.get('item_set')}): "
                "different data, seed or --limit",
            )
        before = self.outcomes[key]
        shared = sorted(set(before) & set(outcomes))
        if not shared:
            return BaselineVerdict("not_comparable", "no item was scored validly by both runs")
        only_new = sum(outcomes[i] and not before[i] for i in shared)
        only_old = sum(before[i] and not outcomes[i] for i in shared)
        old_acc = sum(before[i] for i in shared) / len(shared)
        new_acc = sum(outcomes[i] for i in shared) / len(shared)
        p = mcnemar_one_sided(only_new, only_old)
        stats = {
            "n_shared": len(shared), "baseline_accuracy": round(old_acc, 6), "accuracy": round(new_acc, 6),
            "only_baseline_correct": only_old, "only_new_correct": only_new, "mcnemar_p": p,
            "alpha": alpha, "tolerance": tolerance,
        }  # fmt: skip
        drop = old_acc - new_acc
        if p < alpha and drop > tolerance:
            return BaselineVerdict(
                "fail",
                f"worse than the baseline: accuracy {new_acc:.3f} vs {old_acc:.3f} on {len(shared)} shared items "
                f"({only_old} now wrong, {only_new} now right; one-sided McNemar p={p:.3g} < alpha {alpha}, "
                f"drop {drop:.3f} > tolerance {tolerance})",
                stats,
            )
        return BaselineVerdict(
            "pass", f"no significant drop vs the baseline (McNemar p={p:.3g}, drop {drop:+.3f})", stats
        )


def store(report_dir: Path, baseline_dir: Path) -> None:
    """Copy a finished run's results.json and items.jsonl into a baseline folder."""
    baseline_dir = Path(baseline_dir)
    baseline_dir.mkdir(parents=True, exist_ok=True)
    for name in ("results.json", "items.jsonl"):
        shutil.copyfile(Path(report_dir) / name, baseline_dir / name)


def compare_runs(a: Baseline, b: Baseline) -> list[dict[str, Any]]:
    """Per (task, model, role) present in both runs: accuracies on shared items, discordant counts, McNemar p."""
    from plainsight.scoring import mcnemar_exact

    rows = []
    for key in sorted(set(a.outcomes) & set(b.outcomes)):
        left, right = a.outcomes[key], b.outcomes[key]
        shared = sorted(set(left) & set(right))
        if not shared:
            continue
        only_a = sum(left[i] and not right[i] for i in shared)
        only_b = sum(right[i] and not left[i] for i in shared)
        acc_a = sum(left[i] for i in shared) / len(shared)
        acc_b = sum(right[i] for i in shared) / len(shared)
        rows.append({
            "task": key[0], "model": key[1], "role": key[2], "n_shared": len(shared),
            "accuracy_a": acc_a, "accuracy_b": acc_b, "difference": acc_b - acc_a,
            "only_a_correct": only_a, "only_b_correct": only_b, "mcnemar_p": mcnemar_exact(only_a, only_b),
            "same_items": a.records.get(key, {}).get("item_set") == b.records.get(key, {}).get("item_set"),
        })  # fmt: skip
    return rows
