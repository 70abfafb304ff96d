"""The embedded benchmark: native-format datasets generated from packaged photos, with exact ground truth.

``build_all`` is what `plainsight fixtures build` runs; a new twin's builder joins a chain in CHAINS.
"""

from __future__ import annotations

import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from plainsight.embedded.art_style_twin import build_art_style_twin
from plainsight.embedded.blink_twin import build_blink_twin
from plainsight.embedded.depth_twin import build_cvbench_twin, build_nyuv2_twin
from plainsight.embedded.funkpoint_twin import build_funkpoint_twin
from plainsight.embedded.hpatches_twin import build_hpatches_twin
from plainsight.embedded.mochi_twin import build_mochi_twin
from plainsight.embedded.photos import attribution_markdown
from plainsight.embedded.spair_twin import build_spair_twin

# In this order (ATTRIBUTION.md lists each photo's datasets in it): the BLINK twin is drawn from the
# SPair and FunKPoint twins, and the CV-Bench twin balances its items against the layout prior of the
# NYUv2 twin.
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
# Two chains that share no files, each keeping those dependencies, of about equal work (~60 s each on
# one core): `build_all` runs them side by side.
CHAINS = [
    [build_nyuv2_twin, build_cvbench_twin, build_art_style_twin, build_hpatches_twin],
    [build_mochi_twin, build_spair_twin, build_funkpoint_twin, build_blink_twin],
]


def _build_chain(index: int, out_dir: Path, seed: int) -> list[dict]:
    return [builder(out_dir, seed=seed) for builder in CHAINS[index]]


def build_all(out_dir: Path, seed: int = 0, *, parallel: bool = True) -> dict:
    """Write every embedded dataset and ATTRIBUTION.md under ``out_dir``; returns a summary per dataset.

    With ``parallel`` the second chain of builders runs in a child process (the files are the same
    either way: every builder draws from its own seeded generators).
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if parallel:
        # spawn, not fork: the parent may hold torch's threads (a test session).
        with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn")) as pool:
            second = pool.submit(_build_chain, 1, out_dir, seed)
            results = _build_chain(0, out_dir, seed) + second.result()
    else:
        results = _build_chain(0, out_dir, seed) + _build_chain(1, out_dir, seed)
    chained = [builder for chain in CHAINS for builder in chain]
    results = [results[chained.index(builder)] for builder in BUILDERS]
    summary = {}
    used: dict[str, list[str]] = {}
    for result in results:
        summary[result["dataset"]] = {k: v for k, v in result.items() if k not in ("dataset", "photos")}
        for photo in result["photos"]:
            used.setdefault(photo, []).append(result["dataset"])
    (out_dir / "ATTRIBUTION.md").write_text(attribution_markdown(used))
    return summary
