"""Correspondence tasks: low-level matching, semantic correspondence, functional correspondence.

Each test is one task × model pair. The vision test gates the encoder's readout;
the VLM test gates the VLM against chance, against its paired vision baseline on
the same items, and against its own blind (white-image) run.
"""

import pytest

pytestmark = pytest.mark.plainsight_family("correspondence")


def test_vision(vision_case, plainsight):
    """The encoder's nearest-feature readout finds the corresponding point."""
    record = plainsight.evaluate(vision_case)
    plainsight.gate(record)


def test_vlm(vlm_case, plainsight):
    """The VLM picks the corresponding point as well as its own vision baseline does, and uses the image."""
    record = plainsight.evaluate(vlm_case)
    plainsight.gate(record)


@pytest.mark.probe
def test_probe(probe_case, plainsight):
    """Layer-wise: the correspondence readout on the VLM's image-token states at every LLM layer (run with -m probe)."""
    plainsight.probe(probe_case)
