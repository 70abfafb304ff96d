"""`plainsight merge`: one report, gated, from the outputs of sharded runs (`pytest evals --shard i/n`).

A shard records its items' outcomes but does not gate: its records cover part of each
task. Merging checks the shards belong together (same seed, data, prompts, models and
shard count, every shard present once), rebuilds each (task, model, role) record from the
union of their ``items.jsonl`` lines with the same code a single run uses, and applies the
same gates; the result equals the unsharded run's records (timings aside).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from plainsight.attention import mean_per_layer
from plainsight.errors import PlainsightError
from plainsight.outcomes import ROLE_BLIND, ROLE_VISION, ROLE_VLM, RoleRun, outcome_from_json
from plainsight.records import RUN_INFO_FIELDS, SCHEMA, Record, summarize, versus_base
from plainsight.shards import parse_shard

SHARD_KEY = "shard"
MATCHING_METADATA = ("seed", "data_fingerprints", "prompt_fingerprints", "model_fingerprints")


def _load(folder: Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    results_path, items_path = folder / "results.json", folder / "items.jsonl"
    for path in (results_path, items_path):
        if not path.is_file():
            raise PlainsightError(f"{folder}: no {path.name} (is it the --report-dir of a finished shard run?)")
    results = json.loads(results_path.read_text())
    if results.get("schema") != SCHEMA:
        raise PlainsightError(f"{results_path}: schema {results.get('schema')!r}, expected {SCHEMA!r}")
    rows = []
    for n, line in enumerate(items_path.read_text().splitlines(), start=1):
        if line.strip():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise PlainsightError(f"{items_path}:{n}: not valid JSON ({exc})") from None
    return results, rows


def _check_shards(runs: list[tuple[Path, dict[str, Any]]]) -> None:
    shards = []
    for folder, results in runs:
        shard = results.get("options", {}).get(SHARD_KEY)
        if not shard:
            raise PlainsightError(f"{folder}: not a shard run (its metadata has no options.shard)")
        shards.append((folder, parse_shard(shard)))
    counts = {n for _, (_, n) in shards}
    if len(counts) != 1:
        raise PlainsightError(f"shards of different splits: {', '.join(f'{f} ({i}/{n})' for f, (i, n) in shards)}")
    count = counts.pop()
    seen: dict[int, Path] = {}
    for folder, (index, _) in shards:
        if index in seen:
            raise PlainsightError(f"shard {index}/{count} given twice: {seen[index]} and {folder}")
        seen[index] = folder
    missing = sorted(set(range(1, count + 1)) - set(seen))
    if missing:
        raise PlainsightError(
            f"missing shard(s) {', '.join(f'{i}/{count}' for i in missing)}: a merge needs all {count}"
        )
    first_folder, first = runs[0]
    for folder, results in runs[1:]:
        for key in MATCHING_METADATA:
            if results.get(key) != first.get(key):
                raise PlainsightError(f"{folder} and {first_folder} differ in {key}: they are not shards of one run")


def merge_runs(
    folders: list[Path], thresholds_path: Path, *, baseline_dir: Path | None = None
) -> tuple[dict[str, Any], list[Record], list[dict[str, Any]]]:
    """(metadata, gated records, item rows) of the run the shards in ``folders`` add up to.

    Each record is gated like an unsharded run's (:func:`plainsight.gates.gate_record`), against
    ``baseline_dir`` too when given (the run stored with ``--update-baseline``).
    """
    from plainsight.baseline import Baseline
    from plainsight.gates import gate_record, load_thresholds

    if not folders:
        raise PlainsightError("plainsight merge needs the report folders of the shards")
    runs = [(folder, *_load(folder)) for folder in folders]
    _check_shards([(folder, results) for folder, results, _ in runs])
    rows_by_key: dict[tuple[str, str, str], dict[str, dict[str, Any]]] = {}
    for folder, _, rows in runs:
        for row in rows:
            per_run = rows_by_key.setdefault((row["task"], row["model"], row["role"]), {})
            if row["item"] in per_run:
                raise PlainsightError(
                    f"{folder}: item {row['item']} of {row['task']} × {row['model']} ({row['role']}) is in two shards"
                )
            per_run[row["item"]] = row
    shard_records: dict[tuple[str, str, str], list[Record]] = {}
    for folder, results, _ in runs:
        for document in results["results"]:
            record = Record.from_json(document, where=str(folder / "results.json"))
            shard_records.setdefault(record.key, []).append(record)

    def role_run(key: tuple[str, str, str]) -> RoleRun | None:
        if key not in rows_by_key:
            return None
        first = shard_records[key][0]
        outcomes = [outcome_from_json(row) for _, row in sorted(rows_by_key[key].items())]
        info = {name: first.get(name) for name in RUN_INFO_FIELDS if first.has(name)}
        attention = mean_per_layer([o.attention for o in outcomes if o.valid])
        if attention is not None:
            info["image_attention"] = attention
        seconds = sum(r.get("seconds") or 0.0 for r in shard_records[key])
        return RoleRun(key[0], key[1], key[2], first.get("item_set", ""), outcomes, info, seconds)

    thresholds = load_thresholds(thresholds_path)
    baseline = Baseline.load(baseline_dir) if baseline_dir is not None else None
    prompt_fingerprints = runs[0][1].get("prompt_fingerprints", {})
    records = []
    for key, parts in sorted(shard_records.items()):
        task, model, role = key
        first = parts[0]
        run = role_run(key)
        if run is None or role not in (ROLE_VISION, ROLE_VLM, ROLE_BLIND):
            if role not in (ROLE_VISION, ROLE_VLM, ROLE_BLIND) and run is None and first.verdict != "skip":
                first.update(verdict="skip", reason=f"{role} records are not merged: run them unsharded")
            records.append(first)  # skipped (no data/model) in every shard
            continue
        choices = tuple(sorted(first.answer_dist.keys() - {"none"})) or tuple(sorted(first.gold_dist))
        n_items = sum(r.n_items for r in parts)
        smoke = first.get("smoke", False)
        if role == ROLE_VLM:
            paired = first.paired_with
            record = summarize(run, choices=choices, blind=role_run((task, model, ROLE_BLIND)),
                               vision=role_run((task, paired, ROLE_VISION)) if paired else None,
                               smoke=smoke, n_items=n_items)  # fmt: skip
            base = first.get("vs_base", {}).get("base")
            base_runs = (role_run((task, base, ROLE_VLM)), role_run((task, base, ROLE_BLIND))) if base else (None, None)
            if base_runs[0] is not None and base_runs[1] is not None:
                record.vs_base = versus_base(run, *base_runs)  # on the merged items, like every other number
            if first.has("tuning"):
                record.tuning = first.tuning
        else:
            record = summarize(run, choices=choices, smoke=smoke, n_items=n_items)
        if role == ROLE_BLIND or first.verdict == "skip" and role == ROLE_VISION and model.endswith("/own_tower"):
            record.update(verdict="skip", reason=first.reason)
        else:
            gate_record(
                record, thresholds, smoke=smoke, baseline=baseline,
                outcomes={o.item_id: o.correct for o in run.outcomes if o.valid},
                prompt_fingerprint=prompt_fingerprints.get(task, {}).get("fingerprint"),
            )  # fmt: skip
        records.append(record)
    metadata = {k: v for k, v in runs[0][1].items() if k not in ("schema", "results")}
    metadata["options"] = {k: v for k, v in metadata.get("options", {}).items() if k != SHARD_KEY}
    metadata["merged_from"] = [str(folder) for folder in folders]
    rows = [row for key in sorted(rows_by_key) for _, row in sorted(rows_by_key[key].items())]
    return metadata, records, rows
