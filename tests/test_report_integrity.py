"""The report tells the truth about every run (issue 18): failed pairs are in it, `complete` means complete,
a run that fails throughout still replaces the last report, and one report dir holds one run at a time."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from plainsight.report import ReportDirLock

pytest_plugins = ["pytester"]

REPO = Path(__file__).resolve().parents[1]

MODELS = """
[models.pixels]
kind = "encoder"
source = "pixels"

[models.broken]
kind = "encoder"
source = "./broken-dinov2"

[models.oracle]
kind = "vlm"
source = "double:oracle"
pairs_with = "pixels"
"""


@pytest.fixture
def project(pytester: pytest.Pytester) -> pytest.Pytester:
    shutil.copy(REPO / "evals" / "test_correspondence.py", pytester.path / "test_correspondence.py")
    (pytester.path / "models.toml").write_text(MODELS)
    broken = pytester.path / "broken-dinov2"
    shutil.copytree(REPO / "fixtures" / "models" / "tiny-dinov2", broken)
    weights = broken / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])  # a truncated download
    return pytester


def run(pytester: pytest.Pytester, *extra: str, report: str = "report") -> tuple[pytest.RunResult, dict]:
    result = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", f"--model-config={pytester.path / 'models.toml'}",
        f"--thresholds={REPO / 'fixtures' / 'thresholds.toml'}", f"--report-dir={pytester.path / report}",
        f"--data-root={REPO / 'fixtures' / 'data'}", "--limit=8", "--tasks=low_level_matching", *extra,
    )  # fmt: skip
    path = pytester.path / report / "results.json"
    return result, json.loads(path.read_text()) if path.is_file() else {}


def records(results: dict) -> dict:
    return {(r["task"], r["model"], r["role"]): r for r in results["results"]}


def test_a_model_that_cannot_load_is_one_line_and_an_error_record(project):
    result, results = run(project)
    result.assert_outcomes(passed=2, failed=1)
    weights = project.path / "broken-dinov2" / "model.safetensors"
    result.stdout.fnmatch_lines([f"*[[]models.broken[]] {weights}: cannot be loaded (SafetensorError: *"])
    assert "Traceback" not in result.stdout.str()
    broken = records(results)[("low_level_matching", "broken", "vision")]
    assert broken["verdict"] == "error" and str(weights) in broken["reason"] and "SafetensorError" in broken["reason"]
    assert records(results)[("low_level_matching", "oracle", "vlm")]["verdict"] == "pass"
    assert results["complete"] is True
    assert "broken" in (project.path / "report" / "report.md").read_text()


def test_a_run_in_which_every_test_fails_still_replaces_the_report(project):
    _, good = run(project, "--models=pixels")
    assert good["results"] and all(r["model"] == "pixels" for r in good["results"])
    result, failed = run(project, "--models=broken")
    result.assert_outcomes(failed=1)
    assert [(r["model"], r["verdict"]) for r in failed["results"]] == [("broken", "error")]
    assert failed["complete"] is True
    assert (project.path / "report" / "items.jsonl").read_text() == ""  # the earlier run's items are gone too


def test_an_interrupted_run_is_not_complete(project):
    (project.path / "conftest.py").write_text(
        "def pytest_runtest_logfinish(nodeid, location):\n    raise KeyboardInterrupt\n"  # Ctrl-C after one test
    )
    result, results = run(project, "--models=pixels")
    assert result.ret == pytest.ExitCode.INTERRUPTED
    assert len(results["results"]) == 1 and results["complete"] is False


def test_stopping_at_the_first_failure_is_not_complete(project):
    result, results = run(project, "-x")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    assert results["complete"] is False


def test_a_second_run_into_a_held_report_dir_is_refused_and_touches_nothing(project):
    report = project.path / "report"
    report.mkdir()
    (report / "results.json").write_text('{"sentinel": true}')
    (report / "items.part-gw0.jsonl").write_text('{"another": "run"}\n')
    lock = ReportDirLock(report)
    lock.acquire()
    try:
        result, results = run(project, "--models=pixels")
        assert result.ret == pytest.ExitCode.USAGE_ERROR
        result.stderr.fnmatch_lines([f"*{report} is in use by another plainsight run (pid {os.getpid()}, started *"
                                     "*--report-dir DIR*"])  # fmt: skip
        assert results == {"sentinel": True}
        assert (report / "items.part-gw0.jsonl").read_text() == '{"another": "run"}\n'
        # A pytest session that collects no eval test does not need (or take) the report dir.
        (project.path / "test_plain.py").write_text("def test_plain():\n    pass\n")
        plain = project.runpytest_subprocess("-p", "no:cacheprovider", f"--report-dir={report}", "test_plain.py")
        plain.assert_outcomes(passed=1)
    finally:
        lock.release()
    result, results = run(project, "--models=pixels")
    assert result.ret == pytest.ExitCode.OK and results["complete"] is True
    assert not (report / ReportDirLock.OWNER).exists()
