"""What a task is: how its items are built from data, what the VLM is shown, and how it is read out."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from PIL import Image

from plainsight.items import Item


@dataclass(frozen=True)
class LoadRequest:
    """Where and how to build a task's items.

    ``data_root`` is the user's ``--data-root`` (a folder holding datasets under
    their usual names, or one dataset folder itself); ``None`` means the
    embedded benchmark in ``fixtures/data``. ``source`` picks one of a task's
    dataset formats (e.g. ``"blink"``) when the folder holds several; ``None`` takes
    the first found in the task's order.
    """

    data_root: Path | None
    seed: int = 0
    limit: int | None = None
    source: str | None = None


@dataclass(frozen=True)
class TaskSpec:
    """One multiple-choice task.

    ``load_items`` turns data into items (deterministic for a seed), ``render``
    draws the visual prompt onto an item's clean images (returns them unchanged
    when ``item.markers_drawn``), ``readout`` names the vision readout in
    :mod:`plainsight.readouts`.
    """

    id: str
    family: str
    n_choices: int
    prompt_id: str
    readout: str
    load_items: Callable[[LoadRequest], list[Item]]
    render: Callable[[Item, list[Image.Image]], list[Image.Image]]
    description: str = ""
    sources: tuple[str, ...] = ()  # dataset formats it reads, in order of preference (see tasks/sources.py)

    @property
    def chance(self) -> float:
        return 1.0 / self.n_choices
