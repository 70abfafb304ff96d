"""`fixtures/thresholds.toml`: the gates a record must pass, and the verdict they give.

Resolution order (later wins): ``[defaults.<role>]`` → ``[tasks.<task>.<role>]`` →
``[models.<model>]`` → ``[models.<model>.<task>]``. Keys:

- ``above_chance`` (bool): Wilson 95% lower bound > ``chance_floor``.
- ``min_accuracy`` (float).
- ``max_gap_to_vision`` (float, VLM only): vision accuracy − VLM accuracy on the
  items both scored may be at most this.
- ``min_tv_to_blind`` (float, VLM only): TV(answers, blind answers) at least this.
- ``expect = "xfail"`` + ``reason``: a known gap; a failing gate is reported as xfail.
- ``max_invalid_share`` (float in [0, 1], default 0.0): the share of the items that may be
  data faults (``data_errors / n``: a missing or undecodable image, an annotated size or point
  or box that does not fit the image) before the record fails. An integrity gate: it applies to
  smoke models too, and ``expect = "xfail"`` does not excuse it. The default hides nothing; the
  message names every bad file (the first 10 and how many more).

Smoke models (``smoke = true``) get integrity gates only. Integrity gates apply to
every model: every item has an outcome, distributions sum to 1, no NaN scores, data faults
within ``max_invalid_share``.

Other top-level tables: ``[baseline]`` with ``alpha`` (0 < alpha < 1) and ``tolerance``
(0..1, accuracy points) for ``--baseline``; and ``other_models = ["name", ...]``: models
of another models.toml that this file may name in ``[models.<name>]`` tables.

The file is checked strictly when loaded (`load_thresholds`): unknown tables and keys,
values of the wrong type (a bool is not a number) or out of range, and task names that
are not task ids (``plainsight.tasks.all_tasks()``) raise `ConfigError` naming the file,
table and key. `check_models` does the same for ``[models.<name>]`` tables that name no
model of the active models.toml, unless the name is listed in ``other_models``.
"""

from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

from plainsight.errors import ConfigError
from plainsight.outcomes import ROLE_VLM
from plainsight.records import Record

if TYPE_CHECKING:
    from plainsight.baseline import Baseline

GATE_KEYS = {
    "above_chance", "min_accuracy", "max_gap_to_vision", "min_tv_to_blind", "max_invalid_share", "expect", "reason",
}  # fmt: skip
DATA_ERROR_FILES_SHOWN = 10  # a failing max_invalid_share names this many faults, then "and N more"
ROLES = ("vision", "vlm")


@dataclass(frozen=True)
class Thresholds:
    data: dict[str, Any]
    path: Path | None = None

    @property
    def baseline_alpha(self) -> float:
        return float(self.data.get("baseline", {}).get("alpha", 0.05))

    @property
    def baseline_tolerance(self) -> float:
        return float(self.data.get("baseline", {}).get("tolerance", 0.02))

    def for_case(self, task: str, model: str, role: str) -> dict[str, Any]:
        """The gate settings that apply to one (task, model, role)."""
        merged: dict[str, Any] = {}
        merged.update(self.data.get("defaults", {}).get(role, {}))
        merged.update(self.data.get("tasks", {}).get(task, {}).get(role, {}))
        model_table = self.data.get("models", {}).get(model, {})
        merged.update({k: v for k, v in model_table.items() if not isinstance(v, dict)})
        merged.update(model_table.get(task, {}))
        return merged


def load_thresholds(path: Path) -> Thresholds:
    try:
        data = tomllib.loads(Path(path).read_text())
    except FileNotFoundError:
        raise ConfigError(f"{path}: thresholds file not found") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc})") from None
    _validate(data, Path(path))
    return Thresholds(data=data, path=Path(path))


TOP_LEVEL = ("defaults", "tasks", "models", "baseline", "other_models")
BASELINE_KEYS = ("alpha", "tolerance")


def _is_number(value: Any) -> bool:
    # A TOML bool is a Python bool, and bool is an int: `max_gap_to_vision = true` is not 1.
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _number_in(path: Path, where: str, key: str, value: Any, lo: float, hi: float, *, open_lo: bool = False) -> None:
    if not _is_number(value):
        raise ConfigError(f"{path}: {where}: {key} must be a number, not {type(value).__name__} {value!r}")
    if value > hi or value < lo or (open_lo and value == lo):
        bracket = "(" if open_lo else "["
        raise ConfigError(f"{path}: {where}: {key} = {value!r} is out of range {bracket}{lo}, {hi}]")


def _validate(data: dict[str, Any], path: Path) -> None:
    from plainsight.tasks import all_tasks  # lazily: the task modules are heavier than this one

    known_tasks = sorted(all_tasks())

    def check(table: dict[str, Any], where: str) -> None:
        for key, value in table.items():
            if isinstance(value, dict):
                raise ConfigError(
                    f"{path}: {where}.{key}: unexpected table; {where} holds only gates {sorted(GATE_KEYS)}"
                )
            if key not in GATE_KEYS:
                raise ConfigError(f"{path}: {where}: unknown gate {key!r}; known: {sorted(GATE_KEYS)}")
            if key == "above_chance" and not isinstance(value, bool):
                raise ConfigError(f"{path}: {where}: above_chance must be true or false, not {value!r}")
            if key == "min_accuracy" or key == "min_tv_to_blind" or key == "max_invalid_share":
                _number_in(path, where, key, value, 0.0, 1.0)
            if key == "max_gap_to_vision":
                _number_in(path, where, key, value, -1.0, 1.0)
            if key == "expect" and value != "xfail":
                raise ConfigError(f'{path}: {where}: expect must be "xfail", not {value!r}')
            if key == "reason" and not isinstance(value, str):
                raise ConfigError(f"{path}: {where}: reason must be a string, not {value!r}")
        if table.get("expect") == "xfail" and not table.get("reason"):
            raise ConfigError(f'{path}: {where}: expect = "xfail" needs a reason')

    def table_of(value: Any, where: str) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise ConfigError(f"{path}: {where} must be a table, not {type(value).__name__} {value!r}")
        return value

    def known_task(task: str, where: str) -> None:
        if task not in known_tasks:
            raise ConfigError(f"{path}: {where}: unknown task {task!r}; known: {', '.join(known_tasks)}")

    for key in data:
        if key not in TOP_LEVEL:
            raise ConfigError(f"{path}: unknown top-level key or table {key!r}; known: {', '.join(TOP_LEVEL)}")
    for role, table in table_of(data.get("defaults", {}), "[defaults]").items():
        if role not in ROLES:
            raise ConfigError(f"{path}: [defaults.{role}]: role must be one of {ROLES}")
        check(table_of(table, f"[defaults.{role}]"), f"[defaults.{role}]")
    for task, roles in table_of(data.get("tasks", {}), "[tasks]").items():
        known_task(task, f"[tasks.{task}]")
        for role, table in table_of(roles, f"[tasks.{task}]").items():
            if role not in ROLES:
                raise ConfigError(f"{path}: [tasks.{task}.{role}]: role must be one of {ROLES}")
            check(table_of(table, f"[tasks.{task}.{role}]"), f"[tasks.{task}.{role}]")
    for model, table in table_of(data.get("models", {}), "[models]").items():
        table = table_of(table, f"[models.{model}]")
        check({k: v for k, v in table.items() if not isinstance(v, dict)}, f"[models.{model}]")
        for task, sub in table.items():
            if isinstance(sub, dict):
                known_task(task, f"[models.{model}.{task}]")
                check(sub, f"[models.{model}.{task}]")
    baseline = table_of(data.get("baseline", {}), "[baseline]")
    for key in baseline:
        if key not in BASELINE_KEYS:
            raise ConfigError(f"{path}: [baseline]: unknown key {key!r}; known: {', '.join(BASELINE_KEYS)}")
    if "alpha" in baseline:
        _number_in(path, "[baseline]", "alpha", baseline["alpha"], 0.0, 1.0, open_lo=True)
    if "tolerance" in baseline:
        _number_in(path, "[baseline]", "tolerance", baseline["tolerance"], 0.0, 1.0)
    others = data.get("other_models", [])
    if not isinstance(others, list) or not all(isinstance(name, str) for name in others):
        raise ConfigError(f"{path}: other_models must be a list of model names (strings), not {others!r}")


def check_models(thresholds: Thresholds, model_names: Any) -> None:
    """Raise `ConfigError` if a ``[models.<name>]`` table names no model of the active models.toml.

    Names listed in the file's top-level ``other_models`` are exempt (a thresholds file
    shared by several model configs).
    """
    known = set(model_names)
    exempt = set(thresholds.data.get("other_models", []))
    unknown = [name for name in thresholds.data.get("models", {}) if name not in known and name not in exempt]
    if unknown:
        tables = ", ".join(f"[models.{name}]" for name in unknown)
        where = thresholds.path if thresholds.path is not None else "thresholds"
        raise ConfigError(
            f"{where}: {tables}: no such model in the model config; known models: {', '.join(sorted(known)) or '(none)'} "
            f"(list models of another config in a top-level other_models = [...])"
        )


@dataclass
class Verdict:
    status: str  # pass | fail | xfail | skip | not_comparable
    reasons: list[str] = field(default_factory=list)
    checks: dict[str, bool] = field(default_factory=dict)

    @property
    def reason(self) -> str:
        return "; ".join(self.reasons)


def data_error_failure(record: Record, max_invalid_share: float = 0.0) -> str | None:
    """The ``max_invalid_share`` gate's message when too many of the record's items are data faults, else None."""
    count, n = record.data_errors, record.n
    share = count / n if n else 0.0
    if count == 0 or share <= max_invalid_share:
        return None
    files = list(record.data_error_files)
    shown = "; ".join(files[:DATA_ERROR_FILES_SHOWN])
    if len(files) > DATA_ERROR_FILES_SHOWN:
        shown += f"; and {len(files) - DATA_ERROR_FILES_SHOWN} more"
    label = record.label
    return (
        f"{label}: {count} of {n} item(s) ({share:.1%}) not scored for data errors > max_invalid_share "
        f"{max_invalid_share:g}: {shown}"
    )


def integrity_failures(record: Record, max_invalid_share: float = 0.0) -> list[str]:
    """Problems that make a record untrustworthy regardless of accuracy."""
    problems = []
    data_errors = data_error_failure(record, max_invalid_share)
    if data_errors is not None:
        problems.append(data_errors)
    if record.n_items == 0:
        problems.append("no items were scored")
    n_outcomes = record.get("n_outcomes", 0)
    if n_outcomes != record.n_items:
        problems.append(f"{record.n_items - n_outcomes} item(s) have no outcome")
    if record.get("nan", 0):
        problems.append(f"{record.nan} item(s) had NaN/inf scores")
    for key, dist in (("answer_dist", record.answer_dist), ("gold_dist", record.gold_dist)):
        total = sum(dist.values())
        if record.n_valid and not math.isclose(total, 1.0, abs_tol=1e-5):  # records round to 6 decimals
            problems.append(f"{key} sums to {total:.6f}, not 1")
    if record.n_valid == 0 and record.n_items:
        problems.append("every item was invalid for this model")
    return problems


def judge(record: Record, gates: dict[str, Any], *, smoke: bool) -> Verdict:
    """Apply integrity gates always, and accuracy gates unless smoke."""
    verdict = Verdict(status="pass")
    failures = integrity_failures(record, float(gates.get("max_invalid_share", 0.0)))
    verdict.checks["integrity"] = not failures
    if not smoke and not failures:
        lo, hi = record.ci95
        label = record.label
        if gates.get("above_chance", False):
            ok = lo > record.chance_floor
            verdict.checks["above_chance"] = ok
            if not ok:
                failures.append(
                    f"{label}: accuracy {record.accuracy:.3f} (95% CI {lo:.3f}–{hi:.3f}, "
                    f"n={record.n}) is not above the chance floor {record.chance_floor:.3f}"
                )
        if "min_accuracy" in gates:
            ok = record.accuracy >= float(gates["min_accuracy"])
            verdict.checks["min_accuracy"] = ok
            if not ok:
                failures.append(f"{label}: accuracy {record.accuracy:.3f} < min_accuracy {gates['min_accuracy']}")
        if record.role == ROLE_VLM:
            gap_limit = gates.get("max_gap_to_vision")
            if gap_limit is not None and record.get("gap_to_vision") is not None:
                ok = record.gap_to_vision <= float(gap_limit)
                verdict.checks["max_gap_to_vision"] = ok
                if not ok:
                    failures.append(
                        f"{label}: trails its vision baseline {record.paired_with} by "
                        f"{record.gap_to_vision:.3f} (vision {record.vision_accuracy:.3f} vs "
                        f"VLM {record.paired_vlm_accuracy:.3f} on {record.paired_n} shared items; "
                        f"McNemar p={record.mcnemar_p:.3g}) > max_gap_to_vision {gap_limit}"
                    )
            tv_min = gates.get("min_tv_to_blind")
            if tv_min is not None and record.tv_to_blind is not None:
                ok = record.tv_to_blind >= float(tv_min)
                verdict.checks["min_tv_to_blind"] = ok
                if not ok:
                    failures.append(
                        f"{label}: answers barely change without the image: TV(answers, blind answers) = "
                        f"{record.tv_to_blind:.3f} < min_tv_to_blind {tv_min}"
                    )
    if failures:
        if gates.get("expect") == "xfail" and verdict.checks.get("integrity", True):
            verdict.status = "xfail"
            verdict.reasons = [f"expected: {gates.get('reason', '')}", *failures]
        else:
            verdict.status = "fail"
            verdict.reasons = failures
    elif smoke:
        verdict.reasons = ["smoke model: integrity gates only"]
    return verdict


def gate_record(
    record: Record,
    thresholds: Thresholds,
    *,
    smoke: bool,
    baseline: Baseline | None = None,
    outcomes: Mapping[str, bool] | None = None,
    prompt_fingerprint: str | None = None,
) -> Verdict:
    """The verdict of a record, written into it (``verdict``, ``reason``, ``checks``; ``baseline`` too).

    The gates of thresholds.toml (:func:`judge`), then — with a stored ``baseline`` (``--baseline``) —
    the regression gate: ``outcomes`` (item id → correct, the scored items) compared with the stored
    run's by a one-sided McNemar test; a changed prompt or item set is ``not_comparable``, never a
    silent comparison. The plugin and ``plainsight merge`` both gate through here.
    """
    verdict = judge(record, thresholds.for_case(*record.key), smoke=smoke)
    if baseline is not None:
        result = baseline.compare(
            record, dict(outcomes or {}), prompt_fingerprint=prompt_fingerprint,
            alpha=thresholds.baseline_alpha, tolerance=thresholds.baseline_tolerance,
        )  # fmt: skip
        record.baseline = {"status": result.status, "reason": result.reason, **result.stats}
        verdict.checks["baseline"] = result.status in ("pass", "missing")
        if result.status == "fail":
            verdict.status = "fail"
            verdict.reasons.append(f"{record.label}: {result.reason}")
        elif result.status == "not_comparable" and verdict.status == "pass":
            verdict.status = "not_comparable"
            verdict.reasons = [result.reason]
    record.update(verdict=verdict.status, reason=verdict.reason, checks=verdict.checks)
    return verdict
