"""Prompt tuning: learnable prefix embeddings placed before every prompt.

``n`` slot tokens are inserted at the start of each row (after the left padding, before the
chat template's first token); a forward hook on the model's input-embedding layer replaces
their embeddings with the learned vectors. Nothing else in the model changes, so any family
whose forward embeds ``input_ids`` through ``get_input_embeddings()`` works — LLaVA, Qwen2-VL
and Idefics3 do. Saved as safetensors (``prefix.safetensors``), never pickled.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

PREFIX_FILE = "prefix.safetensors"
# Row-aligned inputs that must grow with the inserted slots, and the value a slot takes in each.
_ROW_ALIGNED_FILL = {"attention_mask": 1, "token_type_ids": 0, "mm_token_type_ids": 0}


class PromptPrefix(torch.nn.Module):
    """``n`` learnable embeddings, attached to one model's input-embedding layer."""

    def __init__(self, embeddings: torch.Tensor, slot_token_id: int):
        super().__init__()
        self.embeddings = torch.nn.Parameter(embeddings.detach().clone())
        self.slot_token_id = int(slot_token_id)
        self.slots: torch.Tensor | None = None  # where the slots are in the batch about to run (set by insert)
        self._handle: Any = None

    @property
    def n_tokens(self) -> int:
        return int(self.embeddings.shape[0])

    @classmethod
    def initialised_from_vocabulary(cls, model: Any, n_tokens: int, slot_token_id: int, seed: int) -> "PromptPrefix":
        """Start from the embeddings of ``n_tokens`` vocabulary entries drawn with ``seed`` (a common init)."""
        table = model.get_input_embeddings().weight
        generator = torch.Generator().manual_seed(seed)
        rows = torch.randint(0, table.shape[0], (n_tokens,), generator=generator)
        return cls(table[rows.to(table.device)].float().cpu(), slot_token_id)

    def attach(self, model: Any) -> "PromptPrefix":
        """Hook the model's input-embedding layer (once)."""
        if self._handle is None:
            self._handle = model.get_input_embeddings().register_forward_hook(self._replace_slots)
        return self

    def detach_hook(self) -> None:
        if self._handle is not None:
            self._handle.remove()
            self._handle = None

    def insert(self, inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """``inputs`` with the slot tokens inserted at the start of each (left-padded) row; remembers where."""
        ids = inputs["input_ids"]
        mask = inputs.get("attention_mask", torch.ones_like(ids))
        starts = (mask != 0).int().argmax(dim=1)  # first real token of each row
        batch, length = ids.shape
        n = self.n_tokens
        # Row b keeps its tokens before starts[b], then n slots, then the rest, shifted by n.
        position = torch.arange(length + n, device=ids.device).expand(batch, -1)
        start = starts.to(ids.device)[:, None]
        is_slot = (position >= start) & (position < start + n)
        source = torch.where(position < start, position, position - n).clamp(min=0)
        out = dict(inputs)
        for key, value in inputs.items():
            if key != "input_ids" and key not in _ROW_ALIGNED_FILL:
                continue
            if not isinstance(value, torch.Tensor) or value.shape != ids.shape:
                continue
            fill = self.slot_token_id if key == "input_ids" else _ROW_ALIGNED_FILL[key]
            moved = torch.gather(value, 1, source.to(value.device))
            out[key] = torch.where(is_slot.to(value.device), torch.full_like(moved, fill), moved)
        self.slots = is_slot
        return out

    def _replace_slots(self, module: Any, args: tuple, output: torch.Tensor) -> torch.Tensor | None:
        slots = self.slots
        if slots is None or output.dim() != 3 or tuple(output.shape[:2]) != tuple(slots.shape):
            return None  # a later decoding step, or an embedding call that is not the prompt's
        batch = output.shape[0]
        values = self.embeddings.to(output.dtype).to(output.device).repeat(batch, 1)
        replaced = output.clone()
        replaced[slots.to(output.device)] = values
        return replaced

    def save(self, folder: Path) -> Path:
        from safetensors.torch import save_file

        path = Path(folder) / PREFIX_FILE
        save_file({"embeddings": self.embeddings.detach().float().cpu().contiguous()}, str(path),
                  metadata={"slot_token_id": str(self.slot_token_id)})  # fmt: skip
        return path

    @classmethod
    def load(cls, folder: Path) -> "PromptPrefix":
        from safetensors import safe_open

        path = Path(folder) / PREFIX_FILE
        with safe_open(str(path), framework="pt") as f:
            metadata = f.metadata() or {}
            embeddings = f.get_tensor("embeddings")
        if "slot_token_id" not in metadata:
            raise ValueError(f"{path}: metadata field 'slot_token_id' missing")
        return cls(embeddings, int(metadata["slot_token_id"]))


def slot_token_for(tokenizer: Any, image_token_ids: set[int]) -> int:
    """A token id for the slots: the pad (or eos) token — any id works, its embedding is replaced —
    but never an image placeholder, which the model would fill with image features."""
    for candidate in (tokenizer.pad_token_id, tokenizer.eos_token_id, tokenizer.unk_token_id, 0):
        if candidate is not None and candidate not in image_token_ids:
            return int(candidate)
    raise ValueError("no token id usable for prompt-tuning slots")
