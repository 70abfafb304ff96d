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


# -- loaders: nothing dropped without a count, no size taken on trust ------------------------------------------


def test_cvbench_rows_left_out_are_counted_by_reason_in_results_and_the_summary(pytester: pytest.Pytester):
    from test_depth import _cvbench_rows, _write_cvbench_jsonl

    rows = _cvbench_rows()
    no_task = {k: v for k, v in rows[0].items() if k != "task"} | {"idx": 3, "filename": "img/3D/depth/d.png"}
    lower = rows[0] | {"idx": 4, "task": "depth", "filename": "img/3D/depth/e.png"}
    _write_cvbench_jsonl(pytester.path / "data", rows + [no_task, lower])
    shutil.copy(REPO / "evals" / "test_depth.py", pytester.path / "test_depth.py")
    (pytester.path / "models.toml").write_text('[models.oracle]\nkind = "vlm"\nsource = "double:oracle"\n')
    result = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", f"--model-config={pytester.path / 'models.toml'}",
        f"--thresholds={REPO / 'fixtures' / 'thresholds.toml'}", f"--report-dir={pytester.path / 'report'}",
        f"--data-root={pytester.path / 'data'}", "--tasks=depth",
    )  # fmt: skip
    result.stdout.fnmatch_lines([
        "data: depth: 1 source rows left out (test_3d.jsonl: rows of task 'Distance' (not depth))",
        "data: depth: 1 source rows left out (test_3d.jsonl: rows with task 'depth' (not 'Depth'))",
        "data: depth: 1 source rows left out (test_3d.jsonl: rows without a 'task' field)",
    ])  # fmt: skip
    results = json.loads((pytester.path / "report" / "results.json").read_text())
    assert results["options"]["data_skipped"] == {"depth": {
        "test_3d.jsonl: rows of task 'Distance' (not depth)": 1, "test_3d.jsonl: rows with task 'depth' (not 'Depth')": 1,
        "test_3d.jsonl: rows without a 'task' field": 1,
    }}  # fmt: skip
    assert all(r["n"] == 2 for r in results["results"] if r["role"] == "vlm")


def test_an_spair_size_that_disagrees_with_its_jpeg_names_both_files(tmp_path):
    from native_fixtures import write_spair

    from plainsight.data.spair import read_pair
    from plainsight.errors import DataError

    write_spair(tmp_path)
    root = tmp_path / "SPair-71k"
    pair_file = next((root / "PairAnnotation" / "test").glob("*.json"))
    data = json.loads(pair_file.read_text())
    w, h = data["trg_imsize"][:2]
    data["trg_imsize"] = [w + 10, h, 3]
    pair_file.write_text(json.dumps(data))
    with pytest.raises(DataError, match=rf"{pair_file}: field 'trg_imsize' says {w + 10}x{h} but .*\.jpg is {w}x{h}"):
        read_pair(root, "test", pair_file.stem)


def test_bad_images_fail_the_pair_by_name_and_the_rest_of_the_task_is_scored_and_reported(pytester, embedded_data):
    """Probes 1 and 11: one truncated and one missing SPair JPEG. The task stays in every report, each bad file
    is named at once (terminal, report.md, the gate), every other item is scored."""
    data = pytester.path / "data"
    shutil.copytree(embedded_data / "SPair-71k", data / "SPair-71k")
    jpegs = sorted((data / "SPair-71k" / "JPEGImages").rglob("*.jpg"))
    truncated, missing = jpegs[0], jpegs[1]  # two chairs: both among the first 40 items
    truncated.write_bytes(truncated.read_bytes()[:400])
    missing.unlink()
    shutil.copy(REPO / "evals" / "test_correspondence.py", pytester.path / "test_correspondence.py")
    (pytester.path / "models.toml").write_text(MODELS.replace('[models.broken]\nkind = "encoder"\nsource = "./broken-dinov2"\n', ""))
    report = pytester.path / "report"
    result = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", f"--model-config={pytester.path / 'models.toml'}",
        f"--thresholds={REPO / 'fixtures' / 'thresholds.toml'}", f"--report-dir={report}",
        f"--data-root={data}", "--tasks=semantic_correspondence", "--limit=40",
    )  # fmt: skip
    result.assert_outcomes(failed=2)
    result.stdout.fnmatch_lines([f"data errors: semantic_correspondence: * item(s) not scored (counted wrong): *"])
    out = result.stdout.str()
    assert truncated.name in out and missing.name in out
    results = json.loads((report / "results.json").read_text())
    assert results["complete"] is True
    oracle = records(results)[("semantic_correspondence", "oracle", "vlm")]
    assert oracle["verdict"] == "fail" and truncated.name in oracle["reason"] and missing.name in oracle["reason"]
    assert oracle["data_errors"] > 0 and oracle["n"] == 40 and oracle["correct"] == 40 - oracle["data_errors"]
    markdown = (report / "report.md").read_text()
    assert "## Data errors" in markdown and truncated.name in markdown and missing.name in markdown
    lines = [json.loads(line) for line in (report / "items.jsonl").read_text().splitlines()]
    oracle_lines = [line for line in lines if (line["model"], line["role"]) == ("oracle", "vlm")]
    assert {line["reason"] for line in oracle_lines if not line["correct"]} == {"data_error"}
