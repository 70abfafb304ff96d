"""The default run's pocket VLM shows what the README's opening table says (three of its rows, re-measured)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from plainsight.findings import OVERLOOKS, USES_IMAGE, findings

REPO = Path(__file__).resolve().parents[1]

# task -> (finding, VLM accuracy, own tower accuracy, TV to blind at most, verdict): the README's table.
EXPECTED = {
    "depth": (OVERLOOKS, 0.5, 0.6875, 0.05, "xfail"),
    "functional_correspondence": (OVERLOOKS, 0.1875, 0.883929, 0.2, "xfail"),
    "art_style": (USES_IMAGE, 0.716667, 0.808333, 1.0, "pass"),
}


def test_the_pocket_vlm_overlooks_its_encoder_on_two_tasks_and_uses_the_image_on_art_style(tmp_path):
    report = tmp_path / "report"
    cmd = [sys.executable, "-m", "pytest", str(REPO / "evals"), "-q", "-p", "no:cacheprovider", "-p", "no:xdist",
           "--models", "pocket-vlm", "-k", " or ".join(EXPECTED), f"--report-dir={report}"]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, timeout=600)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    records = json.loads((report / "results.json").read_text())["results"]
    by_task = {f.task: f for f in findings(records)}
    assert set(by_task) == set(EXPECTED)
    for task, (label, vlm_acc, tower_acc, tv_max, verdict) in EXPECTED.items():
        vlm = next(r for r in records if r["task"] == task and r["role"] == "vlm")
        assert by_task[task].label == label, (task, by_task[task].why)
        assert abs(vlm["accuracy"] - vlm_acc) < 1e-6 and abs(vlm["vision_accuracy"] - tower_acc) < 1e-6, task
        assert vlm["tv_to_blind"] <= tv_max and vlm["verdict"] == verdict, (task, vlm["tv_to_blind"], vlm["verdict"])
