"""JSON documents the suite writes and reads back, each carrying a ``schema`` name and version."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from plainsight.errors import ConfigError


def read_json_document(path: Path, schema: str) -> dict[str, Any]:
    """A JSON file the suite wrote (results.json, plainsight_adapt.json), checked for its ``schema``; errors name the file."""
    try:
        document = json.loads(Path(path).read_text())
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(document, dict) or document.get("schema") != schema:
        found = document.get("schema") if isinstance(document, dict) else type(document).__name__
        raise ConfigError(f"{path}: field 'schema' is {found!r}; expected {schema!r}")
    return document
