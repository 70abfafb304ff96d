"""Vision readouts: how an encoder answers a task's item from its features (registry by name).

A readout is called as ``readout(encoder, item, features, **prepared)``; ``PREPARE`` holds,
for readouts that need it, what runs once per (task, encoder) first (training a probe).
"""

from plainsight.readouts.correspondence import ReadoutResult, correspondence_readout
from plainsight.readouts.depth import depth_readout, prepare_depth_probe
from plainsight.readouts.odd_one_out import odd_one_out_readout
from plainsight.readouts.style import style_readout

READOUTS = {
    "correspondence": correspondence_readout,
    "depth": depth_readout,
    "odd_one_out": odd_one_out_readout,
    "style": style_readout,
}
PREPARE = {"depth": prepare_depth_probe}

__all__ = ["PREPARE", "READOUTS", "ReadoutResult", "correspondence_readout", "depth_readout", "odd_one_out_readout",
           "style_readout"]
