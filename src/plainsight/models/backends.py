"""Model backends: the code that loads a models.toml entry, named from the entry's kind and source.

A backend's name is ``<kind>:<scheme>``: the scheme is the source's prefix (``timm:<id>``,
``double:<kind>``, ``prismatic:<folder>``), ``pixels`` for the pixel-window baseline, and ``hf``
for an HF id or a local folder. Each backend module registers itself in :data:`BACKENDS`
(``models/loading.py`` imports them all); an entry whose name no backend has is a ConfigError
listing the known backends.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from plainsight.registry import Registry

PIXELS = "pixels"  # the whole source of the pixel-window baseline encoder
TIMM = "timm:"
DOUBLE = "double:"
PRISMATIC = "prismatic:"
PREFIXES = (TIMM, DOUBLE, PRISMATIC)  # sources that are never an HF id or a folder
HF = "hf"  # the scheme of an HF id or a local folder

_SCHEME = re.compile(r"([a-z][a-z0-9_-]*):")


@dataclass(frozen=True)
class Backend:
    """How one backend loads an entry, and reads the geometry its model applies to images."""

    load: Callable[..., Any]  # (entry, *, device, dtype) -> the loaded model
    # entry -> PreprocessSpec, from the model's processor files where it can (None: no geometry, e.g. doubles)
    preprocess_spec: Callable[[Any], Any]


BACKENDS: Registry[Backend] = Registry("model backend")


def backend_name(kind: str, source: str, *, local: bool = False) -> str:
    """``<kind>:<scheme>`` for an entry; ``local`` (the source is a folder) makes it ``hf`` whatever its name."""
    if source == PIXELS:
        scheme = PIXELS
    elif not local and (match := _SCHEME.match(source)):
        scheme = match.group(1)  # an unknown scheme names no backend: a typo is an error, not an HF id
    else:
        scheme = HF
    return f"{kind}:{scheme}"
