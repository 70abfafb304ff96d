"""Relative depth: which boxed object is closer.

The vision test gates the encoder's depth probe (a DPT head trained once on NYUv2 and
cached); the VLM test gates the VLM against chance, against that probe on the same items,
and against its own blind run.
"""

import pytest

pytestmark = pytest.mark.plainsight_family("depth")


def test_vision(vision_case, plainsight):
    """The encoder's depth probe orders the two boxed objects correctly."""
    record = plainsight.evaluate(vision_case)
    plainsight.gate(record)


def test_vlm(vlm_case, plainsight):
    """The VLM says which boxed object is closer as well as its encoder's probe does, and uses the image."""
    record = plainsight.evaluate(vlm_case)
    plainsight.gate(record)
