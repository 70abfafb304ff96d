"""3D object awareness: which of three views shows a different object (MOCHI oddity trials).

Source: MOCHI (``data/mochi.py``). Trials have 3 images by default, the paper's setting
(chance 1/3); ``--task-option object_3d.n_objects=4`` runs the 4-image "barense" trials
instead (chance 1/4). The images carry no visual prompt. The vision readout
(``readouts/odd_one_out.py``) calls the image whose pooled/CLS feature is least similar
to the others' the odd one.
"""

from __future__ import annotations

import logging
from pathlib import Path

from plainsight import prompts, render
from plainsight.data.mochi import load_trials
from plainsight.errors import ConfigError
from plainsight.items import Item
from plainsight.tasks.base import LoadRequest, TaskSpec, register

log = logging.getLogger("plainsight")

TASK_ID = "object_3d"
N_OBJECTS = ("3", "4")


def _n_objects(req: LoadRequest) -> int:
    value = req.options.get("n_objects", "3")
    if value not in N_OBJECTS:
        raise ConfigError(f"{TASK_ID}: option n_objects={value!r}; MOCHI trials have {' or '.join(N_OBJECTS)} images")
    return int(value)


def _mochi(root: Path, req: LoadRequest) -> list[Item]:
    loaded = load_trials(root, task=TASK_ID, n_objects=_n_objects(req))
    for reason, n in sorted(loaded.excluded.items()):
        req.skip(f"MOCHI: {reason}", n)
    if loaded.excluded:
        left_out = ", ".join(f"{n} {reason}" for reason, n in sorted(loaded.excluded.items()))
        log.info("%s: %d trials; excluded %s", loaded.paths[0].parent, len(loaded.items), left_out)
    return loaded.items


SOURCES = {"mochi": _mochi}


SPEC = register(
    TaskSpec(
        id=TASK_ID,
        family="object_3d",
        prompt_id=prompts.OBJECT_3D.id,
        readout="odd_one_out",
        render=render.no_markers,
        sources=SOURCES,
        options={"n_objects": "images per MOCHI trial: 3 (default, chance 1/3) or 4 (the barense trials)"},
    )
)
