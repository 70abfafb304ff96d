"""Print task x model accuracy tables from a plainsight results.json (issue #20 pocket prototype).

.venv/bin/python scripts/pocket_table.py /tmp/pocket/report/results.json
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def main() -> None:
    data = json.loads(Path(sys.argv[1]).read_text())
    records = data["results"] if isinstance(data, dict) else data
    rows: dict[str, dict[str, str]] = {}
    columns: list[str] = []
    for r in records:
        name = r["model"] if r["role"] != "vlm" else f"{r['model']} (vlm)"
        cell = f"{r['accuracy']:.3f}"
        if r["role"] == "vlm":
            extra = [f"blind {r.get('blind_accuracy')}", f"TV→blind {r.get('tv_to_blind')}"]
            if r.get("vision_accuracy") is not None:
                extra.append(f"own tower {r.get('vision_accuracy')}")
            cell += " (" + ", ".join(str(e) for e in extra) + ")"
        rows.setdefault(r["task"], {})[name] = cell
        if name not in columns:
            columns.append(name)
    print("| task | " + " | ".join(columns) + " |")
    print("|---" * (len(columns) + 1) + "|")
    for task, cells in rows.items():
        print(f"| {task} | " + " | ".join(cells.get(c, "") for c in columns) + " |")


if __name__ == "__main__":
    main()
