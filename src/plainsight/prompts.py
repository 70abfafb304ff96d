"""Versioned multiple-choice prompts.

Each prompt has an id (``<family>.<name>``) and an integer version; its
fingerprint hashes the text, so results and baselines can tell when the words a
model saw changed. Editing a text without bumping its version fails
``tests/test_prompts.py`` (the snapshot lives in ``tests/snapshots/prompts.json``).
"""

from __future__ import annotations

from dataclasses import dataclass

from plainsight.items import canonical_hash
from plainsight.registry import Registry


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


PROMPTS: Registry[Prompt] = Registry("prompt")


def register(prompt: Prompt) -> Prompt:
    """Add a prompt under its id (a task names it as ``TaskSpec.prompt_id``)."""
    return PROMPTS.register(prompt.id, prompt)


def get(prompt_id: str) -> Prompt:
    """The prompt ``prompt_id``; an unknown id is a ConfigError listing the known ones."""
    return PROMPTS.get(prompt_id)


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


# Verbatim from BLINK (Semantic_Correspondence); ../shared/reference/protocol.md.
BLINK_SEMANTIC_CORRESPONDENCE = register(
    Prompt(
        id="blink.semantic_correspondence",
        version=1,
        text=(
            "Humans can find corresponding points for different objects in the same category. For instance, if "
            "there are images of two different cats, then the left ear tip of one cat corresponds to the left ear "
            "tip of the other cat, and the right front paw of one cat corresponds to the right front paw of the "
            "other cat.\nGiven the following two images, a reference point is annotated on the first image, "
            'labeled with REF. You are given multiple red-circled points on the second image, choices of "A, B, '
            'C, D" are drawn beside each circle. Select between the choices on the second image and find the '
            "corresponding point for the reference point. Which point is corresponding to the reference point?\n"
            "Select from the following choices.\n(A) Point A\n(B) Point B\n(C) Point C\n(D) Point D"
        ),
        options=("Point A", "Point B", "Point C", "Point D"),
        source="BLINK Semantic_Correspondence val prompt (verbatim)",
    )
)

# BLINK's Functional_Correspondence prompt names the action; only its opening sentence is known
# offline (reference/protocol.md), so the rest follows the Semantic_Correspondence wording.
# BLINK items keep their own stored prompt; this one is for SPair/FunKPoint-built items.
FUNCTIONAL_CORRESPONDENCE = register(
    Prompt(
        id="plainsight.functional_correspondence",
        version=1,
        text=(
            "Humans can find corresponding points for the same action between different objects. For instance, "
            "if a person uses a spoon or a shovel to scoop, the bowl of the spoon corresponds to the blade of the "
            "shovel, and the end of one handle corresponds to the end of the other.\nGiven the following two "
            "images, a reference point is annotated on the first image, labeled with REF. You are given multiple "
            'red-circled points on the second image, choices of "A, B, C, D" are drawn beside each circle. '
            'Suppose a person uses the object in each image to "{action}". Select between the choices on the '
            "second image and find the point that serves the same function as the reference point. Which point "
            "is corresponding to the reference point?\nSelect from the following choices.\n"
            "(A) Point A\n(B) Point B\n(C) Point C\n(D) Point D"
        ),
        options=("Point A", "Point B", "Point C", "Point D"),
        source="plainsight wording: BLINK Functional_Correspondence's opening sentence, the rest after BLINK "
        "Semantic_Correspondence (BLINK's full functional text is not available offline)",
    )
)

# CV-Bench's Depth template (reference/protocol.md); {A} is the red-boxed object, {B} the blue one.
CVBENCH_DEPTH = register(
    Prompt(
        id="cvbench.depth",
        version=1,
        text=(
            "Which object is closer to the camera taking this photo, the {A} (highlighted by a red box) or the "
            "{B} (highlighted by a blue box)?\n(A) {A}\n(B) {B}"
        ),
        options=("{A}", "{B}"),
        source="CV-Bench 3D Depth prompt template (verbatim; CV-Bench items keep their stored prompt)",
    )
)

# BLINK Art_Style (reference/protocol.md): the opening words and everything from "of art paintings"
# on are verbatim; the middle ("onism, Expressionism, Pop Art, and Cubism. Given the following images")
# is our reconstruction of the part no offline copy shows. BLINK items keep their stored prompt;
# this text is what the embedded BLINK twin stores.
BLINK_ART_STYLE = register(
    Prompt(
        id="blink.art_style",
        version=1,
        text=(
            "Some most common art painting styles include Realism, Impressionism, Expressionism, Pop Art, and "
            "Cubism. Given the following images of art paintings, use the first image as the reference image, and "
            "determine which one of the second or the third image shares the same style as the reference image?\n"
            "Select from the following choices.\n(A) the second image\n(B) the third image"
        ),
        options=("the second image", "the third image"),
        source="BLINK Art_Style val prompt: start and end verbatim, the middle clause reconstructed (not available "
        "offline); BLINK items keep their stored prompt",
    )
)

# MOCHI has no prompt of its own (reference/protocol.md); ours names the images by position so
# the same words hold for separate images and for one side-by-side canvas. {options} lists one
# line per image: "(A) the first image" … (3 images by default, 4 for MOCHI's barense trials).
OBJECT_3D = register(
    Prompt(
        id="plainsight.object_3d",
        version=1,
        text=(
            "Each image shows one object. All but one of the images show the same object from different "
            "viewpoints; one image shows a different object. Which image shows the different object? The images "
            "are counted in the order given (from left to right when they are shown side by side).\n"
            "Select from the following choices.\n{options}"
        ),
        options=("the first image", "the second image", "the third image", "the fourth image"),
        source="plainsight wording (MOCHI has no prompt); BLINK's multiple-choice layout",
    )
)


def object_3d_prompt(n_images: int) -> tuple[str, tuple[str, ...]]:
    """The odd-one-out prompt text and option texts for ``n_images`` images (3 or 4)."""
    if not 2 <= n_images <= len(OBJECT_3D.options):
        raise ValueError(f"the object_3d prompt covers 2–{len(OBJECT_3D.options)} images, not {n_images}")
    options = OBJECT_3D.options[:n_images]
    lines = "\n".join(f"({letter}) {text}" for letter, text in zip("ABCDEFGH", options))
    return OBJECT_3D.text.format(options=lines), options
