"""The VLM's own vision tower as an encoder: same weights, same preprocessing, and the features
taken exactly where the VLM takes them for its projector (layer and CLS handling).

With ``pairs_with = "own_tower"`` the VLM and its vision baseline differ only in the language part.
The tower is lent by the loaded VLM (no second load). Supported: families whose profile
(models/families.py) names the tower of a LLaVA-style ``vision_tower`` → ``multi_modal_projector``
path (``vision_feature_layer``, ``vision_feature_select_strategy``), and any VLM that lends its own
tower with ``own_tower(name)`` (Prismatic: :class:`plainsight.models.prismatic.PrismaticOwnTower`).
"""

from __future__ import annotations

from typing import Any

import torch
from PIL import Image

from plainsight import geometry
from plainsight.errors import ConfigError
from plainsight.models.encoders import Features
from plainsight.models.families import profile_for, supporting


class OwnTowerEncoder:
    def __new__(cls, vlm: Any, name: str | None = None, image_resize: str = "letterbox") -> Any:
        lend = getattr(vlm, "own_tower", None)
        if lend is not None:  # the VLM knows where its projector reads (Prismatic): its own encoder object
            return lend(name)
        return super().__new__(cls)

    def __init__(self, vlm: Any, name: str | None = None, image_resize: str = "letterbox"):
        model = vlm.model
        config = model.config
        tower = profile_for(config.model_type).own_tower
        if tower is None:
            raise ConfigError(
                f"{vlm.name}: pairs_with = 'own_tower' supports {supporting('own_tower')} models; "
                f"{config.model_type!r} is not supported yet — pair it with an encoder entry instead"
            )
        self.name = name or f"{vlm.name}/own_tower"
        self.tower = getattr(model.model, tower)
        self.layer = config.vision_feature_layer
        self.strategy = config.vision_feature_select_strategy
        self.image_processor = vlm.processor.image_processor
        self.spec = geometry.spec_from_hf(self.image_processor)
        self.patch_size = int(config.vision_config.patch_size)
        self.device, self.dtype, self.batch_size = vlm.device, vlm.dtype, vlm.batch_size
        self.image_resize = image_resize  # the VLM entry's: the tower sees images as the VLM sees them

    def _shown(self, image: Image.Image) -> tuple[Image.Image, geometry.PointTransform]:
        """The image as the VLM's view gives it to the processor (letterboxed where it would be cropped), and
        where its points land in the processor's output."""
        if self.image_resize == "letterbox":
            return geometry.letterboxed(self.spec, image)
        return image, geometry.plan(self.spec, image.size)

    def projector_input(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """(B, tokens, C): what the VLM feeds its projector for these pixels."""
        hidden = self.tower(pixel_values, output_hidden_states=True).hidden_states
        layers = [self.layer] if isinstance(self.layer, int) else list(self.layer)
        picked = [hidden[i][:, 1:] if self.strategy == "default" else hidden[i] for i in layers]
        return torch.cat(picked, dim=-1)

    @torch.inference_mode()
    def encode(self, images: list[Image.Image]) -> list[Features]:
        out: list[Features] = []
        for start in range(0, len(images), self.batch_size):
            shown = [self._shown(im.convert("RGB")) for im in images[start : start + self.batch_size]]
            batch = [im for im, _ in shown]
            pixels = self.image_processor(images=batch, return_tensors="pt")["pixel_values"].to(self.device, self.dtype)
            tokens = self.projector_input(pixels)
            h_in, w_in = pixels.shape[-2:]
            gh, gw = h_in // self.patch_size, w_in // self.patch_size
            if self.strategy != "default":
                tokens = tokens[:, 1:]  # the grid is read without CLS even when the VLM keeps it
            grids = tokens.float().reshape(len(batch), gh, gw, -1).permute(0, 3, 1, 2).cpu()
            for (_, transform), grid in zip(shown, grids):
                out.append(Features(grid, grid.mean(dim=(1, 2)), transform))
        return out
