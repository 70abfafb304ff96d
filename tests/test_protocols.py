"""--protocol paper: the paper's formats per task (BLINK where present), scoring and image settings, and the
run's metadata naming what actually ran."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from native_fixtures import write_blink
from test_blink import _marked_row

from plainsight.errors import ConfigError
from plainsight.models.registry import ModelEntry
from plainsight.protocols import get_protocol, task_options_with
from plainsight.runner import Runner, RunOptions

pytest_plugins = ["pytester"]

REPO = Path(__file__).resolve().parents[1]
CORRESPONDENCE = {
    "semantic_correspondence": ("Semantic_Correspondence", "spair"),
    "functional_correspondence": ("Functional_Correspondence", "funkpoint"),
    "low_level_matching": ("Visual_Correspondence", "hpatches"),
}


@pytest.fixture(scope="module")
def both_formats(tmp_path_factory, embedded_data: Path) -> Path:
    """SPair, FunKPoint and HPatches (the embedded twins) beside BLINK val of all three correspondence subtasks."""
    root = tmp_path_factory.mktemp("data")
    for name in ("SPair-71k", "FunKPoint", "hpatches-sequences-release"):
        (root / name).symlink_to(embedded_data / name)
    for subtask, _ in CORRESPONDENCE.values():
        write_blink(root, subtask, [_marked_row(f"val_{subtask}_{k}", "(C)") for k in range(1, 4)])
    return root


@pytest.mark.parametrize("task_id", sorted(CORRESPONDENCE))
def test_paper_reads_blink_for_every_correspondence_task_and_default_keeps_the_task_order(task_id, both_formats):
    subtask, native = CORRESPONDENCE[task_id]
    paper = Runner(RunOptions(data_root=both_formats, protocol="paper"), {})
    default = Runner(RunOptions(data_root=both_formats), {})
    assert paper.data_source(task_id) == "blink"
    assert [it.id for it in paper.items(task_id)] == [f"val_{subtask}_{k}" for k in range(1, 4)]
    assert default.data_source(task_id) == native and len(default.items(task_id)) > 3


def test_paper_falls_back_where_blink_is_absent_and_says_so(embedded_data: Path):
    """The embedded data has no BLINK Visual_Correspondence: low-level matching reads HPatches, named as such."""
    runner = Runner(RunOptions(data_root=embedded_data, protocol="paper"), {})
    assert runner.data_source("low_level_matching") == "hpatches"
    assert runner.data_source("semantic_correspondence") == "blink"
    assert runner.data_source("object_3d") == "mochi"
    assert {len(it.images) for it in runner.items("object_3d")} == {3}


def test_an_explicit_data_source_still_wins_and_is_strict(both_formats):
    runner = Runner(RunOptions(data_root=both_formats, source="spair", protocol="paper"), {})
    assert runner.data_source("semantic_correspondence") == "spair"


def test_paper_fixes_every_vlm_setting_and_leaves_encoders():
    paper = get_protocol("paper")
    vlm = ModelEntry("v", "vlm", "double:oracle", image_mode="separate", scoring="generate", image_resize="processor")
    fixed = paper.vlm_entry(vlm)
    assert (fixed.image_mode, fixed.scoring, fixed.image_resize) == ("side_by_side", "letters", "letterbox")
    encoder = ModelEntry("e", "encoder", "pixels")
    assert paper.vlm_entry(encoder) is encoder
    assert get_protocol("default").vlm_entry(vlm) == vlm


def test_task_options_merge_and_contradictions_are_errors():
    paper = get_protocol("paper")
    assert task_options_with(paper, {"depth": {"x": "1"}}) == {"object_3d": {"n_objects": "3"}, "depth": {"x": "1"}}
    with pytest.raises(ConfigError, match="contradicts --protocol paper"):
        task_options_with(paper, {"object_3d": {"n_objects": "4"}})
    with pytest.raises(ConfigError, match="unknown protocol 'papr'; known: default, paper"):
        get_protocol("papr")


def test_a_paper_run_records_its_protocol_and_the_formats_read(pytester: pytest.Pytester, embedded_data: Path):
    shutil.copy(REPO / "evals" / "test_correspondence.py", pytester.path / "test_correspondence.py")
    (pytester.path / "models.toml").write_text(
        '[models.pixels]\nkind = "encoder"\nsource = "pixels"\n\n'
        '[models.oracle]\nkind = "vlm"\nsource = "double:oracle"\npairs_with = "pixels"\nimage_mode = "separate"\n'
    )  # fmt: skip
    report = pytester.path / "report"
    result = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", f"--model-config={pytester.path / 'models.toml'}",
        f"--thresholds={REPO / 'fixtures' / 'thresholds.toml'}", f"--report-dir={report}",
        f"--data-root={embedded_data}", "--limit=8", "--protocol=paper", "-k", "oracle",
    )  # fmt: skip
    result.assert_outcomes(passed=3)
    results = json.loads((report / "results.json").read_text())
    assert results["options"]["protocol"] == "paper"
    assert results["options"]["data_sources"] == {
        "functional_correspondence": "blink", "low_level_matching": "hpatches", "semantic_correspondence": "blink",
    }  # fmt: skip
    vlm = [r for r in results["results"] if r["role"] == "vlm"]
    assert {(r["image_mode"], r["image_resize"], r["scoring"]) for r in vlm} == {
        ("side_by_side", "letterbox", "letters")
    }
    refused = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--protocol=paper", "--scoring=generate")
    assert refused.ret == pytest.ExitCode.USAGE_ERROR
    refused.stderr.fnmatch_lines(["*--scoring generate contradicts --protocol paper*"])
