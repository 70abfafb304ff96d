"""VLM family profiles: what differs between transformers VLM families, by config ``model_type``.

One :class:`FamilyProfile` per family says where its components live (LoRA targets, the
attention diagnostic), whether its own vision tower can serve as an encoder and layer-wise
probing can read its image tokens as a grid, how its processor takes images and how its prompt
is written. A model type that is not registered gets the generic profile, which looks for the
components under every known name and supports neither the own tower nor probing.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from plainsight.registry import Registry

PROMPT_FORMATS = ("chat_template", "paligemma")


@dataclass(frozen=True)
class FamilyProfile:
    """One VLM family. Component paths are attribute paths under the model's inner ``.model``
    (transformers 5 layout); the first that exists is the component."""

    model_type: str
    llm: tuple[str, ...] = ("language_model", "text_model")
    projector: tuple[str, ...] = ("multi_modal_projector", "connector", "visual.merger")
    vision: tuple[str, ...] = ("vision_tower", "visual", "vision_model")
    # The tower the projector reads, LLaVA-style (``vision_feature_layer``, ``vision_feature_select_strategy``):
    # set where ``pairs_with = "own_tower"`` can lend it as an encoder.
    own_tower: str | None = None
    probe_grid: bool = False  # one fixed square grid of image tokens per image (layer-wise probing)
    nested_images: bool = False  # the processor takes one list of images per prompt, not one flat list
    prompt_format: str = "chat_template"  # chat_template | paligemma (image tokens + text, no template)

    def __post_init__(self) -> None:
        if self.prompt_format not in PROMPT_FORMATS:
            raise ValueError(f"{self.model_type}: prompt_format {self.prompt_format!r}; expected {PROMPT_FORMATS}")

    def component_paths(self, component: str) -> tuple[str, ...]:
        """The attribute paths to try for ``llm``, ``projector`` or ``vision``."""
        return {"llm": self.llm, "projector": self.projector, "vision": self.vision}[component]


FAMILIES: Registry[FamilyProfile] = Registry("VLM family")

GENERIC = FamilyProfile(model_type="")


def profile_for(model_type: str) -> FamilyProfile:
    """The registered profile of ``model_type``, or the generic one (named after it) for any other family."""
    if model_type in FAMILIES:
        return FAMILIES.get(model_type)
    return replace(GENERIC, model_type=model_type)


def supporting(feature: str) -> tuple[str, ...]:
    """The registered model types whose profile has ``feature`` (e.g. "own_tower", "probe_grid"), for messages."""
    return tuple(name for name, profile in FAMILIES.items() if getattr(profile, feature))


def _register(profile: FamilyProfile) -> None:
    FAMILIES.register(profile.model_type, profile)


_LLAVA_LAYOUT = dict(llm=("language_model",), projector=("multi_modal_projector",), vision=("vision_tower",))
_QWEN_LAYOUT = dict(llm=("language_model",), projector=("visual.merger",), vision=("visual",))
_IDEFICS_LAYOUT = dict(llm=("text_model",), projector=("connector",), vision=("vision_model",))

_register(FamilyProfile("llava", **_LLAVA_LAYOUT, own_tower="vision_tower", probe_grid=True))
_register(FamilyProfile("llava_next", **_LLAVA_LAYOUT))
_register(FamilyProfile("llava_onevision", **_LLAVA_LAYOUT))
_register(FamilyProfile("internvl", **_LLAVA_LAYOUT))
_register(FamilyProfile("paligemma", **_LLAVA_LAYOUT, prompt_format="paligemma"))
_register(FamilyProfile("qwen2_vl", **_QWEN_LAYOUT))
_register(FamilyProfile("qwen2_5_vl", **_QWEN_LAYOUT))
_register(FamilyProfile("idefics2", **_IDEFICS_LAYOUT, nested_images=True))
_register(FamilyProfile("idefics3", **_IDEFICS_LAYOUT, nested_images=True))  # SmolVLM-256M/500M say idefics3
_register(FamilyProfile("smolvlm", **_IDEFICS_LAYOUT, nested_images=True))
_register(
    FamilyProfile(
        "mllama",
        llm=("language_model",),
        projector=("multi_modal_projector",),
        vision=("vision_model",),
        nested_images=True,
    )  # fmt: skip
)
