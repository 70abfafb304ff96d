"""Layer-wise probing: the task's vision readout applied to the VLM's image-token states at every LLM layer.

One forward per item with hidden states; the image tokens of each image are mapped back to
its patch grid, and the readout runs per layer. Point 0 is the pre-LLM state (the projector
output placed in the input embeddings), points 1..L the LLM layers. Supported grids: one fixed
square grid per image (families whose profile says ``probe_grid``: LLaVA), and VLMs that map their
own states back (``layer_features``: Prismatic, whose one image per prompt is the item's images
side by side); other families raise ConfigError (skip with the reason).
"""

from __future__ import annotations

import math
from typing import Any, Mapping

import torch

from plainsight import geometry
from plainsight.errors import ConfigError
from plainsight.items import Item
from plainsight.models.encoders import Features
from plainsight.models.families import profile_for, supporting
from plainsight.models.vlms import HFVLM, VLMRequest
from plainsight.readouts import READOUTS
from plainsight.scoring import choose


def image_token_states(vlm: HFVLM, request: VLMRequest) -> list[list[torch.Tensor]]:
    """[layer][image] → (C, gh, gw) hidden states at each image's tokens (layer 0 = input embeddings)."""
    config = vlm.model.config
    if not profile_for(config.model_type).probe_grid or not isinstance(vlm, HFVLM):
        raise ConfigError(
            f"{vlm.name}: layer-wise probing supports {supporting('probe_grid')} image-token grids, "
            f"not {config.model_type!r}"
        )
    inputs = vlm._inputs([request], ())
    with torch.inference_mode():
        hidden = vlm.model(**inputs, output_hidden_states=True).hidden_states
    vlm.forward_count += 1
    positions = (inputs["input_ids"][0] == config.image_token_id).nonzero().squeeze(-1)
    per_image = len(positions) // len(request.images)
    side = math.isqrt(per_image)
    if side * side != per_image or per_image * len(request.images) != len(positions):
        raise ConfigError(
            f"{vlm.name}: {len(positions)} image tokens for {len(request.images)} images is not a square grid each"
        )
    states = []
    for layer in hidden:
        tokens = layer[0, positions].float().cpu()
        states.append([t.reshape(side, side, -1).permute(2, 0, 1) for t in tokens.split(per_image)])
    return states


def layer_series(vlm: HFVLM, task: Any, items: list[Item], *, image_resize: str = "letterbox",
                 data_faults: Mapping[str, str] | None = None) -> list[dict[str, Any]]:  # fmt: skip
    """Per layer: n, n_valid, correct, accuracy (and on valid items) of the readout on clean images (exact coordinates).

    With ``image_resize = "letterbox"`` each image is padded as the VLM's view pads it (where its processor would crop).
    Items in ``data_faults`` (item id → the fault) are not read: they count in ``n``, not in ``n_valid``.
    """
    readout = READOUTS.get(task.readout).answer
    own = getattr(vlm, "layer_features", None)  # a VLM with its own image-token layout (Prismatic)
    spec = vlm.preprocess_spec if own is not None else geometry.spec_from_hf(vlm.processor.image_processor)
    correct: list[int] = []
    n = 0
    for item in items:
        if data_faults and item.id in data_faults:
            continue
        images = item.load_images()
        if own is not None:
            per_layer = own(VLMRequest(images, item.prompt, item.choices))
        else:
            if image_resize == "letterbox":
                shown, transforms = map(list, zip(*(geometry.letterboxed(spec, im) for im in images)))
            else:
                shown, transforms = images, [geometry.plan(spec, im.size) for im in images]
            per_layer = [[Features(grid, grid.mean(dim=(1, 2)), t) for grid, t in zip(grids, transforms)]
                         for grids in image_token_states(vlm, VLMRequest(shown, item.prompt, item.choices))]  # fmt: skip
        if not correct:
            correct = [0] * len(per_layer)
        valid = True
        for layer, feats in enumerate(per_layer):
            result = readout(_Named(vlm.name, spec), item, feats)
            if result.scores is None:
                valid = False
                break
            correct[layer] += choose(result.scores, item.choices).letter == item.gold
        n += valid
    # Like every record: accuracy over all items (an invalid one counts wrong), the scored ones beside it.
    return [
        {"layer": i, "point": "pre-LLM" if i == 0 else f"LLM layer {i}", "n": len(items), "n_valid": n,
         "correct": c, "accuracy": round(c / len(items), 6) if items else None,
         "accuracy_valid": round(c / n, 6) if n else None}
        for i, c in enumerate(correct)
    ]  # fmt: skip


class _Named:
    """What a readout needs to know about the 'encoder' behind precomputed features."""

    def __init__(self, name: str, spec: Any):
        self.name, self.spec = name, spec
