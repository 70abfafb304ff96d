"""`fixtures/thresholds.toml`: the gates a record must pass, and the verdict they give.

Resolution order (later wins): ``[defaults.<role>]`` → ``[tasks.<task>.<role>]`` →
``[models.<model>]`` → ``[models.<model>.<task>]``. Keys:

- ``above_chance`` (bool): Wilson 95% lower bound > ``chance_floor``.
- ``min_accuracy`` (float).
- ``max_gap_to_vision`` (float, VLM only): vision accuracy − VLM accuracy on the
  items both scored may be at most this.
- ``min_tv_to_blind`` (float, VLM only): TV(answers, blind answers) at least this.
- ``expect = "xfail"`` + ``reason``: a known gap; a failing gate is reported as xfail.

Smoke models (``smoke = true``) get integrity gates only. Integrity gates apply to
every model: every item has an outcome, distributions sum to 1, no NaN scores.
"""

from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from plainsight.errors import ConfigError

GATE_KEYS = {"above_chance", "min_accuracy", "max_gap_to_vision", "min_tv_to_blind", "expect", "reason"}
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


def _validate(data: dict[str, Any], path: Path) -> None:
    def check(table: dict[str, Any], where: str) -> None:
        for key, value in table.items():
            if isinstance(value, dict):
                continue
            if key not in GATE_KEYS:
                raise ConfigError(f"{path}: {where}: unknown gate {key!r}; known: {sorted(GATE_KEYS)}")
            if key == "expect" and value != "xfail":
                raise ConfigError(f"{path}: {where}: expect must be \"xfail\"")
        if table.get("expect") == "xfail" and not table.get("reason"):
            raise ConfigError(f"{path}: {where}: expect = \"xfail\" needs a reason")

    for role, table in data.get("defaults", {}).items():
        if role not in ROLES:
            raise ConfigError(f"{path}: [defaults.{role}]: role must be one of {ROLES}")
        check(table, f"[defaults.{role}]")
    for task, roles in data.get("tasks", {}).items():
        for role, table in roles.items():
            if role not in ROLES:
                raise ConfigError(f"{path}: [tasks.{task}.{role}]: role must be one of {ROLES}")
            check(table, f"[tasks.{task}.{role}]")
    for model, table in data.get("models", {}).items():
        check(table, f"[models.{model}]")
        for task, sub in table.items():
            if isinstance(sub, dict):
                check(sub, f"[models.{model}.{task}]")


@dataclass
class Verdict:
    status: str  # pass | fail | xfail | skip
    reasons: list[str] = field(default_factory=list)
    checks: dict[str, bool] = field(default_factory=dict)

    @property
    def reason(self) -> str:
        return "; ".join(self.reasons)


def integrity_failures(record: dict[str, Any]) -> list[str]:
    """Problems that make a record untrustworthy regardless of accuracy."""
    problems = []
    if record["n_items"] == 0:
        problems.append("no items were scored")
    if record["n_outcomes"] != record["n_items"]:
        problems.append(f"{record['n_items'] - record['n_outcomes']} item(s) have no outcome")
    if record.get("nan", 0):
        problems.append(f"{record['nan']} item(s) had NaN/inf scores")
    for key in ("answer_dist", "gold_dist"):
        total = sum(record[key].values())
        if record["n_valid"] and not math.isclose(total, 1.0, abs_tol=1e-5):  # records round to 6 decimals
            problems.append(f"{key} sums to {total:.6f}, not 1")
    if record["n_valid"] == 0 and record["n_items"]:
        problems.append("every item was invalid for this model")
    return problems


def judge(record: dict[str, Any], gates: dict[str, Any], *, smoke: bool) -> Verdict:
    """Apply integrity gates always, and accuracy gates unless smoke."""
    verdict = Verdict(status="pass")
    failures = integrity_failures(record)
    verdict.checks["integrity"] = not failures
    if not smoke and not failures:
        lo = record["ci95"][0]
        label = f"{record['task']} × {record['model']} ({record['role']})"
        if gates.get("above_chance", False):
            ok = lo > record["chance_floor"]
            verdict.checks["above_chance"] = ok
            if not ok:
                failures.append(
                    f"{label}: accuracy {record['accuracy']:.3f} (95% CI {lo:.3f}–{record['ci95'][1]:.3f}, "
                    f"n={record['n']}) is not above the chance floor {record['chance_floor']:.3f}"
                )
        if "min_accuracy" in gates:
            ok = record["accuracy"] >= float(gates["min_accuracy"])
            verdict.checks["min_accuracy"] = ok
            if not ok:
                failures.append(f"{label}: accuracy {record['accuracy']:.3f} < min_accuracy {gates['min_accuracy']}")
        if record["role"] == "vlm":
            gap_limit = gates.get("max_gap_to_vision")
            if gap_limit is not None and record.get("gap_to_vision") is not None:
                ok = record["gap_to_vision"] <= float(gap_limit)
                verdict.checks["max_gap_to_vision"] = ok
                if not ok:
                    failures.append(
                        f"{label}: trails its vision baseline {record['paired_with']} by "
                        f"{record['gap_to_vision']:.3f} (vision {record['vision_accuracy']:.3f} vs "
                        f"VLM {record['paired_vlm_accuracy']:.3f} on {record['paired_n']} shared items; "
                        f"McNemar p={record['mcnemar_p']:.3g}) > max_gap_to_vision {gap_limit}"
                    )
            tv_min = gates.get("min_tv_to_blind")
            if tv_min is not None and record.get("tv_to_blind") is not None:
                ok = record["tv_to_blind"] >= float(tv_min)
                verdict.checks["min_tv_to_blind"] = ok
                if not ok:
                    failures.append(
                        f"{label}: answers barely change without the image: TV(answers, blind answers) = "
                        f"{record['tv_to_blind']:.3f} < min_tv_to_blind {tv_min}"
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
