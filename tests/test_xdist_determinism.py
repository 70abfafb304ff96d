"""Same seed → same results.json and items.jsonl, with or without xdist (timings aside)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

MODELS = """
[models.pixels]
kind = "encoder"
source = "pixels"

[models.oracle]
kind = "vlm"
source = "double:oracle"
pairs_with = "pixels"

[models.constant-a]
kind = "vlm"
source = "double:constant-a"
pairs_with = "pixels"
"""


def run(tmp: Path, name: str, *extra: str) -> tuple[dict, str]:
    report = tmp / name
    cmd = [
        sys.executable, "-m", "pytest", str(tmp / "evals"), "-q", "-p", "no:cacheprovider",
        f"--model-config={tmp / 'models.toml'}", f"--report-dir={report}",
        f"--thresholds={REPO / 'fixtures' / 'thresholds.toml'}",
        f"--data-root={REPO / 'fixtures' / 'data'}", "--limit=24", "--seed=3",
        "--tasks=low_level_matching,depth",  # depth: two workers share one probe training through the file lock
        *extra,
    ]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, timeout=600)
    assert proc.returncode in (0, 1), proc.stdout + proc.stderr  # constant-a fails its gates by design
    results = json.loads((report / "results.json").read_text())
    # Execution facts, not results: when it ran, and how many answers this run computed (under xdist an
    # encoder paired with two VLMs is read out once per VLM's worker).
    for key in ("created", "answers"):
        results.pop(key)
    for rec in results["results"]:
        rec.pop("seconds", None)
    results["options"].pop("models", None)
    return results, (report / "items.jsonl").read_text()


def test_xdist_and_serial_runs_write_the_same_records(tmp_path: Path):
    shutil.copytree(REPO / "evals", tmp_path / "evals")
    (tmp_path / "models.toml").write_text(MODELS)
    serial, serial_items = run(tmp_path, "serial", "-p", "no:xdist")
    parallel, parallel_items = run(tmp_path, "parallel", "-n", "2", "--dist", "loadgroup")
    assert len(serial["results"]) == 10  # per task: pixels vision; oracle and constant-a vlm + blind
    assert serial == parallel
    assert serial_items == parallel_items and serial_items.count("\n") == 24 * 10


def test_group_of_a_test_is_its_models_group():
    from plainsight.models.registry import ModelEntry
    from plainsight.plugin import group_of_nodeid

    entries = {
        "dino": ModelEntry(name="dino", kind="encoder", source="pixels"),
        "llava-1.5-7b": ModelEntry(name="llava-1.5-7b", kind="vlm", source="double:oracle", pairs_with="dino"),
        "pixels": ModelEntry(name="pixels", kind="encoder", source="pixels"),
    }
    tasks = ["depth", "object_3d", "semantic_correspondence"]
    assert group_of_nodeid("evals/test_object_3d.py::test_vision[object_3d-dino]", entries, tasks) == "llava-1.5-7b"
    assert (
        group_of_nodeid("evals/test_object_3d.py::test_vlm[object_3d-llava-1.5-7b]", entries, tasks) == "llava-1.5-7b"
    )
    assert group_of_nodeid("evals/test_depth.py::test_vision[depth-pixels]", entries, tasks) == "pixels"
    assert group_of_nodeid("tests/test_x.py::test_y[a-b]", entries, tasks) == "tests/test_x.py::test_y[a-b]"
    assert group_of_nodeid("evals/t.py::test_vlm[depth-x]@grp", entries, tasks) == "grp"


def test_loadgroup_keeps_a_vlm_and_its_encoder_on_one_worker(tmp_path):
    """Under -n 2 --dist loadgroup the paired encoder's readout is computed once, beside its VLM (no duplicate work)."""
    report = tmp_path / "report"
    cmd = [sys.executable, "-m", "pytest", str(REPO / "evals"), "-q", "-p", "no:cacheprovider", "-n", "2",
           "--dist", "loadgroup", "-k", "object_3d", f"--report-dir={report}", "--models", "pixels,tiny-dinov2,tiny-llava"]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    results = json.loads((report / "results.json").read_text())
    # pixels, tiny-dinov2, tiny-llava and its blind run: 4 role runs of 120 items, each computed exactly once
    assert results["answers"] == {"computed": 480, "reused": 0}
