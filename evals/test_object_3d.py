"""3D object awareness: which view shows a different object (MOCHI oddity trials).

The vision test gates the encoder's odd-one-out readout (the image whose pooled feature is
least similar to the others'); the VLM test gates the VLM against chance, against that
readout on the same trials, and against its own blind run.
"""

import pytest

pytestmark = pytest.mark.plainsight_family("object_3d")


def test_vision(vision_case, plainsight):
    """The encoder's pooled features single out the view of the other object."""
    record = plainsight.evaluate(vision_case)
    plainsight.gate(record)


def test_vlm(vlm_case, plainsight):
    """The VLM names the odd view as well as its encoder's readout does, and uses the images."""
    record = plainsight.evaluate(vlm_case)
    plainsight.gate(record)


@pytest.mark.probe
def test_probe(probe_case, plainsight):
    """Layer-wise: the same readout on the VLM's image-token states at every LLM layer (run with -m probe)."""
    plainsight.probe(probe_case)
