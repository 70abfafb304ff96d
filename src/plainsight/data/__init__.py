"""Native-format loaders (one module per format) and the embedded benchmark."""

from __future__ import annotations

import os
from pathlib import Path

EMBEDDED_ENV = "PLAINSIGHT_EMBEDDED_DATA"


def embedded_root() -> Path:
    """The embedded benchmark folder (``fixtures/data`` of the checkout).

    ``$PLAINSIGHT_EMBEDDED_DATA`` overrides it; otherwise the folder is looked
    for above the current directory, then beside the source tree.
    """
    if os.environ.get(EMBEDDED_ENV):
        return Path(os.environ[EMBEDDED_ENV]).resolve()
    candidates = [Path.cwd(), *Path.cwd().parents, Path(__file__).resolve().parents[3]]
    for base in candidates:
        folder = base / "fixtures" / "data"
        if (folder / "ATTRIBUTION.md").is_file():
            return folder
    raise FileNotFoundError(
        "the embedded benchmark (fixtures/data/) was not found above the current directory; "
        f"run from the plainsight checkout, set ${EMBEDDED_ENV}, or pass --data-root"
    )
