"""Many runners and interrupted runs: `--shard i/n` + `plainsight merge`, and `--resume` after a kill.

Both are checked against an uninterrupted, unsharded run of the same matrix: the records must
be the same (timings aside), and a resumed run must not compute again what the killed one stored.
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from plainsight.errors import PlainsightError
from plainsight.merge import merge_runs
from plainsight.shards import parse_shard, shard_items

pytest_plugins = ["pytester"]

REPO = Path(__file__).resolve().parents[1]
EXE = Path(sys.executable).parent / "plainsight"
TIMING = {"seconds"}

MODELS = """
[models.pixels]
kind = "encoder"
source = "pixels"

[models.oracle]
kind = "vlm"
source = "double:oracle"
pairs_with = "pixels"
options = {{ delay = {delay}, miss = ["v_astronaut-1-2-p0", "mochi-pst_shapenet004"] }}

[models.constant-a]
kind = "vlm"
source = "double:constant-a"
pairs_with = "pixels"
"""

THRESHOLDS = """
[defaults.vision]
above_chance = true
[defaults.vlm]
above_chance = true
max_gap_to_vision = 0.10
min_tv_to_blind = 0.05
[models.pixels.object_3d]
above_chance = false
"""


@pytest.fixture
def project(pytester: pytest.Pytester, embedded_data: Path) -> pytest.Pytester:
    for module in ("test_correspondence.py", "test_object_3d.py"):
        shutil.copy(REPO / "evals" / module, pytester.path / module)
    (pytester.path / "models.toml").write_text(MODELS.format(delay=0.0))
    (pytester.path / "thresholds.toml").write_text(THRESHOLDS)
    return pytester


def _args(p: pytest.Pytester, report: str, *extra: str) -> list[str]:
    return [
        "-p", "no:cacheprovider", "-p", "no:randomly", f"--model-config={p.path / 'models.toml'}",
        f"--thresholds={p.path / 'thresholds.toml'}", f"--report-dir={p.path / report}",
        "--tasks=low_level_matching,object_3d", "--limit=30", *extra,
    ]  # fmt: skip


def _records(folder: Path) -> dict[tuple, dict]:
    results = json.loads((folder / "results.json").read_text())
    return {
        (r["task"], r["model"], r["role"]): {k: v for k, v in r.items() if k not in TIMING} for r in results["results"]
    }


def test_shard_split_is_disjoint_balanced_and_complete():
    items = list(range(31))
    parts = [shard_items(items, (i, 3)) for i in (1, 2, 3)]
    assert sorted(x for part in parts for x in part) == items
    assert [len(p) for p in parts] == [11, 10, 10]
    assert shard_items(items, None) == items
    assert parse_shard("2/3") == (2, 3)
    for bad in ("0/3", "4/3", "3", "a/b", "1/0"):
        with pytest.raises(PlainsightError, match="expected i/n"):
            parse_shard(bad)


def test_merging_three_shards_equals_the_unsharded_run(project: pytest.Pytester):
    whole = project.runpytest_subprocess(*_args(project, "whole"))
    assert whole.ret == pytest.ExitCode.TESTS_FAILED  # constant-a fails its gates: the merge must too
    for i in (1, 2, 3):
        shard = project.runpytest_subprocess(*_args(project, f"shard{i}", f"--shard={i}/3"))
        assert shard.ret == pytest.ExitCode.OK  # shards record, they do not gate
        records = _records(project.path / f"shard{i}")
        assert all(
            r["verdict"] == "skip" and f"shard {i}/3" in r["reason"] for r in records.values() if r["role"] != "blind"
        )
    merged_dir = project.path / "merged"
    out = subprocess.run(
        [str(EXE), "merge", *(str(project.path / f"shard{i}") for i in (3, 1, 2)), "--out", str(merged_dir),
         "--thresholds", str(project.path / "thresholds.toml")], capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert out.returncode == 1, out.stdout + out.stderr  # the same failures as the unsharded run
    assert _records(merged_dir) == _records(project.path / "whole")
    assert (merged_dir / "items.jsonl").read_text() == (project.path / "whole" / "items.jsonl").read_text()
    failing = {k for k, r in _records(merged_dir).items() if r["verdict"] == "fail"}
    assert {("low_level_matching", "constant-a", "vlm"), ("object_3d", "constant-a", "vlm")} <= failing
    assert "FAIL low_level_matching × constant-a (vlm)" in out.stdout

    with pytest.raises(PlainsightError, match=r"missing shard\(s\) 2/3"):
        merge_runs([project.path / "shard1", project.path / "shard3"], project.path / "thresholds.toml")
    with pytest.raises(PlainsightError, match="shard 1/3 given twice"):
        merge_runs([project.path / f"shard{i}" for i in (1, 1, 2, 3)], project.path / "thresholds.toml")
    with pytest.raises(PlainsightError, match="not a shard run"):
        merge_runs([project.path / "whole"], project.path / "thresholds.toml")

    # The regression gate applies to merged shards as to one run: a baseline in which constant-a got
    # every item right makes both fail that pair the same way (gates.gate_record, one code path).
    baseline = project.path / "baseline"
    baseline.mkdir()
    shutil.copy(project.path / "whole" / "results.json", baseline / "results.json")
    rows = [json.loads(line) for line in (project.path / "whole" / "items.jsonl").read_text().splitlines()]
    perfect = [{**r, "correct": True} if (r["model"], r["role"]) == ("constant-a", "vlm") else r for r in rows]
    (baseline / "items.jsonl").write_text("".join(json.dumps(r) + "\n" for r in perfect))
    gated = project.runpytest_subprocess(*_args(project, "gated", f"--baseline={baseline}"))
    assert gated.ret == pytest.ExitCode.TESTS_FAILED
    metadata, merged, _ = merge_runs([project.path / f"shard{i}" for i in (1, 2, 3)], project.path / "thresholds.toml",
                                     baseline_dir=baseline)  # fmt: skip
    by_key = {r.key: {k: v for k, v in r.to_json().items() if k not in TIMING} for r in merged}
    assert by_key == _records(project.path / "gated")
    constant = by_key[("low_level_matching", "constant-a", "vlm")]
    assert constant["verdict"] == "fail" and "worse than the baseline" in constant["reason"]
    assert constant["baseline"]["status"] == "fail" and constant["baseline"]["only_baseline_correct"] >= 20
    assert by_key[("low_level_matching", "oracle", "vlm")]["baseline"]["status"] == "pass"


def _item_lines(folder: Path) -> int:
    total = 0
    for path in folder.glob("items*.jsonl"):
        total += sum(1 for line in path.read_text().splitlines() if line.endswith("}"))
    return total


def test_a_killed_run_resumes_to_the_same_results_without_recomputing(project: pytest.Pytester):
    (project.path / "models.toml").write_text(MODELS.format(delay=0.05))
    args = _args(project, "run", "-k", "oracle or pixels")
    reference = project.runpytest_subprocess(*_args(project, "reference", "-k", "oracle or pixels"))
    assert reference.ret == pytest.ExitCode.OK
    total = _item_lines(project.path / "reference")

    proc = subprocess.Popen([sys.executable, "-m", "pytest", *args], cwd=project.path,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    deadline = time.monotonic() + 240
    while _item_lines(project.path / "run") < total // 2 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert proc.poll() is None, "the run finished before it could be interrupted"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    stored = _item_lines(project.path / "run")
    assert 0 < stored < total
    partial = json.loads((project.path / "run" / "results.json").read_text())  # readable, marked incomplete
    assert partial["complete"] is False and partial["results"]

    resumed = project.runpytest_subprocess(*args, "--resume")
    assert resumed.ret == pytest.ExitCode.OK
    results = json.loads((project.path / "run" / "results.json").read_text())
    assert results["complete"] is True
    assert results["answers"] == {"computed": total - stored, "reused": stored}
    assert _records(project.path / "run") == _records(project.path / "reference")
    assert (project.path / "run" / "items.jsonl").read_text() == (
        project.path / "reference" / "items.jsonl"
    ).read_text()
