"""The adapter folder ``plainsight adapt`` writes: its record, its fingerprint, and loading it onto a base VLM.

The folder holds peft's LoRA files or ``prefix.safetensors`` (prompt tuning) beside
``plainsight_adapt.json``, the record of how it was made and on which items. A tuned models.toml
entry (``base`` + ``adapter_dir``) is its base model with this folder applied; training lives in
``plainsight.adapt``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from plainsight.documents import read_json_document
from plainsight.errors import ConfigError, ModelUnavailable
from plainsight.items import canonical_hash

ADAPT_FILE = "plainsight_adapt.json"
SCHEMA = "plainsight.adapt/1"


@dataclass
class Adaptation:
    """What an adapter folder holds: how it was made, and on which items."""

    folder: Path
    method: str
    component: str
    task: str
    train_ids: frozenset[str]
    meta: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        """The fields results.json records for a tuned entry."""
        keys = ("method", "component", "steps", "tokens", "rank", "lr", "batch_size", "seed", "n_train",
                "train_accuracy_before", "train_accuracy_after")  # fmt: skip
        return {"adapter_dir": str(self.folder), "task": self.task, **{k: self.meta.get(k) for k in keys}}


def read_adaptation(folder: Path) -> Adaptation:
    """The adapter folder's record; a missing folder is a ModelUnavailable naming the command that makes it."""
    folder = Path(folder)
    path = folder / ADAPT_FILE
    if not path.is_file():
        raise ModelUnavailable(f"{path} not found: run `plainsight adapt ... --out {folder}` first")
    meta = read_json_document(path, SCHEMA)
    for key in ("method", "component", "task", "train_items", "base_signature"):
        if key not in meta:
            raise ConfigError(f"{path}: missing field {key!r}")
    return Adaptation(folder, meta["method"], meta["component"], meta["task"], frozenset(meta["train_items"]), meta)


_FINGERPRINTS: dict[tuple, str] = {}


def adaptation_fingerprint(folder: Path | None) -> str | None:
    """A hash of the adapter folder's files (a retrained adapter never reuses stored answers).

    Answer keys ask for it once per item, so it is cached under the files' names, sizes and mtimes.
    """
    if folder is None or not Path(folder).is_dir():
        return None
    files = sorted(p for p in Path(folder).iterdir() if p.is_file())
    stamp = (str(folder), *((p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in files))
    if stamp not in _FINGERPRINTS:
        digest = hashlib.sha256()
        for path in files:
            digest.update(path.name.encode())
            digest.update(path.read_bytes())
        _FINGERPRINTS[stamp] = digest.hexdigest()[:24]
    return _FINGERPRINTS[stamp]


def base_signature(model: Any) -> str:
    """A cheap identity of the base weights: names, shapes and sums of the first parameters."""
    import torch

    head = []
    for name, param in list(model.named_parameters())[:8]:
        with torch.no_grad():
            head.append([name, list(param.shape), round(float(param.float().sum()), 3)])
    return canonical_hash(head)


def apply_adaptation(vlm: Any, folder: Path) -> Any:
    """Load an adapter folder onto a loaded base VLM: LoRA merged into the weights, or the prompt prefix."""
    adaptation = read_adaptation(folder)
    signature = base_signature(vlm.model)
    if signature != adaptation.meta["base_signature"]:
        raise ConfigError(
            f"{folder}: this adapter was trained on another base model (signature "
            f"{adaptation.meta['base_signature']} vs {signature} for {vlm.name}); check the entry's base"
        )
    if adaptation.method == "lora":
        from peft import PeftModel

        merged = PeftModel.from_pretrained(vlm.model, str(folder)).merge_and_unload()
        vlm.model = merged.eval()
    else:
        from plainsight.models.prefix import PromptPrefix

        prefix = PromptPrefix.load(folder)
        vlm.prefix = prefix.to(vlm.device).attach(vlm.model)
    return vlm
