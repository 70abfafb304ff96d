"""The paper's finding per (VLM, task), read off a run's records with Wilson 95% intervals.

Fu et al. 2025 report three things side by side: the VLM's own vision encoder solves the task through a
simple readout, the VLM does far worse, and the VLM's answers barely change when its images are white (its
blind run). ``finding`` names which of these a record pair shows; every claim rests on intervals that do not
overlap, never on point estimates alone.

- ``overlooks``: the paired vision readout is above chance (its interval's lower end above the chance floor)
  and above the VLM (the intervals do not overlap), and the VLM's interval overlaps its blind run's;
- ``uses the image``: the VLM is above its blind run (the intervals do not overlap);
- ``inconclusive``: neither, at this many items.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

OVERLOOKS = "overlooks its encoder"
USES_IMAGE = "uses the image"
INCONCLUSIVE = "inconclusive"


@dataclass(frozen=True)
class Finding:
    task: str
    vlm: str
    vision: str | None
    label: str  # OVERLOOKS, USES_IMAGE or INCONCLUSIVE
    why: str  # the intervals the label rests on


def _ci(record: dict[str, Any] | None) -> tuple[float, float] | None:
    if record is None or not record.get("n") or record.get("ci95") is None or record["ci95"][0] is None:
        return None
    low, high = record["ci95"]
    return float(low), float(high)


def _fmt(name: str, record: dict[str, Any], ci: tuple[float, float]) -> str:
    return f"{name} {record['accuracy']:.2f} [{ci[0]:.2f}, {ci[1]:.2f}]"


def finding(vlm: dict[str, Any], vision: dict[str, Any] | None, blind: dict[str, Any] | None) -> Finding:
    """The label of one VLM record given its paired vision record and its blind record (either may be None)."""
    v_ci, m_ci, b_ci = _ci(vision), _ci(vlm), _ci(blind)
    parts = []
    if v_ci is not None:
        parts.append(_fmt("vision", vision, v_ci))
    if m_ci is not None:
        parts.append(_fmt("VLM", vlm, m_ci))
    if b_ci is not None:
        parts.append(_fmt("blind", blind, b_ci))
    if vlm.get("tv_to_blind") is not None:
        parts.append(f"TV to blind {vlm['tv_to_blind']:.2f}")
    why = ", ".join(parts)
    label = INCONCLUSIVE
    if m_ci is not None and b_ci is not None:
        if m_ci[0] > b_ci[1]:
            label = USES_IMAGE
        elif v_ci is not None and v_ci[0] > float(vision.get("chance_floor") or 0.0) and v_ci[0] > m_ci[1]:
            if m_ci[0] <= b_ci[1] and b_ci[0] <= m_ci[1]:
                label = OVERLOOKS
    vision_name = vision["model"] if vision is not None else vlm.get("paired_with")
    return Finding(task=vlm["task"], vlm=vlm["model"], vision=vision_name, label=label, why=why)


def findings(records: list[dict[str, Any]]) -> list[Finding]:
    """One Finding per VLM record with a blind run, in the records' order (results.json dict form)."""
    by_key = {(r["task"], r["model"], r["role"]): r for r in records}
    out = []
    for r in records:
        if r["role"] != "vlm" or r.get("verdict") in ("skip", "error") and not r.get("n"):
            continue
        blind = by_key.get((r["task"], r["model"], "blind"))
        if blind is None:
            continue
        vision = by_key.get((r["task"], r["paired_with"], "vision")) if r.get("paired_with") else None
        out.append(finding(r, vision, blind))
    return out
