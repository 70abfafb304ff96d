"""The own tower reads the VLM's vision features exactly where its projector reads them."""

from __future__ import annotations

import pytest
import torch
from families import real_config
from PIL import Image

from plainsight.models.own_tower import OwnTowerEncoder
from plainsight.models.vlms import VLMRequest


def projector_inputs(vlm, images):
    """The tensor the projector receives during a real VLM forward (captured by a forward hook)."""
    captured = []
    handle = vlm.model.model.multi_modal_projector.register_forward_hook(
        lambda mod, args, out: captured.append(args[0])
    )
    try:
        vlm.score_letters([VLMRequest(images, "Which point?", ("A", "B", "C", "D"))])
    finally:
        handle.remove()
    return captured[0]


@pytest.fixture(scope="module")
def llava():
    return real_config("llava-hf__llava-1.5-7b-hf")


def image():
    return Image.fromarray(
        torch.randint(0, 255, (200, 260, 3), dtype=torch.uint8, generator=torch.Generator().manual_seed(0)).numpy()
    )


def test_own_tower_features_equal_the_projector_input(llava):
    tower = OwnTowerEncoder(llava, image_resize="processor")
    assert tower.layer == -2 and tower.strategy == "default"  # llava-1.5: second-to-last layer, CLS dropped
    feats = tower.encode([image()])[0]
    expected = projector_inputs(llava, [image()])[0]  # (576, C)
    assert feats.patches.shape[1:] == (24, 24)
    assert torch.allclose(feats.patches.permute(1, 2, 0).reshape(576, -1), expected.float(), atol=1e-5)


def test_letterboxed_own_tower_reads_what_the_vlm_reads_of_its_letterboxed_view(llava):
    """image_resize = "letterbox" (the default): the VLM is shown the image padded to the crop's square, and the
    tower encodes that same padded image; points map through the padding."""
    from plainsight.geometry import letterbox_for

    tower = OwnTowerEncoder(llava)
    box = letterbox_for(tower.spec, image().size)
    assert box is not None and box.canvas == (260, 260)
    feats = tower.encode([image()])[0]
    expected = projector_inputs(llava, [box.apply(image())])[0]
    assert torch.allclose(feats.patches.permute(1, 2, 0).reshape(576, -1), expected.float(), atol=1e-5)
    assert not torch.allclose(expected, projector_inputs(llava, [image()])[0], atol=1e-3)
    # the top-left pixel sits below the top pad: (0, 30) of the 260-px square, scaled by 336/260
    assert feats.transform.map((0, 0)) == pytest.approx(((0.5) * 336 / 260 - 0.5, (30.5) * 336 / 260 - 0.5))
    assert feats.transform.contains((259, 199)) and feats.transform.contains((0, 0))


@pytest.mark.parametrize("change", ["last_layer", "keep_cls"])
def test_another_layer_or_keeping_cls_does_not_match(llava, change):
    tower = OwnTowerEncoder(llava)
    pixels = tower.image_processor(images=[image()], return_tensors="pt")["pixel_values"]
    expected = projector_inputs(llava, [image()])[0]
    if change == "last_layer":
        tower.layer = -1
    else:
        tower.strategy = "full"
    with torch.inference_mode():
        got = tower.projector_input(pixels)[0]
    assert got.shape != expected.shape or not torch.allclose(got, expected, atol=1e-3)


def test_unsupported_family_says_so():
    from families import idefics3

    from plainsight.errors import ConfigError

    with pytest.raises(ConfigError, match="own_tower"):
        OwnTowerEncoder(idefics3())
