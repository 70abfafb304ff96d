"""The embedded benchmark: native-format datasets generated from packaged photos, with exact ground truth.

``build_all`` is what `plainsight fixtures build` runs; each task slice adds its builder to BUILDERS.
"""

from __future__ import annotations

from pathlib import Path

from plainsight.embedded.art_style_twin import build_art_style_twin
from plainsight.embedded.blink_twin import build_blink_twin
from plainsight.embedded.depth_twin import build_cvbench_twin, build_nyuv2_twin
from plainsight.embedded.funkpoint_twin import build_funkpoint_twin
from plainsight.embedded.hpatches_twin import build_hpatches_twin
from plainsight.embedded.mochi_twin import build_mochi_twin
from plainsight.embedded.photos import attribution_markdown
from plainsight.embedded.spair_twin import build_spair_twin

# Order matters: the BLINK twin is drawn from the SPair and FunKPoint twins, and the CV-Bench twin balances its items against the layout prior of the NYUv2 twin.
BUILDERS = [
    build_hpatches_twin,
    build_spair_twin,
    build_funkpoint_twin,
    build_blink_twin,
    build_nyuv2_twin,
    build_cvbench_twin,
    build_mochi_twin,
    build_art_style_twin,
]


def build_all(out_dir: Path, seed: int = 0) -> dict:
    """Write every embedded dataset and ATTRIBUTION.md under ``out_dir``; returns a summary per dataset."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    summary = {}
    used: dict[str, list[str]] = {}
    for builder in BUILDERS:
        result = builder(out_dir, seed=seed)
        summary[result["dataset"]] = {k: v for k, v in result.items() if k not in ("dataset", "photos")}
        for photo in result["photos"]:
            used.setdefault(photo, []).append(result["dataset"])
    (out_dir / "ATTRIBUTION.md").write_text(attribution_markdown(used))
    return summary
