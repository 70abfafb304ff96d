"""Art style: which of two paintings shares the reference painting's style (BLINK Art_Style).

The vision test gates the encoder's Gram-matrix readout (last-layer patch features, lower MSE
to the reference wins); the VLM test gates the VLM against chance, against that readout on
the same items, and against its own blind run.
"""

import pytest

pytestmark = pytest.mark.plainsight_family("art_style")


def test_vision(vision_case, plainsight):
    """The encoder's feature statistics (Gram matrix) match the reference's style, not its content."""
    record = plainsight.evaluate(vision_case)
    plainsight.gate(record)


def test_vlm(vlm_case, plainsight):
    """The VLM picks the same-style painting as well as its encoder's readout does, and uses the images."""
    record = plainsight.evaluate(vlm_case)
    plainsight.gate(record)


@pytest.mark.probe
def test_probe(probe_case, plainsight):
    """Layer-wise: the same readout on the VLM's image-token states at every LLM layer (run with -m probe)."""
    plainsight.probe(probe_case)
