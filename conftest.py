"""Root conftest: registers the plainsight plugin when the package is not installed.

Installed (``pip install -e .``), the plugin comes from the ``pytest11`` entry point;
registering it here as well would run every hook twice.
"""

import sys
from importlib.metadata import entry_points
from pathlib import Path

if not any(ep.name == "plainsight" for ep in entry_points(group="pytest11")):
    sys.path.insert(0, str(Path(__file__).parent / "src"))
    pytest_plugins = ["plainsight.plugin"]
