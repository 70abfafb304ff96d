"""Adding a task touches only what the README names: the task's module (with its prompt and its data
format's name) and its eval test. Nothing under ``src/`` changes.

The toy task (``tests/toy_task/toy_odd.py``) is copied into a temporary folder that is put on
``plainsight.tasks.__path__``, as if it were ``src/plainsight/tasks/toy_odd.py``; discovery finds
it, and a real eval run (in process, so the run sees the same ``plainsight.tasks``) scores it with
the ``pixels`` encoder and the oracle VLM double.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import shutil
import sys
from pathlib import Path

import pytest

import plainsight.tasks
from plainsight import data, prompts

pytest_plugins = ["pytester"]

REPO = Path(__file__).resolve().parents[1]
TOY = Path(__file__).resolve().parent / "toy_task" / "toy_odd.py"
N_ITEMS = 12

EVAL_TEST = '''\
"""Toy odd-one-out (the test a new task family adds under evals/)."""

import pytest

pytestmark = pytest.mark.plainsight_family("toy")


def test_vision(vision_case, plainsight):
    record = plainsight.evaluate(vision_case)
    plainsight.gate(record)


def test_vlm(vlm_case, plainsight):
    record = plainsight.evaluate(vlm_case)
    plainsight.gate(record)
'''

MODELS = """
[models.pixels]
kind = "encoder"
source = "pixels"

[models.oracle]
kind = "vlm"
source = "double:oracle"
pairs_with = "pixels"
"""

THRESHOLDS = """
[defaults.vision]
above_chance = true

[defaults.vlm]
above_chance = true
max_gap_to_vision = 0.10
min_tv_to_blind = 0.05
"""

# Imported before pytester snapshots sys.modules: an in-process run drops the modules it imported
# when it ends, and a module registering into a registry that outlives it (ours, torch's) would
# register twice when imported again. The run's metadata records the timm and transformers versions.
PRELOAD = (
    "timm", "transformers", "plainsight.runner", "plainsight.models.loading", "plainsight.readouts",
    "plainsight.probing", "plainsight.records", "plainsight.gates", "plainsight.baseline", "plainsight.report",
    "plainsight.report_html", "plainsight.protocols", "plainsight.views",
)  # fmt: skip


def registries() -> dict[str, list[str]]:
    from plainsight.models.backends import BACKENDS
    from plainsight.models.families import FAMILIES
    from plainsight.readouts import READOUTS

    found = {"tasks": plainsight.tasks.TASKS, "prompts": prompts.PROMPTS, "sources": data.SOURCES,
             "readouts": READOUTS, "backends": BACKENDS, "families": FAMILIES}  # fmt: skip
    return {kind: registry.names() for kind, registry in found.items()}


def tree(folder: Path) -> dict[str, str]:
    """Relative path → sha256 of every file under ``folder`` (bytecode caches left out)."""
    return {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and "__pycache__" not in p.parts
    }


@pytest.fixture(scope="module")
def preloaded() -> None:
    for name in PRELOAD:
        importlib.import_module(name)


@pytest.fixture
def toy_task(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """``toy_tasks/toy_odd.py`` in a temporary folder that ``plainsight.tasks`` lists; all undone afterwards."""
    plainsight.tasks.all_tasks()  # the real tasks first, so only the toy one is imported below
    folder = tmp_path / "toy_tasks"
    folder.mkdir()
    shutil.copy(TOY, folder / "toy_odd.py")
    monkeypatch.setattr(sys, "dont_write_bytecode", True)
    monkeypatch.setattr(plainsight.tasks, "__path__", [*plainsight.tasks.__path__, str(folder)])
    monkeypatch.setattr(plainsight.tasks, "_discovered", False)
    try:
        yield folder
    finally:
        plainsight.tasks.TASKS.unregister("toy_odd")
        prompts.PROMPTS.unregister("toy.odd")
        data.SOURCES.unregister("toy")
        sys.modules.pop("plainsight.tasks.toy_odd", None)
        if hasattr(plainsight.tasks, "toy_odd"):  # the import set it on the package
            delattr(plainsight.tasks, "toy_odd")


def test_a_new_task_is_its_module_prompt_and_eval_test(
    preloaded: None, pytester: pytest.Pytester, toy_task: Path, tmp_path: Path
):
    src_before = tree(REPO / "src")
    before = registries()

    # Discovery finds the module beside the package's own task modules; it registered task, prompt and format.
    tasks = plainsight.tasks.all_tasks()
    toy = tasks["toy_odd"]
    assert (toy.family, toy.prompt_id, toy.readout, list(toy.sources)) == ("toy", "toy.odd", "odd_one_out", ["toy"])
    assert "toy.odd" in prompts.PROMPTS and "toy" in data.SOURCES
    added = registries()
    assert {k: sorted(set(added[k]) - set(before[k])) for k in added} == {
        "tasks": ["toy_odd"], "prompts": ["toy.odd"], "sources": ["toy"],
        "readouts": [], "backends": [], "families": [],
    }  # fmt: skip
    from plainsight.readouts import READOUTS

    assert prompts.get(toy.prompt_id).key == "toy.odd@v1" and READOUTS.get(toy.readout) and data.SOURCES.get("toy")

    # The run's data, config and eval test.
    data_root = tmp_path / "data"
    sys.modules["plainsight.tasks.toy_odd"].build(data_root, n_items=N_ITEMS, seed=0)
    items = toy.load_items(plainsight.tasks.LoadRequest(data_root))
    assert len(items) == N_ITEMS and sorted(it.gold for it in items) == sorted("ABC" * (N_ITEMS // 3))
    (pytester.path / "evals").mkdir()
    (pytester.path / "evals" / "test_toy.py").write_text(EVAL_TEST)
    (pytester.path / "models.toml").write_text(MODELS)
    (pytester.path / "thresholds.toml").write_text(THRESHOLDS)
    report_dir = pytester.path / "report"

    class ImportSpy:  # what the in-process run imports, seen before pytester drops it again
        def pytest_sessionfinish(self) -> None:
            ImportSpy.loaded = set(sys.modules)

    already = set(sys.modules)
    result = pytester.runpytest(
        "-p", "no:cacheprovider", "-rA",
        f"--model-config={pytester.path / 'models.toml'}",
        f"--thresholds={pytester.path / 'thresholds.toml'}",
        f"--report-dir={report_dir}",
        f"--data-root={data_root}",
        "--tasks=toy_odd",
        "evals",
        plugins=[ImportSpy()],
    )  # fmt: skip
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines_random([
        "PASSED evals/test_toy.py::test_vision[[]toy_odd-pixels[]]",
        "PASSED evals/test_toy.py::test_vlm[[]toy_odd-oracle[]]",
    ])  # fmt: skip

    results = json.loads((report_dir / "results.json").read_text())
    records = {(r["task"], r["model"], r["role"]): r for r in results["results"]}
    assert {task for task, _, _ in records} == {"toy_odd"}
    vision, vlm = records[("toy_odd", "pixels", "vision")], records[("toy_odd", "oracle", "vlm")]
    assert (vision["n"], vision["accuracy"], vision["verdict"]) == (N_ITEMS, 1.0, "pass")
    assert (vlm["n"], vlm["accuracy"], vlm["verdict"]) == (N_ITEMS, 1.0, "pass")
    assert vlm["gold_dist"] == pytest.approx({"A": 1 / 3, "B": 1 / 3, "C": 1 / 3})

    # The run registered nothing behind the test's back, and imported no module it dropped afterwards
    # (imported again by a later test, such a module would register twice).
    assert registries() == added
    watched = ("plainsight", "torch", "timm", "transformers")
    dropped = sorted(m for m in ImportSpy.loaded - already if m.split(".")[0] in watched)
    assert not dropped, f"the in-process run imported {dropped[:10]}…; add them to PRELOAD"

    # What the test created: the toy module, the eval test, the run's config and data (and the run's report).
    assert sorted(tree(toy_task)) == ["toy_odd.py"]
    made = sorted(p for p in tree(pytester.path) if not p.startswith("report/"))
    assert made == ["evals/test_toy.py", "models.toml", "thresholds.toml"], made
    assert (report_dir / "results.json").is_file()
    pngs = {f"toy/item-{n:02d}/{i}.png" for n in range(N_ITEMS) for i in range(3)}
    assert set(tree(data_root)) == {"toy/trials.json"} | pngs
    assert tree(REPO / "src") == src_before, "the run changed files under src/"
