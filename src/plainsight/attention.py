"""Attention diagnostic: how much of the answer position's attention lands on image tokens, per layer.

The paper reports that tuning the LLM "best improves attention over images". Per language-model
layer we read the attention weights of the query at the answer position (the position the
letter scorer reads), average them over heads, and sum the weight on image-placeholder tokens:
a share in [0, 1]. It needs attention weights, so the model runs with eager attention (an entry
with ``attention_diagnostic = true`` is loaded that way); the hooks keep only that one query
row per layer, never the full maps.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Iterator

if TYPE_CHECKING:  # the runner imports mean_per_layer; keep `import plainsight.plugin` free of torch
    import torch


def image_attention_share(answer_row: torch.Tensor, is_image: torch.Tensor) -> torch.Tensor:
    """(B,) share of attention on image tokens, from the answer query's weights ``(B, heads, keys)``
    averaged over heads; ``is_image`` is ``(B, keys)``."""
    import torch

    if answer_row.dim() != 3 or is_image.shape != (answer_row.shape[0], answer_row.shape[2]):
        raise ValueError(f"expected weights (B, heads, keys) and mask (B, keys); got {tuple(answer_row.shape)} "
                         f"and {tuple(is_image.shape)}")  # fmt: skip
    weights = answer_row.float().mean(dim=1)
    total = weights.sum(dim=-1)
    on_image = (weights * is_image.to(weights.device, weights.dtype)).sum(dim=-1)
    return on_image / total.clamp_min(torch.finfo(weights.dtype).tiny)


class ImageAttentionProbe:
    """Forward hooks on each layer's self-attention that keep the answer query's weights."""

    def __init__(self, attention_layers: list[torch.nn.Module], image_token_ids: set[int]):
        self.layers = attention_layers
        self.image_token_ids = sorted(image_token_ids)
        self._rows: list[torch.Tensor | None] = []
        self._active = False
        self._handles = [layer.register_forward_hook(self._keep(i)) for i, layer in enumerate(attention_layers)]

    def _keep(self, index: int):
        def hook(module: Any, args: tuple, output: Any) -> None:
            if not self._active:
                return
            weights = output[1] if isinstance(output, tuple) and len(output) > 1 else None
            if weights is None:
                raise RuntimeError(
                    "the attention diagnostic needs attention weights, and this model's attention returned none: "
                    "load it with eager attention (`attention_diagnostic = true` in models.toml does)"
                )
            self._rows[index] = weights[:, :, -1, :].detach()

        return hook

    @contextmanager
    def capture(self, input_ids: torch.Tensor) -> Iterator[list[list[float]]]:
        """Within the block run ONE forward on ``input_ids``; afterwards the yielded list holds, per row,
        the image-attention share of every layer."""
        import torch

        shares: list[list[float]] = []
        self._rows = [None] * len(self.layers)
        self._active = True
        try:
            yield shares
        finally:
            self._active = False
        if any(row is None for row in self._rows):
            raise RuntimeError("the attention diagnostic saw no forward through every layer")
        ids = torch.tensor(self.image_token_ids, device=input_ids.device)
        is_image = torch.isin(input_ids, ids)
        per_layer = torch.stack(
            [image_attention_share(row, is_image.to(row.device)).cpu() for row in self._rows], dim=1
        )
        shares.extend(per_layer.tolist())
        self._rows = []

    def remove(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []


def mean_per_layer(rows: list[list[float] | None]) -> list[float] | None:
    """The per-layer mean over items (items without a value are left out); None when none has one."""
    present = [row for row in rows if row]
    if not present:
        return None
    return [round(sum(values) / len(present), 6) for values in zip(*present)]
