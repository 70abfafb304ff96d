"""Toy odd-one-out: which of three noise textures is not the same as the other two.

A complete task module, written the way a new task is added (``tests/test_extending.py`` copies it
beside the package's task modules, never into ``src/``): it registers its prompt and its data
format's name, and ends in ``SPEC = register(TaskSpec(...))``.

Data: ``<data root>/toy/trials.json`` and ``toy/item-NN/{0,1,2}.png`` (:func:`build` writes them).
Each trial shows one 8×8-block grey-noise texture twice and a different one once; gold is the
different one, and the odd position is A, B and C equally often. The vision readout
(``odd_one_out``) on the ``pixels`` encoder gets every trial right: two identical images have
cosine 1 between their thumbnails, the odd one far less.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

from PIL import Image

from plainsight import data, prompts, render
from plainsight.errors import DataError, DatasetNotFound
from plainsight.items import LETTERS, Item, ItemImage
from plainsight.tasks.base import LoadRequest, TaskSpec, register

TASK_ID = "toy_odd"
FOLDER = "toy"
MANIFEST = "trials.json"
SIDE, BLOCKS = 64, 8
N_IMAGES = 3

data.SOURCES.register("toy", f"{FOLDER}/{MANIFEST} + item-NN/*.png")

PROMPT = prompts.register(
    prompts.Prompt(
        id="toy.odd",
        version=1,
        text=(
            "Two of these three images show the same texture and one shows a different texture. "
            "Which image is the odd one out?\n(A) Image 1\n(B) Image 2\n(C) Image 3"
        ),
        options=("Image 1", "Image 2", "Image 3"),
        source="plainsight test toy (tests/toy_task/toy_odd.py)",
    )
)


def _texture(rng: random.Random) -> Image.Image:
    blocks = Image.new("L", (BLOCKS, BLOCKS))
    blocks.putdata([rng.randrange(256) for _ in range(BLOCKS * BLOCKS)])
    return blocks.resize((SIDE, SIDE), Image.Resampling.NEAREST).convert("RGB")


def build(root: Path, *, n_items: int = 12, seed: int = 0) -> Path:
    """Write ``n_items`` trials (a multiple of 3: letters balanced) under ``root/toy``; the same files for a seed."""
    rng = random.Random(seed)
    odd_positions = [i % N_IMAGES for i in range(n_items)]
    rng.shuffle(odd_positions)
    folder = Path(root) / FOLDER
    trials = []
    for n, odd in enumerate(odd_positions):
        same, other = _texture(rng), _texture(rng)
        names = []
        for position in range(N_IMAGES):
            rel = f"{FOLDER}/item-{n:02d}/{position}.png"
            (Path(root) / rel).parent.mkdir(parents=True, exist_ok=True)
            (other if position == odd else same).save(Path(root) / rel)
            names.append(rel)
        trials.append({"trial": f"item-{n:02d}", "images": names, "odd": odd})
    (folder / MANIFEST).write_text(json.dumps(trials, indent=1) + "\n")
    return folder


def _toy(root: Path, req: LoadRequest) -> list[Item]:
    manifest = Path(root) / FOLDER / MANIFEST
    if not manifest.is_file():
        raise DatasetNotFound(f"{root}: no toy trials; expected {manifest}")
    items = []
    for trial in json.loads(manifest.read_text()):
        if len(trial["images"]) != N_IMAGES or not 0 <= trial["odd"] < N_IMAGES:
            raise DataError(f"{manifest}: trial {trial['trial']}: expected {N_IMAGES} images and odd in 0..2")
        items.append(
            Item(
                id=f"toy-{trial['trial']}",
                task=TASK_ID,
                images=tuple(ItemImage(rel, (SIDE, SIDE), root=Path(root)) for rel in trial["images"]),
                choices=LETTERS[:N_IMAGES],
                gold=LETTERS[trial["odd"]],
                prompt=PROMPT.text,
                prompt_id=PROMPT.key,
                option_texts=PROMPT.options,
                meta={"source": "toy", "file": f"{FOLDER}/{MANIFEST}", "trial": trial["trial"]},
            )
        )
    return items


SPEC = register(
    TaskSpec(
        id=TASK_ID,
        family="toy",
        prompt_id=PROMPT.id,
        readout="odd_one_out",
        sources={"toy": _toy},
        render=render.no_markers,
    )
)
