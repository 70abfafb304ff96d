"""Vision readouts: how an encoder answers a task's item from its features, one module per readout.

Each module registers its :class:`~plainsight.readouts.base.Readout` in ``READOUTS`` under the name
tasks give as ``TaskSpec.readout``; importing this package imports every module in it.
"""

import importlib
import pkgutil

from plainsight.readouts.base import READOUTS, Readout, ReadoutResult

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")

__all__ = ["READOUTS", "Readout", "ReadoutResult"]
