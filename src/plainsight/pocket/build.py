"""``plainsight fixtures pocket``: build the train split, train the pocket encoder, then the pocket VLM.

One recipe (``POCKET``), one seed, CPU only. The train split is the embedded benchmark built with other seeds
(``train_seeds``) than the evaluation data (seed 0); ``check_disjoint`` stops the build when any image the models
train on is an evaluation image. The thread counts are part of the recipe because a CPU reduction's order
depends on them: the same recipe, seed and thread counts give the same bytes.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Callable

import torch

from plainsight.pocket.encoder import EncoderRecipe, image_key
from plainsight.pocket.vlm import TASKS, VLMRecipe

# The art-style items (the one task whose answer a frozen-encoder VLM can read from one image's look) first,
# then all five trained tasks with art style drawn half the time so the alignment is kept.
INSTRUCTION_TASKS = ("art_style", "semantic_correspondence", "art_style", "functional_correspondence", "art_style",
                     "depth", "art_style", "object_3d")  # fmt: skip


@dataclass(frozen=True)
class PocketRecipe:
    train_seeds: tuple[int, ...] = (1, 2)
    encoder: EncoderRecipe = field(default_factory=EncoderRecipe)
    vlm: VLMRecipe = field(
        default_factory=lambda: VLMRecipe(
            lr=1e-3, align_steps=600, align_tasks=("art_style",), steps=240, instruct_lr=2e-4, tasks=INSTRUCTION_TASKS
        )  # fmt: skip
    )
    encoder_threads: int = 1  # the second train split is built on the other core meanwhile
    vlm_threads: int = 2

    def with_seed(self, seed: int) -> PocketRecipe:
        """The same recipe with both models initialised and shuffled from ``seed``."""
        return replace(self, encoder=replace(self.encoder, seed=seed), vlm=replace(self.vlm, seed=seed))


POCKET = PocketRecipe()


def image_keys(root: Path | None, tasks: tuple[str, ...]) -> set[str]:
    """Every image the items of ``tasks`` show (``root`` None: the evaluation data), plus NYUv2 frames."""
    from plainsight.data import embedded_root
    from plainsight.data.nyuv2 import open_nyuv2
    from plainsight.tasks import LoadRequest, get_task

    keys = set()
    for task_id in tasks:
        for item in get_task(task_id).load_items(LoadRequest(data_root=root)):
            keys.update(image_key(im) for im in item.load_images())
    nyu = open_nyuv2(root if root is not None else embedded_root())
    for index in sorted(set(nyu.train.tolist()) | set(nyu.test.tolist())):
        keys.add(image_key(nyu.frame(int(index))[0]))
    return keys


def check_disjoint(train_roots: list[Path], tasks: tuple[str, ...]) -> dict[str, int]:
    """Raise when an image of the trained tasks' train items is also an evaluation image; return the counts."""
    from plainsight.errors import ConfigError

    evaluation = image_keys(None, TASKS)
    trained = set().union(*(image_keys(Path(root), tasks) for root in train_roots))
    shared = trained & evaluation
    if shared:
        raise ConfigError(f"{len(shared)} of the {len(trained)} train images are evaluation images; the train "
                          "split must come from other seeds than the evaluation data (seed 0)")  # fmt: skip
    return {"train_images": len(trained), "evaluation_images": len(evaluation), "shared": 0}


def _build_split(root: Path, seed: int) -> dict:
    from plainsight.embedded import build_all

    return build_all(root, seed=seed, parallel=False)


def build_pocket(models_out: Path, recipe: PocketRecipe = POCKET, *, work_dir: Path | None = None,
                 log: Callable[[str], None] = print) -> dict:  # fmt: skip
    """Write ``models_out/pocket-encoder`` and ``models_out/pocket-vlm``; returns timings and the check's counts."""
    from plainsight.embedded import build_all
    from plainsight.pocket.encoder import train_pocket_encoder
    from plainsight.pocket.vlm import train_pocket_vlm

    models_out = Path(models_out)
    encoder_dir, vlm_dir = models_out / "pocket-encoder", models_out / "pocket-vlm"
    timings: dict[str, float] = {}
    with tempfile.TemporaryDirectory(dir=work_dir) as tmp:
        roots = [Path(tmp) / f"train-seed{seed}" for seed in recipe.train_seeds]
        t = time.perf_counter()
        log(f"pocket: building the train split (seed {recipe.train_seeds[0]})")
        build_all(roots[0], seed=recipe.train_seeds[0])
        timings["train_split_seconds"] = time.perf_counter() - t
        t = time.perf_counter()
        # spawn, not fork: this process holds torch's threads.
        with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn")) as pool:
            later = [pool.submit(_build_split, root, seed) for root, seed in zip(roots[1:], recipe.train_seeds[1:])]
            log(f"pocket: training the encoder ({recipe.encoder.steps} steps, {recipe.encoder_threads} thread(s)); "
                f"building train seeds {list(recipe.train_seeds[1:])} meanwhile")  # fmt: skip
            torch.set_num_threads(recipe.encoder_threads)
            train_pocket_encoder(roots[0], encoder_dir, recipe.encoder, log_every=100)
            for future in later:
                future.result()
        timings["encoder_seconds"] = time.perf_counter() - t
        t = time.perf_counter()
        trained_tasks = tuple(dict.fromkeys(recipe.vlm.tasks + recipe.vlm.align_tasks))
        counts = check_disjoint(roots, trained_tasks)
        timings["disjoint_check_seconds"] = time.perf_counter() - t
        log(f"pocket: {counts['train_images']} train images, none among the {counts['evaluation_images']} "
            "evaluation images")  # fmt: skip
        t = time.perf_counter()
        total = recipe.vlm.align_steps + recipe.vlm.steps
        log(f"pocket: training the VLM ({total} steps, {recipe.vlm_threads} thread(s))")
        torch.set_num_threads(recipe.vlm_threads)
        train_pocket_vlm(encoder_dir, roots, vlm_dir, recipe.vlm, log_every=100)
        timings["vlm_seconds"] = time.perf_counter() - t
    manifest = {"recipe": json.loads(json.dumps(asdict(recipe))), "files": file_hashes(models_out)}
    return {**manifest, "disjoint": counts, "seconds": {k: round(v, 1) for k, v in timings.items()}}


MANIFEST = "pocket.json"
FOLDERS = ("pocket-encoder", "pocket-vlm")


def file_hashes(models_out: Path) -> dict[str, str]:
    """sha256 of every file of the two pocket folders, keyed by path relative to ``models_out``."""
    models_out = Path(models_out)
    return {f"{folder}/{p.name}": hashlib.sha256(p.read_bytes()).hexdigest()
            for folder in FOLDERS for p in sorted((models_out / folder).iterdir()) if p.is_file()}  # fmt: skip


def write_manifest(models_out: Path, summary: dict) -> Path:
    """``models_out/pocket.json``: the recipe, the files' hashes and what the build measured."""
    path = Path(models_out) / MANIFEST
    stable = {"recipe": summary["recipe"], "files": summary["files"], "disjoint": summary["disjoint"]}
    path.write_text(json.dumps(stable, indent=1, sort_keys=True) + "\n")
    return path


def compare_builds(shipped: Path, rebuilt: Path) -> list[str]:
    """The files whose bytes differ between two builds (or that only one has)."""
    a, b = file_hashes(shipped), file_hashes(rebuilt)
    return sorted(name for name in set(a) | set(b) if a.get(name) != b.get(name))
