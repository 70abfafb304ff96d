"""Art style: which of two paintings shares the reference painting's style (BLINK Art_Style).

Source: BLINK ``Art_Style`` val (``data/blink.py``): image 1 is the reference, images 2
and 3 are the candidates A and B; the stored prompt and answer are used as they are.
The vision readout (``readouts/style.py``) compares Gram matrices of last-layer patch
features: the candidate with the lower mean squared difference to the reference's wins.
"""

from __future__ import annotations

from pathlib import Path

from plainsight import prompts, render
from plainsight.data.blink import load_items as load_blink_items
from plainsight.errors import DataError
from plainsight.items import Item
from plainsight.tasks.base import LoadRequest, TaskSpec, register

TASK_ID = "art_style"
BLINK_SUBTASK = "Art_Style"


def _blink(root: Path, req: LoadRequest) -> list[Item]:
    items, path = load_blink_items(root, BLINK_SUBTASK, task=TASK_ID)
    for item in items:
        if len(item.images) != len(item.choices) + 1:
            raise DataError(
                f"{path} ({item.id}): an Art_Style row needs a reference and one image per choice "
                f"({len(item.choices) + 1} images), it has {len(item.images)}"
            )
    return items


SOURCES = {"blink": _blink}


SPEC = register(
    TaskSpec(
        id=TASK_ID,
        family="art_style",
        prompt_id=prompts.BLINK_ART_STYLE.id,
        readout="style",
        render=render.no_markers,
        sources=SOURCES,
    )
)
