"""The regression gate: a stored baseline, McNemar on shared items, not_comparable on changed fingerprints."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from plainsight.baseline import Baseline
from plainsight.errors import ConfigError
from plainsight.records import Record

REPO = Path(__file__).resolve().parents[1]
ITEMS = [f"i{k:03d}" for k in range(100)]


def write_baseline(folder: Path, correct: dict[str, bool], *, item_set="set1", prompt_fp="fp1") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    record = {"task": "low_level_matching", "model": "m", "role": "vlm", "item_set": item_set}
    results = {"schema": "plainsight.results/1", "results": [record],
               "prompt_fingerprints": {"low_level_matching": {"fingerprint": prompt_fp}}}  # fmt: skip
    (folder / "results.json").write_text(json.dumps(results))
    lines = [
        json.dumps({"task": "low_level_matching", "model": "m", "role": "vlm", "item": i, "correct": c})
        for i, c in correct.items()
    ]
    (folder / "items.jsonl").write_text("\n".join(lines) + "\n")
    return folder


def compare(tmp_path: Path, flipped: int, **kw):
    base = Baseline.load(write_baseline(tmp_path / "b", {i: True for i in ITEMS}))
    new = {i: k >= flipped for k, i in enumerate(ITEMS)}
    record = Record("low_level_matching", "m", "vlm", item_set=kw.pop("item_set", "set1"))
    return base.compare(record, new, prompt_fingerprint=kw.pop("prompt_fp", "fp1"), alpha=0.05, tolerance=0.02)


def test_three_flips_pass_and_twenty_fail_with_the_p_value(tmp_path: Path):
    ok = compare(tmp_path, 3)
    assert ok.status == "pass" and ok.stats["mcnemar_p"] == pytest.approx(0.125)  # 0.5**3
    bad = compare(tmp_path, 20)
    assert bad.status == "fail" and bad.stats["mcnemar_p"] == pytest.approx(0.5**20)
    assert "McNemar p=9.54e-07" in bad.reason and "20 now wrong" in bad.reason


def test_significant_but_within_tolerance_passes(tmp_path: Path):
    base = Baseline.load(write_baseline(tmp_path / "b", {i: True for i in ITEMS * 1}))
    new = {i: k >= 6 for k, i in enumerate(ITEMS)}  # p = 0.5**6 < 0.05, drop 0.06
    record = Record("low_level_matching", "m", "vlm", item_set="set1")
    assert base.compare(record, new, prompt_fingerprint="fp1", alpha=0.05, tolerance=0.10).status == "pass"
    assert base.compare(record, new, prompt_fingerprint="fp1", alpha=0.05, tolerance=0.02).status == "fail"


def test_changed_prompt_or_items_is_not_comparable(tmp_path: Path):
    assert compare(tmp_path, 0, prompt_fp="fp2").status == "not_comparable"
    assert "prompt changed" in compare(tmp_path, 0, prompt_fp="fp2").reason
    assert compare(tmp_path, 0, item_set="set2").status == "not_comparable"


def test_missing_and_malformed_baselines(tmp_path: Path):
    with pytest.raises(ConfigError, match="results.json not found"):
        Baseline.load(tmp_path / "none")
    folder = write_baseline(tmp_path / "b", {"i1": True})
    (folder / "items.jsonl").write_text('{"task": "t"}\n')
    with pytest.raises(ConfigError, match="line 1"):
        Baseline.load(folder)
    base = Baseline.load(write_baseline(tmp_path / "c", {"i1": True}))
    other = Record("depth", "m", "vlm", item_set="x")
    assert base.compare(other, {}, prompt_fingerprint=None, alpha=0.05, tolerance=0.0).status == "missing"


def models_toml(miss: list[str]) -> str:
    return f'[models.oracle]\nkind = "vlm"\nsource = "double:oracle"\noptions = {{ miss = {json.dumps(miss)} }}\n'


def run_evals(tmp_path: Path, miss: list[str], *extra: str) -> tuple[subprocess.CompletedProcess, dict]:
    (tmp_path / "models.toml").write_text(models_toml(miss))
    report = tmp_path / "report"
    cmd = [
        sys.executable, "-m", "pytest", str(REPO / "evals"), "-q", "-p", "no:cacheprovider", "-p", "no:xdist", "-rA",
        f"--model-config={tmp_path / 'models.toml'}", f"--report-dir={report}",
        f"--thresholds={REPO / 'fixtures' / 'thresholds.toml'}", f"--data-root={REPO / 'fixtures' / 'data'}",
        "--limit=100", "--tasks=low_level_matching", *extra,
    ]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path, timeout=600)
    return proc, json.loads((report / "results.json").read_text())


def test_swapping_in_a_worse_model_fails_the_gate(tmp_path: Path):
    items = subprocess.run(
        [
            str(Path(sys.executable).parent / "plainsight"),
            "items",
            "--task",
            "low_level_matching",
            "--limit",
            "100",
            "--json",
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
        check=True,
    ).stdout.splitlines()
    ids = [json.loads(line)["id"] for line in items]
    baseline = tmp_path / "baseline"
    proc, _ = run_evals(tmp_path, [], f"--update-baseline={baseline}")
    assert proc.returncode == 0, proc.stdout
    assert (baseline / "results.json").is_file() and (baseline / "items.jsonl").is_file()

    proc, results = run_evals(tmp_path, ids[:3], f"--baseline={baseline}")
    assert proc.returncode == 0, proc.stdout
    vlm = next(r for r in results["results"] if r["role"] == "vlm")
    assert vlm["baseline"]["status"] == "pass" and vlm["baseline"]["only_baseline_correct"] == 3

    proc, results = run_evals(tmp_path, ids[:20], f"--baseline={baseline}")
    assert proc.returncode == 1
    assert "one-sided McNemar p=9.54e-07" in proc.stdout
    vlm = next(r for r in results["results"] if r["role"] == "vlm")
    assert vlm["verdict"] == "fail" and vlm["baseline"]["status"] == "fail"

    proc, results = run_evals(tmp_path, [], f"--baseline={baseline}", "--seed=1")
    vlm = next(r for r in results["results"] if r["role"] == "vlm")
    assert vlm["verdict"] == "not_comparable" and "item set changed" in vlm["reason"]
    assert "1 skipped" in proc.stdout


def test_plainsight_compare_prints_paired_differences(tmp_path: Path, capsys):
    from plainsight.cli import main

    a = write_baseline(tmp_path / "a", {i: True for i in ITEMS})
    b = write_baseline(tmp_path / "b", {i: k >= 20 for k, i in enumerate(ITEMS)})
    assert main(["compare", str(a), str(b), "--json"]) == 0
    (row,) = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert row["n_shared"] == 100 and row["only_a_correct"] == 20 and row["only_b_correct"] == 0
    assert row["difference"] == pytest.approx(-0.2) and row["mcnemar_p"] == pytest.approx(2 * 0.5**20)
    assert main(["compare", str(a), str(b)]) == 0
    assert "McNemar p" in capsys.readouterr().out
    assert main(["compare", str(a), str(tmp_path / "missing")]) == 2
    assert "results.json not found" in capsys.readouterr().err
