"""Relative depth: which of two boxed objects (red = A, blue = B) is closer to the camera.

Source: CV-Bench 3D Depth rows (boxes drawn, stored prompt and answer; Distance rows are
skipped and counted). The vision readout is the encoder's depth probe, trained on NYUv2
(see ``readouts/depth_probe.py``), averaged inside each box.
"""

from __future__ import annotations

import logging
from pathlib import Path

from PIL import Image

from plainsight import prompts
from plainsight.data.cvbench import load_depth
from plainsight.items import Item
from plainsight.render import BOX_COLORS, draw_boxes
from plainsight.tasks.base import LoadRequest, TaskSpec, register

log = logging.getLogger("plainsight")

TASK_ID = "depth"
PROMPT = prompts.CVBENCH_DEPTH
BOX_COLOR_OF = {"A": BOX_COLORS["red"], "B": BOX_COLORS["blue"]}


def _cvbench(root: Path, req: LoadRequest) -> list[Item]:
    loaded = load_depth(root, task=TASK_ID)
    for kind, n in sorted(loaded.skipped.items()):
        req.skip(_skip_reason(loaded.path.name, kind), n)
    if loaded.skipped:
        skipped = ", ".join(f"{n} {kind}" for kind, n in sorted(loaded.skipped.items()))
        log.info("%s: %d Depth rows; skipped %s", loaded.path, len(loaded.items), skipped)
    return loaded.items


def _skip_reason(file: str, kind: str) -> str:
    if kind == "(no task)":
        return f"{file}: rows without a 'task' field"
    if kind.strip().lower() == "depth":  # a Depth row spelt otherwise is left out, and said so, not guessed at
        return f"{file}: rows with task {kind!r} (not 'Depth')"
    return f"{file}: rows of task {kind!r} (not depth)"


SOURCES = {"cvbench": _cvbench}


def render_boxes(item: Item, images: list[Image.Image]) -> list[Image.Image]:
    """Red box around A, blue around B (unchanged copies when the source drew them, as CV-Bench does)."""
    if item.markers_drawn:
        return [im.copy() for im in images]
    return [draw_boxes(im, spec.boxes, BOX_COLOR_OF) for im, spec in zip(images, item.images)]


SPEC = register(
    TaskSpec(
        id=TASK_ID,
        family="depth",
        prompt_id=PROMPT.id,
        readout="depth",
        render=render_boxes,
        sources=SOURCES,
    )
)
