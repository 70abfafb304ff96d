"""Versioned multiple-choice prompts.

Each prompt has an id (``<family>.<name>``) and an integer version; its
fingerprint hashes the text, so results and baselines can tell when the words a
model saw changed. Editing a text without bumping its version fails
``tests/test_prompts.py`` (the snapshot lives in ``tests/snapshots/prompts.json``).
"""

from __future__ import annotations

from dataclasses import dataclass

from plainsight.items import canonical_hash


@dataclass(frozen=True)
class Prompt:
    id: str
    version: int
    text: str
    options: tuple[str, ...]  # option texts, in letter order
    source: str  # where the wording comes from

    @property
    def key(self) -> str:
        return f"{self.id}@v{self.version}"

    @property
    def fingerprint(self) -> str:
        return canonical_hash({"id": self.id, "version": self.version, "text": self.text, "options": self.options})


PROMPTS: dict[str, Prompt] = {}


def register(prompt: Prompt) -> Prompt:
    if prompt.id in PROMPTS:
        raise ValueError(f"prompt {prompt.id} registered twice")
    PROMPTS[prompt.id] = prompt
    return prompt


def get(prompt_id: str) -> Prompt:
    try:
        return PROMPTS[prompt_id]
    except KeyError:
        raise KeyError(f"unknown prompt {prompt_id!r}; known: {sorted(PROMPTS)}") from None


# Verbatim from BLINK (Visual_Correspondence); ../shared/reference/protocol.md.
BLINK_VISUAL_CORRESPONDENCE = register(
    Prompt(
        id="blink.visual_correspondence",
        version=1,
        text=(
            "A point is circled on the first image, labeled with REF. We change the camera position or "
            "lighting and shoot the second image. You are given multiple red-circled points on the second "
            'image, choices of "A, B, C, D" are drawn beside each circle. Which point on the second image '
            "corresponds to the point in the first image? Select from the following options.\n"
            "(A) Point A\n(B) Point B\n(C) Point C\n(D) Point D"
        ),
        options=("Point A", "Point B", "Point C", "Point D"),
        source="BLINK Visual_Correspondence val prompt (verbatim)",
    )
)
