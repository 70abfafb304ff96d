"""Print the README's opening table from a run's results.json: per task, a VLM's paired readout, itself, its blind
run, TV to blind and the finding (plainsight.findings), with Wilson 95% intervals.

    .venv/bin/pytest evals && .venv/bin/python scripts/pocket_table.py reports/latest/results.json pocket-vlm
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from plainsight.findings import finding


def _cell(record: dict | None) -> str:
    if record is None or record.get("accuracy") is None:
        return "–"
    low, high = record["ci95"]
    return f"{record['accuracy']:.2f} [{low:.2f}, {high:.2f}]"


def main() -> None:
    path, vlm_model = Path(sys.argv[1]), sys.argv[2] if len(sys.argv) > 2 else "pocket-vlm"
    records = json.loads(path.read_text())["results"]
    by_key = {(r["task"], r["model"], r["role"]): r for r in records}
    print("| task | chance | own tower (readout) | VLM | blind (white images) | TV to blind | finding |")
    print("|---|---|---|---|---|---|---|")
    for task in sorted({r["task"] for r in records if r["model"] == vlm_model and r["role"] == "vlm"}):
        vlm = by_key[(task, vlm_model, "vlm")]
        vision = by_key.get((task, vlm.get("paired_with"), "vision"))
        blind = by_key.get((task, vlm_model, "blind"))
        label = finding(vlm, vision, blind).label
        print(f"| {task.replace('_', ' ')} | {vlm['chance_floor']:.2f} | {_cell(vision)} | {_cell(vlm)} | "
              f"{_cell(blind)} | {vlm['tv_to_blind']:.2f} | {label} |")  # fmt: skip


if __name__ == "__main__":
    main()
