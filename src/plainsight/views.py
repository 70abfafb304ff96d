"""What a VLM is shown for an item: markers drawn, images composed, letterboxed for its processor.

``vlm_view`` is the one place that decides the pixels a VLM sees (the runner, ``plainsight show``,
the report's item views, ``plainsight adapt`` and the contact sheet all call it), and whether an
item is invalid for the model because its preprocessing would crop an image or a marker away.
"""

from __future__ import annotations

from typing import Any, Callable

from PIL import Image

from plainsight import geometry, render
from plainsight.items import Item


def vlm_preprocess_spec(vlm: Any) -> geometry.PreprocessSpec | None:
    """The geometric preprocessing a VLM applies to its images, when we can model it.

    A VLM that preprocesses by itself (Prismatic) says so with ``preprocess_spec``; otherwise
    the spec is read from its transformers image processor.
    """
    own = getattr(vlm, "preprocess_spec", None)
    if own is not None:
        return own
    processor = getattr(vlm, "processor", None)
    image_processor = getattr(processor, "image_processor", None)
    if image_processor is None:
        return None
    try:
        return geometry.spec_from_hf(image_processor)
    except (ValueError, NotImplementedError, KeyError, TypeError):
        return None


def compose_view(images: list[Image.Image], image_mode: str) -> tuple[list[Image.Image], list[tuple[int, int]]]:
    """The images a VLM receives for an item in an image mode, and each source image's offset in them."""
    if image_mode == "side_by_side":
        canvas, offsets = render.compose_side_by_side(images)
        return [canvas], offsets
    return images, [(0, 0)] * len(images)


def vlm_view(
    render_fn: Callable[[Item, list[Image.Image]], list[Image.Image]],
    item: Item,
    image_mode: str,
    spec: geometry.PreprocessSpec | None,
    *,
    blind: bool = False,
    images: list[Image.Image] | None = None,
    image_resize: str = "letterbox",
) -> tuple[list[Image.Image], str | None]:
    """What the VLM is shown for an item, or the reason the item is invalid for it.

    ``image_resize = "letterbox"`` (default): a shown image that the model's preprocessing would
    crop is first padded with the processor's mean colour to the crop's aspect ratio (LLaVA's
    ``expand2square``), so the model sees all of it. ``"processor"``: the processor's own resize
    and crop, and an item any of whose images (or markers) is cropped, even partly, is invalid,
    with each image's visible share in the reason — never silently scored on a part.
    Blind runs replace every image by a white one of the same size before composition.
    """
    if blind:
        sources = [Image.new("RGB", tuple(im.size), (255, 255, 255)) for im in item.images]
    else:
        sources = render_fn(item, images if images is not None else item.load_images())
    shown, offsets = compose_view(sources, image_mode)
    if spec is None:
        return shown, None
    shown = list(shown)
    # Which shown image holds each source image, and where.
    holders = [0] * len(sources) if image_mode == "side_by_side" else list(range(len(sources)))
    offsets = list(offsets)
    if image_resize == "letterbox":
        for idx, target in enumerate(shown):
            box = geometry.letterbox_for(spec, target.size)
            if box is not None:
                shown[idx] = box.apply(target)
                offsets = [(dx + box.offset[0], dy + box.offset[1]) if holders[i] == idx else (dx, dy)
                           for i, (dx, dy) in enumerate(offsets)]  # fmt: skip
    shares = [
        geometry.visible_share(spec, shown[holders[i]].size, (dx, dy, dx + im.size[0], dy + im.size[1]))
        for i, (im, (dx, dy)) in enumerate(zip(sources, offsets))
    ]
    if min(shares) < 1.0:
        visible = ", ".join(f"image {i + 1} {share:.0%}" for i, share in enumerate(shares))
        return shown, (
            f"only partly visible after the model's preprocessing ({spec.describe()}): {visible} "
            f"(image_resize = {image_resize!r}; 'letterbox' keeps every image whole)"
        )
    for idx, (im, (dx, dy)) in enumerate(zip(item.images, offsets)):
        transform = geometry.plan(spec, shown[holders[idx]].size)
        for label, (x, y) in im.points.items():
            if not transform.contains((x + dx, y + dy)):
                return shown, (
                    f"marker {label} at ({x:.0f}, {y:.0f}) of image {idx + 1} is cropped away by the "
                    f"model's preprocessing ({spec.source or 'image processor'})"
                )
    return shown, None
