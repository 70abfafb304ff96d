"""The `plainsight` command: items, show, and clear errors (never a bare traceback)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
EXE = Path(sys.executable).parent / "plainsight"


def plainsight(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess:
    return subprocess.run([str(EXE), *args], capture_output=True, text=True, cwd=cwd, timeout=300)


def small_hpatches(tmp_path: Path, embedded_data: Path) -> Path:
    """A copy of two embedded sequences, laid out as a real --data-root."""
    src = embedded_data / "hpatches-sequences-release"
    dst = tmp_path / "data" / "hpatches-sequences-release"
    for seq in sorted(p for p in src.iterdir() if p.is_dir())[:2]:
        shutil.copytree(seq, dst / seq.name)
    return tmp_path / "data"


def test_items_json_lines(embedded_data: Path):
    out = plainsight("items", "--task", "low_level_matching", "--limit", "5", "--json")
    assert out.returncode == 0, out.stderr
    lines = [json.loads(line) for line in out.stdout.splitlines()]
    assert len(lines) == 5
    for rec in lines:
        assert {"id", "task", "choices", "gold", "images"} <= set(rec)
        assert rec["task"] == "low_level_matching" and rec["choices"] == ["A", "B", "C", "D"]
        assert rec["gold"] in rec["choices"]
        ref, target = rec["images"]
        assert set(ref["points"]) == {"REF"} and set(target["points"]) == {"A", "B", "C", "D"}
        for image in rec["images"]:
            w, h = image["size"]
            assert (embedded_data / image["path"]).is_file()
            assert Image.open(embedded_data / image["path"]).size == (w, h)
            for x, y in image["points"].values():
                assert 0 <= x < w and 0 <= y < h


def test_items_with_data_root(tmp_path: Path, embedded_data: Path):
    root = small_hpatches(tmp_path, embedded_data)
    out = plainsight("items", "--task", "low_level_matching", "--data-root", str(root), "--json")
    assert out.returncode == 0, out.stderr
    recs = [json.loads(line) for line in out.stdout.splitlines()]
    assert recs and all((root / im["path"]).is_file() for r in recs for im in r["images"])


def test_show_renders_what_the_vlm_sees(tmp_path: Path, embedded_data: Path):
    item_id = json.loads(plainsight("items", "--task", "low_level_matching", "--limit", "1", "--json").stdout)["id"]
    out = plainsight("show", "--task", "low_level_matching", item_id, "--out", str(tmp_path / "a.png"))
    assert out.returncode == 0, out.stderr
    plain = Image.open(tmp_path / "a.png")
    out = plainsight(
        "show", "--task", "low_level_matching", item_id, "--model", "tiny-llava",
        "--model-config", str(REPO / "fixtures" / "models.toml"), "--out", str(tmp_path / "b.png"),
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    seen = Image.open(tmp_path / "b.png")
    assert seen.size != plain.size  # the tiny LLaVA's processor resizes the side-by-side composite


def assert_clean_error(out: subprocess.CompletedProcess, *fragments: str) -> None:
    assert out.returncode == 2, (out.stdout, out.stderr)
    assert "Traceback" not in out.stderr
    for fragment in fragments:
        assert fragment in out.stderr, out.stderr


def test_missing_data_root_names_it():
    out = plainsight("items", "--task", "low_level_matching", "--data-root", "/no/such/folder")
    assert_clean_error(out, "/no/such/folder")


def test_malformed_homography_names_the_file(tmp_path: Path, embedded_data: Path):
    root = small_hpatches(tmp_path, embedded_data)
    seq = sorted((root / "hpatches-sequences-release").iterdir())[0]
    (seq / "H_1_3").write_text("1 0 0\n0 1 zero\n")
    out = plainsight("items", "--task", "low_level_matching", "--data-root", str(root))
    assert_clean_error(out, str(seq / "H_1_3"))


def test_corrupt_image_names_the_file(tmp_path: Path, embedded_data: Path):
    root = small_hpatches(tmp_path, embedded_data)
    seq = sorted((root / "hpatches-sequences-release").iterdir())[0]
    bad = next(p for p in sorted(seq.iterdir()) if p.name.startswith("4."))
    bad.write_bytes(b"P6\n160 120\n255\n" + b"\x00" * 10)  # truncated
    out = plainsight("items", "--task", "low_level_matching", "--data-root", str(root))
    assert_clean_error(out, str(bad))


def test_unknown_item_and_task_are_clean_errors(tmp_path: Path, embedded_data: Path):
    out = plainsight("show", "--task", "low_level_matching", "nope", "--out", str(tmp_path / "x.png"))
    assert_clean_error(out, "no item 'nope'")
    out = plainsight("items", "--task", "nonsense")
    assert_clean_error(out, "unknown task 'nonsense'")


def test_contact_sheet_shows_every_task_and_the_readme_shows_it(tmp_path: Path, embedded_data: Path):
    out = plainsight("fixtures", "sheet", "--per-task", "1", "--out", str(tmp_path / "sheet.png"))
    assert out.returncode == 0, out.stderr
    from plainsight.contact_sheet import GAP, ROW_HEIGHT
    from plainsight.tasks import all_tasks

    sheet = Image.open(tmp_path / "sheet.png")
    assert sheet.height == len(all_tasks()) * (ROW_HEIGHT + GAP) == 6 * (ROW_HEIGHT + GAP)
    committed = REPO / "docs" / "benchmark.png"
    assert committed.is_file() and "docs/benchmark.png" in (REPO / "README.md").read_text()


def test_task_options_are_checked_by_name():
    from plainsight.errors import ConfigError
    from plainsight.tasks import all_tasks, parse_task_options

    tasks = all_tasks()
    assert parse_task_options(["object_3d.n_objects=4"], tasks) == {"object_3d": {"n_objects": "4"}}
    assert parse_task_options(["n_objects=3"], tasks, task="object_3d") == {"object_3d": {"n_objects": "3"}}
    for bad, message in [
        ("n_objects=4", "which task?"),
        ("object_3d.n_objects", "expected TASK.NAME=VALUE"),
        ("depht.n_objects=4", "unknown task 'depht'"),
        ("depth.n_objects=4", "depth has no option 'n_objects'; its options: none"),
    ]:
        with pytest.raises(ConfigError, match=message):
            parse_task_options([bad], tasks)
