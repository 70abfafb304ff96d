"""Vision readouts: how an encoder answers a task's item from its features (registry by name)."""

from plainsight.readouts.correspondence import ReadoutResult, correspondence_readout

READOUTS = {"correspondence": correspondence_readout}

__all__ = ["READOUTS", "ReadoutResult", "correspondence_readout"]
