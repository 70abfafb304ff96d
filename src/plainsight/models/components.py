"""The three components of a VLM — vision encoder, projector, language model — found by module name.

Fine-tuning one component at a time (``plainsight adapt --component``) and the attention
diagnostic both need to know which modules belong where. transformers names them per family;
each family's profile (models/families.py) says where, and an unknown family is searched under
every known name.
"""

from __future__ import annotations

from typing import Any

import torch

from plainsight.errors import ConfigError
from plainsight.models.families import profile_for

COMPONENTS = ("llm", "projector", "vision")


def _inner(model: Any) -> Any:
    """The module holding the components (a ``*ForConditionalGeneration`` keeps them in ``.model``)."""
    return getattr(model, "model", model)


def component_prefix(model: Any, component: str) -> str:
    """The dotted module name of a component within ``model.named_modules()`` of the unwrapped model."""
    if component not in COMPONENTS:
        raise ConfigError(f"unknown component {component!r}; expected one of {COMPONENTS}")
    paths = profile_for(str(getattr(getattr(model, "config", None), "model_type", ""))).component_paths(component)
    inner = _inner(model)
    for path in paths:
        module = inner
        for part in path.split("."):
            module = getattr(module, part, None)
            if module is None:
                break
        if isinstance(module, torch.nn.Module):
            return f"model.{path}" if inner is not model else path
    raise ConfigError(f"{type(model).__name__}: no {component} component found (looked for {', '.join(paths)})")


def component_linear_names(model: Any, component: str) -> list[str]:
    """Full names of the ``nn.Linear`` layers of a component — the LoRA targets.

    The projector is excluded from the vision component where a family nests it there (Qwen's
    ``visual.merger``), so the three components never share a layer.
    """
    prefix = component_prefix(model, component) + "."
    excluded: list[str] = []
    if component == "vision":
        try:
            excluded.append(component_prefix(model, "projector") + ".")
        except ConfigError:
            pass
    names = [
        name for name, module in model.named_modules()
        if isinstance(module, torch.nn.Linear) and name.startswith(prefix)
        and not any(name.startswith(e) for e in excluded)
    ]  # fmt: skip
    if not names:
        raise ConfigError(f"{type(model).__name__}: the {component} component has no linear layers to adapt")
    return names


def attention_modules(model: Any) -> list[torch.nn.Module]:
    """The self-attention module of each language-model layer, in layer order."""
    prefix = component_prefix(model, "llm") + "."
    found = [
        module for name, module in model.named_modules()
        if name.startswith(prefix) and name.endswith(".self_attn")
    ]  # fmt: skip
    if not found:
        raise ConfigError(f"{type(model).__name__}: no self-attention modules found in the language model")
    return found
