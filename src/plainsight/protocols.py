"""Protocols: named settings that make a run follow a published setting (``--protocol NAME``).

``default`` is the suite's own order: each task reads the first of its formats present, and
every VLM runs as its models.toml entry says. ``paper`` runs Fu et al. 2025 as the paper ran it
(reference/protocol.md): the correspondence tasks and art style from BLINK val where BLINK is
present (172 / 139 / 130 / 117 items), depth from CV-Bench, object_3d on MOCHI's 3-image
trials, and every VLM scored by letter log-probability on one side-by-side, letterboxed image.
A task whose preferred format is absent reads its next one; the run's metadata names the
protocol and the format each task read, so a report never passes for the paper's when it is not.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Mapping

from plainsight.errors import ConfigError
from plainsight.models.registry import ModelEntry


@dataclass(frozen=True)
class Protocol:
    """What a protocol fixes; ``None`` leaves a setting to the models.toml entry or command line."""

    name: str
    description: str
    sources: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # task → formats preferred, in order
    task_options: Mapping[str, Mapping[str, str]] = field(default_factory=dict)  # task → {option: value}
    scoring: str | None = None
    image_mode: str | None = None
    image_resize: str | None = None

    def vlm_entry(self, entry: ModelEntry) -> ModelEntry:
        """A VLM entry with the protocol's scoring and image settings (encoders are unchanged)."""
        if entry.kind != "vlm":
            return entry
        fixed = {"scoring": self.scoring, "image_mode": self.image_mode, "image_resize": self.image_resize}
        return replace(entry, **{k: v for k, v in fixed.items() if v is not None})


PROTOCOLS: dict[str, Protocol] = {
    "default": Protocol("default", "each task's first format present; VLM settings from models.toml"),
    "paper": Protocol(
        "paper",
        "Fu et al. 2025: BLINK val for correspondence and art style, CV-Bench depth, MOCHI 3-image trials; "
        "letter scoring, side by side, letterbox",
        sources={
            "semantic_correspondence": ("blink",),
            "functional_correspondence": ("blink",),
            "low_level_matching": ("blink",),
            "art_style": ("blink",),
            "depth": ("cvbench",),
            "object_3d": ("mochi",),
        },
        task_options={"object_3d": {"n_objects": "3"}},
        scoring="letters",
        image_mode="side_by_side",
        image_resize="letterbox",
    ),
}


def get_protocol(name: str) -> Protocol:
    try:
        return PROTOCOLS[name]
    except KeyError:
        raise ConfigError(f"unknown protocol {name!r}; known: {', '.join(sorted(PROTOCOLS))}") from None


def task_options_with(protocol: Protocol, given: Mapping[str, Mapping[str, str]]) -> dict[str, dict[str, str]]:
    """The protocol's task options under the user's ``--task-option`` values; a contradiction is an error."""
    merged = {task: dict(options) for task, options in protocol.task_options.items()}
    for task, options in given.items():
        for name, value in options.items():
            fixed = protocol.task_options.get(task, {}).get(name)
            if fixed is not None and fixed != value:
                raise ConfigError(f"--task-option {task}.{name}={value} contradicts --protocol {protocol.name} "
                                  f"({task}.{name}={fixed})")  # fmt: skip
            merged.setdefault(task, {})[name] = value
    return merged
