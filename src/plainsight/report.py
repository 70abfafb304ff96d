"""Run outputs: results.json, items.jsonl, report.md and the terminal table.

The writers take :class:`~plainsight.records.Record` objects; the tables and sections are drawn
from their results.json form (``Record.to_json()``), the same documents report.html and
``plainsight merge`` read back from disk.

``items.jsonl`` lines are appended as items finish (one part file per xdist
worker, so workers never interleave writes); at the end of the session the
controller sorts all parts into one ``items.jsonl``. Writes of the final files
are atomic (write to a temporary file, then rename).
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import tempfile
from datetime import datetime, timezone
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterable

from plainsight.records import SCHEMA, Record

RECORD_KEY = ("task", "model", "role")
TIMING_FIELDS = ("seconds",)


def atomic_write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    os.chmod(tmp, 0o644)  # mkstemp makes it private; reports are for reading (CI artifacts)
    os.replace(tmp, path)


class ReportDirLock:
    """One run per report dir: a file lock held for the run, with the holder's pid beside it.

    A second run into a locked dir raises pytest.UsageError naming the holder and the fix. The lock
    is the OS's (fcntl / msvcrt, through filelock): a killed run releases it with its process.
    """

    LOCK, OWNER = ".plainsight.lock", ".plainsight.owner"

    def __init__(self, report_dir: Path):
        from filelock import FileLock

        self.report_dir = Path(report_dir)
        self._lock = FileLock(str(self.report_dir / self.LOCK))

    def acquire(self) -> None:
        import pytest
        from filelock import Timeout

        self.report_dir.mkdir(parents=True, exist_ok=True)
        try:
            self._lock.acquire(timeout=0)
        except Timeout:
            owner = self.report_dir / self.OWNER
            holder = owner.read_text().strip() if owner.is_file() else "another process"
            raise pytest.UsageError(
                f"{self.report_dir} is in use by another plainsight run ({holder}); wait for it, or pass "
                f"--report-dir DIR to write this run's report elsewhere"
            ) from None
        started = datetime.now(timezone.utc).isoformat(timespec="seconds")
        (self.report_dir / self.OWNER).write_text(f"pid {os.getpid()}, started {started}\n")

    def release(self) -> None:
        (self.report_dir / self.OWNER).unlink(missing_ok=True)
        self._lock.release()


class ItemLog:
    """Append-only per-worker item log: one JSON line per outcome, flushed as it is written."""

    def __init__(self, report_dir: Path, worker: str):
        report_dir.mkdir(parents=True, exist_ok=True)
        self.path = report_dir / f"items.part-{worker}.jsonl"
        self._fh = self.path.open("a")

    def write(self, line: dict[str, Any]) -> None:
        self._fh.write(json.dumps(line, sort_keys=True) + "\n")
        self._fh.flush()

    def close(self) -> None:
        self._fh.close()


def _read_item_lines(path: Path) -> list[dict[str, Any]]:
    """The JSON lines of an item log; a line a killed process left half-written is skipped."""
    rows = []
    for raw in path.read_text().splitlines():
        if raw.strip():
            try:
                rows.append(json.loads(raw))
            except json.JSONDecodeError:
                continue
    return rows


def consolidate_item_logs(report_dir: Path) -> int:
    """items.jsonl ∪ the part files an interrupted run left → items.jsonl (atomically); parts removed."""
    lines: dict[tuple[str, str, str, str], str] = {}
    sources = [report_dir / "items.jsonl"] if (report_dir / "items.jsonl").is_file() else []
    parts = sorted(report_dir.glob("items.part-*.jsonl"))
    for path in sources + parts:
        for rec in _read_item_lines(path):
            lines[(rec["task"], rec["model"], rec["role"], rec["item"])] = json.dumps(rec, sort_keys=True)
    if lines:
        atomic_write(report_dir / "items.jsonl", "".join(lines[k] + "\n" for k in sorted(lines)))
    for part in parts:
        part.unlink()
    return len(lines)


def stored_answers(report_dir: Path) -> dict[str, dict[str, Any]]:
    """Answer key → items.jsonl line, for ``--resume`` (lines without a key, from older runs, are not reused)."""
    path = report_dir / "items.jsonl"
    if not path.is_file():
        return {}
    return {rec["key"]: rec for rec in _read_item_lines(path) if rec.get("key")}


def merge_item_logs(report_dir: Path) -> int:
    """Combine the worker part files into a sorted, de-duplicated items.jsonl; returns the line count."""
    lines: dict[tuple[str, str, str, str], str] = {}
    parts = sorted(report_dir.glob("items.part-*.jsonl"))
    for part in parts:
        for rec in _read_item_lines(part):
            lines[(rec["task"], rec["model"], rec["role"], rec["item"])] = json.dumps(rec, sort_keys=True)
    atomic_write(report_dir / "items.jsonl", "".join(lines[k] + "\n" for k in sorted(lines)))
    for part in parts:
        part.unlink()
    return len(lines)


def run_metadata(*, seed: int, options: dict[str, Any], fingerprints: dict[str, Any]) -> dict[str, Any]:
    versions = {"python": platform.python_version()}
    for module in ("torch", "transformers", "timm", "plainsight"):
        try:
            versions[module] = __import__(module).__version__
        except Exception:  # noqa: BLE001 - a missing optional package is recorded as absent
            versions[module] = None
    return {
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "seed": seed,
        "versions": versions,
        "git_commit": _git_commit(),
        "options": options,
        **fingerprints,
    }


@lru_cache(maxsize=1)  # the report is rewritten after every test; the commit does not change during a run
def _git_commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, cwd=Path(__file__).parent
        )
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def sort_records(records: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    unique = {tuple(r[k] for k in RECORD_KEY): r for r in records}
    return [unique[k] for k in sorted(unique)]


def write_results(report_dir: Path, metadata: dict[str, Any], records: list[Record]) -> Path:
    """results.json: the run's metadata and every record, one per (task, model, role), sorted."""
    payload = {"schema": SCHEMA, **metadata, "results": sort_records(r.to_json() for r in records)}
    path = report_dir / "results.json"
    atomic_write(path, json.dumps(payload, indent=2, sort_keys=True) + "\n")
    return path


def _pct(x: float | None) -> str:
    return "–" if x is None else f"{x:.3f}"


def summary_rows(records: list[dict[str, Any]]) -> list[list[str]]:
    rows = []
    for r in sort_records(records):
        rows.append(
            [
                r["task"],
                r["model"],
                r["role"],
                str(r["n"]),
                _pct(r["accuracy"]),
                "–" if r["ci95"][0] is None else f"[{r['ci95'][0]:.2f}, {r['ci95'][1]:.2f}]",
                _pct(r["chance_floor"]),
                _pct(r["tv_to_gold"]),
                _pct(r.get("tv_to_blind")),
                str(r.get("ties", 0)),
                str(r.get("parse_failures", 0)),
                str(r.get("invalid", 0)),
                r.get("verdict", ""),
            ]
        )
    return rows


SUMMARY_HEADER = [
    "task", "model", "role", "n", "acc", "95% CI", "chance", "TV gold", "TV blind", "ties", "unparsed", "invalid", "verdict",
]  # fmt: skip


def format_table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(header)]
    line = lambda cells: "  ".join(c.ljust(w) for c, w in zip(cells, widths))  # noqa: E731
    return "\n".join([line(header), line(["-" * w for w in widths]), *(line(r) for r in rows)])


def _mean(values: list[float] | None) -> float | None:
    return sum(values) / len(values) if values else None


TUNING_HEADER = [
    "task", "tuned", "original", "method", "component", "steps", "tokens / rank", "n", "original acc", "tuned acc",
    "only tuned / only original", "McNemar p", "blind: original → tuned", "image attention: original → tuned",
]  # fmt: skip


def tuning_rows(records: list[dict[str, Any]]) -> list[list[str]]:
    """One row per tuned VLM record: the tuning, and the paired comparison with its original on the same items."""
    rows = []
    for r in sort_records(records):
        if r["role"] != "vlm" or not r.get("vs_base"):
            continue
        t, v = r.get("tuning", {}), r["vs_base"]
        size = t.get("tokens") if t.get("method") == "prompt" else t.get("rank")
        rows.append([
            r["task"], r["model"], v["base"], str(t.get("method")), str(t.get("component")), str(t.get("steps")),
            str(size), str(v["paired_n"]), _pct(v["base_accuracy"]), _pct(v["accuracy"]),
            f"{v['only_tuned_correct']} / {v['only_base_correct']}",
            "–" if v["mcnemar_p"] is None else f"{v['mcnemar_p']:.2g}",
            f"{_pct(v['base_blind_accuracy'])} → {_pct(r.get('blind_accuracy'))}",
            f"{_pct(_mean(v.get('base_image_attention')))} → {_pct(_mean(v.get('image_attention')))}",
        ])  # fmt: skip
    return rows


def attention_series(records: list[dict[str, Any]]) -> list[tuple[str, str, str, list[float]]]:
    """(task, tuned model, "original" | "tuned", per-layer image-attention share) for each tuned record."""
    out = []
    for r in sort_records(records):
        v = r.get("vs_base") if r["role"] == "vlm" else None
        for label, series in (
            ("original", (v or {}).get("base_image_attention")),
            ("tuned", (v or {}).get("image_attention")),
        ):
            if series:
                out.append((r["task"], r["model"], label, series))
    return out


def tuning_section(records: list[dict[str, Any]]) -> list[str]:
    """report.md lines: each tuned model beside its original on the same held-out items."""
    rows = tuning_rows(records)
    if not rows:
        return []
    out = ["", "## Tuned vs original (same held-out items)", "", "| " + " | ".join(TUNING_HEADER) + " |",
           "|" + "---|" * len(TUNING_HEADER)]  # fmt: skip
    out += ["| " + " | ".join(row) + " |" for row in rows]
    out += ["", "Image attention: the share of the answer position's attention (mean over heads) that falls on image "
            "tokens, averaged over layers; per layer:", ""]  # fmt: skip
    for task, model, label, series in attention_series(records):
        layers = ", ".join(f"{i}: {x:.3f}" for i, x in enumerate(series))
        out.append(f"- **{task} × {model}** ({label}): {layers}")
    return out


def data_faults_by_task(records: list[dict[str, Any]]) -> dict[str, tuple[int, list[str]]]:
    """task → (items not scored for bad data, every fault: file and reason); a task's roles meet the same ones."""
    faults: dict[str, tuple[int, set[str]]] = {}
    for r in records:
        if r.get("data_errors"):
            count, files = faults.get(r["task"], (0, set()))
            faults[r["task"]] = (max(count, r["data_errors"]), files | set(r.get("data_error_files") or []))
    return {task: (count, sorted(files)) for task, (count, files) in sorted(faults.items())}


def findings_section(records: list[dict[str, Any]]) -> list[str]:
    """report.md's list of ``plainsight.findings`` labels (non-smoke VLMs with a blind run), with the intervals."""
    from plainsight.findings import findings

    rows = [f for f in findings(sort_records(records)) if not any(
        r.get("smoke") for r in records if r["model"] == f.vlm and r["role"] == "vlm")]  # fmt: skip
    if not rows:
        return []
    out = ["## The paper's finding (Wilson 95% intervals)", ""]
    out += [f"- **{f.task} × {f.vlm}**: {f.label} — {f.why}" for f in rows]
    return out + [""]


def write_markdown(report_dir: Path, metadata: dict[str, Any], records: list[Record]) -> Path:
    """report.md: per task, each VLM beside its vision baseline and blind control, then every record."""
    documents = [r.to_json() for r in records]  # the sections read the results.json form
    out = ["# plainsight report", ""]
    out.append(f"Created {metadata.get('created')} · seed {metadata.get('seed')} · commit {metadata.get('git_commit')}")
    out.append("")
    out.append("## Vision readout vs VLM vs blind")
    out.append("")
    out.append(
        "| task | VLM | vision baseline | vision acc | VLM acc | blind acc | chance floor | TV(pred, gold) | TV(pred, blind) | verdict |"
    )
    out.append("|---|---|---|---|---|---|---|---|---|---|")
    for r in sort_records(documents):
        if r["role"] != "vlm":
            continue
        out.append(
            f"| {r['task']} | {r['model']} | {r.get('paired_with') or '–'} | {_pct(r.get('vision_accuracy'))} | "
            f"{_pct(r['accuracy'])} | {_pct(r.get('blind_accuracy'))} | {_pct(r['chance_floor'])} | "
            f"{_pct(r['tv_to_gold'])} | {_pct(r.get('tv_to_blind'))} | {r.get('verdict', '')} |"
        )
    out.append("")
    out += findings_section(documents)
    out.append("## All records")
    out.append("")
    out.append("| " + " | ".join(SUMMARY_HEADER) + " |")
    out.append("|" + "---|" * len(SUMMARY_HEADER))
    for row in summary_rows(documents):
        out.append("| " + " | ".join(row) + " |")
    probes = [r for r in sort_records(documents) if r.get("layer_series")]
    if probes:
        out += ["", "## Layer-wise readout (accuracy per point: pre-LLM, then each LLM layer)", ""]
        for r in probes:
            points = ", ".join(f"{p['layer']}: {_pct(p['accuracy'])}" for p in r["layer_series"])
            out.append(f"- **{r['task']} × {r['model']}**: {points} (best {r['best_layer']}, n={r['n']})")
    out += tuning_section(documents)
    faults = data_faults_by_task(documents)
    if faults:
        out += ["", "## Data errors (items not scored: each counts wrong)", ""]
        for task, (count, files) in faults.items():
            out.append(f"- **{task}**: {count} item(s): " + "; ".join(files))
    failing = [r for r in sort_records(documents) if r.get("verdict") in ("fail", "xfail", "error")]
    if failing:
        out.append("")
        out.append("## Gate messages")
        out.append("")
        for r in failing:
            out.append(f"- **{r['task']} × {r['model']} ({r['role']}) — {r['verdict']}**: {r.get('reason', '')}")
    out.append("")
    out.append(
        "Accuracy is over every item of the task and counts abstentions (ties, NaN, unparseable answers) and "
        "items invalid for a model (an image or marker its preprocessing would crop, unreadable markers) as "
        "wrong, so all roles are measured on the same items; `invalid` counts the latter, and results.json "
        "gives `n_valid` and `accuracy_valid` beside them. The gap to vision and McNemar use the items valid "
        "for both. TV(P, Q) = ½ Σ |P(x) − Q(x)| over the answers to scored items."
    )
    path = report_dir / "report.md"
    atomic_write(path, "\n".join(out) + "\n")
    return path
