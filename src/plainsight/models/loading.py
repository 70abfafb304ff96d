"""Loading a models.toml entry: the backend its kind and source name (models/backends.py), then its loader.

Importing this module registers every backend: transformers encoders and VLMs, timm, pixels,
Prismatic run folders and the test doubles.
"""

from __future__ import annotations

from typing import Any

import torch

from plainsight.errors import ConfigError
from plainsight.geometry import PreprocessSpec
from plainsight.models import doubles, encoders, prismatic, vlms  # noqa: F401 - each registers its backends
from plainsight.models.backends import BACKENDS
from plainsight.models.encoders import Encoder
from plainsight.models.registry import ModelEntry
from plainsight.models.vlms import VLM


def load_model(entry: ModelEntry, *, device: str = "cpu", dtype: str | torch.dtype = "float32") -> Any:
    """The loaded model of an entry (an Encoder or a VLM). A model that is not present raises ModelUnavailable
    saying how to provide it; a source no backend reads is a ConfigError listing the backends."""
    return BACKENDS.get(entry.backend).load(entry, device=device, dtype=dtype)


def load_vlm(entry: ModelEntry, *, device: str = "cpu", dtype: str | torch.dtype = "float32") -> VLM:
    """:func:`load_model` for an entry that must be a VLM."""
    _expect(entry, "vlm")
    return load_model(entry, device=device, dtype=dtype)


def load_encoder(entry: ModelEntry, *, device: str = "cpu", dtype: str | torch.dtype = "float32") -> Encoder:
    """:func:`load_model` for an entry that must be an encoder."""
    _expect(entry, "encoder")
    return load_model(entry, device=device, dtype=dtype)


def preprocess_spec(entry: ModelEntry) -> PreprocessSpec | None:
    """The geometry an entry's model applies to images, from its processor files where it can (no weights);
    None for a model without one (test doubles)."""
    return BACKENDS.get(entry.backend).preprocess_spec(entry)


def _expect(entry: ModelEntry, kind: str) -> None:
    if entry.kind != kind:
        raise ConfigError(f"[models.{entry.name}] is kind = {entry.kind!r}, not {kind!r}")
