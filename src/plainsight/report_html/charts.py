"""report.html's figures as inline SVG: pure functions from records (numbers) to SVG strings.

1. ``accuracy_figure``, the paper-style figure: each VLM's accuracy beside its paired vision readout,
   its blind control (white images) and, when probed, its best layer-wise readout point, with Wilson
   95% whiskers, the chance line and the chance floor; encoders no VLM pairs with get their own bar;
2. ``answer_distribution``: a VLM's answer shares per letter against the gold and blind shares,
   with TV(pred, gold) and TV(pred, blind);
3. ``layer_curve``: a probe record's ``layer_series`` (point 0 = pre-LLM) against the VLM's answer.

No I/O and nothing random: the same records give the same bytes. Every string taken from the data is escaped.
"""

from __future__ import annotations

import math
from collections import Counter
from html import escape
from typing import Any, Callable, Iterable

from plainsight.scoring import wilson_interval

Bars = list[tuple[str, dict[str, Any] | None]]
"""One figure group's bars: (role, record or None when the run is missing)."""

ROLE_COLOURS = {"vision": "#3b6fb6", "vlm": "#e8772e", "blind": "#a3a3a3", "probe": "#7b52ab"}
ROLE_SHORT = {"vision": "vision", "vlm": "VLM", "blind": "blind", "probe": "probe"}
GOLD_COLOUR = "#2f2f2f"
VERDICT_COLOURS = {
    "pass": "#1f7a3a",
    "fail": "#b3261e",
    "xfail": "#b06000",
    "skip": "#6b6b6b",
    "not_comparable": "#6a3d9a",
}
INK, MUTED, GRID = "#222", "#666", "#e3e3e3"

# Figure geometry (px). Text widths are estimated at CHAR_W px per character of 12 px sans-serif.
CHAR_W = 6.6
PLOT_H = 220
BAR_W, BAR_GAP, GROUP_PAD = 34, 8, 30
AXIS_LEFT, AXIS_RIGHT_LABELS = 56, 118


# ---------------------------------------------------------------------------------------------
# small formatting and SVG helpers


def _pct(x: float | None, digits: int = 1) -> str:
    return "–" if x is None else f"{100 * x:.{digits}f}%"


def _num(x: float | None, digits: int = 3) -> str:
    return "–" if x is None else f"{x:.{digits}f}"


def model_label(record: dict[str, Any]) -> str:
    """The model as the page names it (figures, tables, failed items); smoke runs are marked."""
    return record["model"] + (" (smoke)" if record.get("smoke") else "")


def _f(x: float) -> str:
    """A coordinate: 1 decimal, no '-0.0'."""
    s = f"{x:.1f}"
    return "0.0" if s == "-0.0" else s


def _text(x: float, y: float, text: str, *, anchor: str = "start", size: int = 12, fill: str = INK,
          weight: str = "normal", extra: str = "") -> str:  # fmt: skip
    bold = f' font-weight="{weight}"' if weight != "normal" else ""
    return (
        f'<text x="{_f(x)}" y="{_f(y)}" font-size="{size}" fill="{fill}" text-anchor="{anchor}"{bold}{extra}>'
        f"{escape(text)}</text>"
    )


def _line(x1: float, y1: float, x2: float, y2: float, *, stroke: str = INK, width: float = 1, extra: str = "") -> str:
    return (
        f'<line x1="{_f(x1)}" y1="{_f(y1)}" x2="{_f(x2)}" y2="{_f(y2)}" '
        f'stroke="{stroke}" stroke-width="{width}"{extra}/>'
    )


def _text_width(text: str, size: int = 12) -> float:
    return len(text) * CHAR_W * size / 12


def _shorten(text: str, max_chars: int) -> str:
    return text if len(text) <= max_chars else text[: max_chars - 1] + "…"


def _spread(positions: list[float], min_gap: float) -> list[float]:
    """Nudge label y positions apart (keeping their order) so that none are closer than ``min_gap``."""
    order = sorted(range(len(positions)), key=lambda i: positions[i])
    out = list(positions)
    for prev, cur in zip(order, order[1:]):
        if out[cur] - out[prev] < min_gap:
            out[cur] = out[prev] + min_gap
    return out


def _y_axis(x0: float, x1: float, y_of: Callable[[float], float], top: float, ticks: Iterable[float]) -> list[str]:
    """Horizontal grid lines with percentage labels, and the axis line."""
    out = []
    for t in ticks:
        y = y_of(t)
        out.append(_line(x0, y, x1, y, stroke=GRID))
        out.append(_text(x0 - 6, y + 4, f"{round(100 * t)}%", anchor="end", size=11, fill=MUTED))
    out.append(_line(x0, y_of(0), x0, y_of(top), stroke="#999"))
    out.append(_line(x0, y_of(0), x1, y_of(0), stroke="#999"))
    return out


def _legend(entries: list[tuple[str, str]], x: float, y: float, max_width: float) -> tuple[list[str], float]:
    """Legend swatches in rows; ``entries`` are (swatch SVG kind/colour, label). Returns (SVG parts, height)."""
    out, cx, cy = [], x, y
    for swatch, label in entries:
        w = 20 + _text_width(label, 11) + 14
        if cx > x and cx + w > x + max_width:
            cx, cy = x, cy + 17
        kind, _, colour = swatch.partition(":")
        if kind == "box":
            out.append(f'<rect x="{_f(cx)}" y="{_f(cy - 9)}" width="14" height="10" fill="{colour}"/>')
        elif kind == "dash":
            out.append(_line(cx, cy - 4, cx + 16, cy - 4, stroke=colour, width=1.5, extra=' stroke-dasharray="4 3"'))
        elif kind == "faint":
            out.append(_line(cx, cy - 4, cx + 16, cy - 4, stroke=colour, width=2.5, extra=' stroke-opacity="0.55"'))
        elif kind == "whisker":
            out.append(_line(cx + 7, cy - 11, cx + 7, cy + 2, stroke=colour, width=1.3))
            out.append(_line(cx + 3, cy - 11, cx + 11, cy - 11, stroke=colour, width=1.3))
            out.append(_line(cx + 3, cy + 2, cx + 11, cy + 2, stroke=colour, width=1.3))
        elif kind == "band":
            out.append(
                f'<rect x="{_f(cx)}" y="{_f(cy - 10)}" width="16" height="12" fill="{colour}" fill-opacity="0.2"/>'
            )
            out.append(_line(cx, cy - 4, cx + 16, cy - 4, stroke=colour, width=2))
        elif kind == "dot":
            dotted = ' stroke-dasharray="1.5 2.5"'
            out.append(_line(cx, cy - 4, cx + 16, cy - 4, stroke=colour, width=1.5, extra=dotted))
        out.append(_text(cx + 20, cy, label, size=11, fill=INK))
        cx += w
    return out, cy - y + 17


def _svg(width: float, height: float, cls: str, label: str, body: list[str]) -> str:
    return (
        f'<svg class="{cls}" width="{round(width)}" height="{round(height)}" '
        f'viewBox="0 0 {round(width)} {round(height)}" role="img" aria-label="{escape(label)}">'
        f"<title>{escape(label)}</title>" + "".join(body) + "</svg>"
    )


def _frame(legend_entries: list[tuple[str, str]], width: float, plot_w: float
           ) -> tuple[list[str], Callable[[float], float], float, float]:  # fmt: skip
    """An accuracy plot's legend and 0–100% axis: (SVG parts, y of an accuracy, plot top, plot bottom)."""
    legend, legend_h = _legend(legend_entries, 12, 16, width - 16)
    top = 16 + legend_h + 16
    bottom = top + PLOT_H

    def y_of(v: float) -> float:
        return bottom - v * PLOT_H

    body = list(legend) + _y_axis(AXIS_LEFT, AXIS_LEFT + plot_w, y_of, 1.0, [0, 0.2, 0.4, 0.6, 0.8, 1.0])
    return body, y_of, top, bottom


# ---------------------------------------------------------------------------------------------
# 1. the paper-style figure


def _bar_groups(records: list[dict[str, Any]]) -> list[tuple[str, Bars, dict[str, Any] | None]]:
    """(group label, [(role, record or None)], the VLM record or None) per VLM, then per unpaired encoder.

    A VLM's group holds its paired vision readout, itself, its blind run and, when probed, its
    best layer-wise readout point; a probe without a VLM record and an encoder no VLM pairs
    with get groups of their own.
    """
    by_key = {(r["model"], r["role"]): r for r in records}
    vlm_models = {r["model"] for r in records if r["role"] == "vlm"}
    groups = []
    paired = set()
    for vlm in (r for r in records if r["role"] == "vlm"):
        vision_model = vlm.get("paired_with")
        vision = by_key.get((vision_model, "vision")) if vision_model else None
        if vision_model:
            paired.add(vision_model)
        bars: Bars = []
        if vision_model:
            bars.append(("vision", vision))
        bars += [("vlm", vlm), ("blind", by_key.get((vlm["model"], "blind")))]
        if (vlm["model"], "probe") in by_key:
            bars.append(("probe", by_key[(vlm["model"], "probe")]))
        groups.append((model_label(vlm), bars, vlm))
    for enc in (r for r in records if r["role"] == "vision" and r["model"] not in paired):
        groups.append((model_label(enc), [("vision", enc)], None))
    for probe in (r for r in records if r["role"] == "probe" and r["model"] not in vlm_models):
        groups.append((model_label(probe), [("probe", probe)], None))
    return groups


def _group_subtitle(bars: Bars, vlm: dict[str, Any] | None) -> str:
    if vlm is not None:
        return f"vs {vlm['paired_with']}" if vlm.get("paired_with") else "no vision pair"
    return "vision readout" if bars[0][0] == "vision" else "layer probe only"


def _task_chance(records: list[dict[str, Any]]) -> float | None:
    values = Counter(r["chance"] for r in records if r.get("chance") is not None)
    return values.most_common(1)[0][0] if values else None


def accuracy_figure(task: str, records: list[dict[str, Any]]) -> str:
    groups = _bar_groups(records)
    chance = _task_chance(records)
    slots = []
    for label, bars, vlm in groups:
        sub = _group_subtitle(bars, vlm)
        label_w = max(_text_width(_shorten(label, 30)), _text_width(_shorten(sub, 34), 11))
        bars_w = len(bars) * BAR_W + (len(bars) - 1) * BAR_GAP
        slots.append(max(bars_w, label_w) + GROUP_PAD)
    plot_w = max(sum(slots), 480)
    slots = [slot * plot_w / sum(slots) for slot in slots] if slots else slots
    width = AXIS_LEFT + plot_w + AXIS_RIGHT_LABELS
    legend_entries = [
        (f"box:{ROLE_COLOURS['vision']}", "vision readout"),
        (f"box:{ROLE_COLOURS['vlm']}", "VLM"),
        (f"box:{ROLE_COLOURS['blind']}", "blind (white images)"),
    ]
    if any(role == "probe" for _, bars, _ in groups for role, _ in bars):
        legend_entries.append((f"box:{ROLE_COLOURS['probe']}", "layer probe, best point"))
    legend_entries += [("whisker:#222", "Wilson 95% CI"), ("dash:#222", "chance"), ("faint:#777", "chance floor")]
    body, y_of, top, bottom = _frame(legend_entries, width, plot_w)
    height = bottom + 62
    body.append(_text(14, (top + bottom) / 2, "accuracy", anchor="middle", size=12, fill=MUTED,
                      extra=f' transform="rotate(-90 14 {_f((top + bottom) / 2)})"'))  # fmt: skip
    x = AXIS_LEFT
    for (label, bars, vlm), slot in zip(groups, slots):
        bars_w = len(bars) * BAR_W + (len(bars) - 1) * BAR_GAP
        bx = x + (slot - bars_w) / 2
        for role, record in bars:
            body += _bar(bx, role, record, y_of)
            body.append(_text(bx + BAR_W / 2, bottom + 13, ROLE_SHORT[role], anchor="middle", size=10, fill=MUTED))
            bx += BAR_W + BAR_GAP
        cx = x + slot / 2
        name = _text(cx, bottom + 30, _shorten(label, 30), anchor="middle", size=12, weight="600")
        body.append(f"<g><title>{escape(label)}</title>{name}</g>")
        verdict = (vlm if vlm is not None else bars[0][1] or {}).get("verdict") or ""
        subtitle = _shorten(_group_subtitle(bars, vlm), 34)
        body.append(_text(cx, bottom + 44, subtitle, anchor="middle", size=11, fill=MUTED))
        if verdict:
            body.append(_text(cx, bottom + 58, verdict, anchor="middle", size=11, weight="600",
                              fill=VERDICT_COLOURS.get(verdict, MUTED)))  # fmt: skip
        x += slot
    if chance is not None:
        y = y_of(chance)
        body.append(_line(AXIS_LEFT, y, AXIS_LEFT + plot_w, y, stroke=INK, width=1.3, extra=' stroke-dasharray="6 4"'))
        body.append(_text(AXIS_LEFT + plot_w + 6, y + 4, f"chance {_pct(chance)}", size=11, fill=INK))
    return _svg(width, height, "task-figure", f"{task}: vision readout vs VLM vs blind control", body)


def findings_figure(vlm_model: str, records: list[dict[str, Any]]) -> str:
    """The paper's Figure 1 for one VLM: per task its paired vision readout, itself and its blind run,
    with Wilson whiskers, each task's chance line and the finding (``plainsight.findings``) beneath."""
    from plainsight.findings import finding

    by_key = {(r["task"], r["model"], r["role"]): r for r in records}
    tasks = sorted({r["task"] for r in records if r["model"] == vlm_model and r["role"] == "vlm"})
    roles = ("vision", "vlm", "blind")
    group_w = len(roles) * BAR_W + (len(roles) - 1) * BAR_GAP
    slot = max(group_w + GROUP_PAD, _text_width("overlooks its encoder", 11) + 12)
    plot_w = slot * max(1, len(tasks))
    width = AXIS_LEFT + plot_w + 16
    legend_entries = [(f"box:{ROLE_COLOURS['vision']}", "vision readout (paired)"),
                      (f"box:{ROLE_COLOURS['vlm']}", "VLM"), (f"box:{ROLE_COLOURS['blind']}", "blind (white images)"),
                      ("whisker:#222", "Wilson 95% CI"), ("dash:#222", "chance")]  # fmt: skip
    body, y_of, _, bottom = _frame(legend_entries, width, plot_w)
    height = bottom + 64
    for k, task in enumerate(tasks):
        vlm = by_key[(task, vlm_model, "vlm")]
        vision = by_key.get((task, vlm.get("paired_with"), "vision")) if vlm.get("paired_with") else None
        blind = by_key.get((task, vlm_model, "blind"))
        x0 = AXIS_LEFT + k * slot
        bx = x0 + (slot - group_w) / 2
        for role, record in zip(roles, (vision, vlm, blind)):
            body += _bar(bx, role, record, y_of)
            bx += BAR_W + BAR_GAP
        if vlm.get("chance") is not None:
            y = y_of(vlm["chance"])
            body.append(_line(x0 + 4, y, x0 + slot - 4, y, stroke=INK, width=1.3, extra=' stroke-dasharray="6 4"'))
        result = finding(vlm, vision, blind)
        colour = {"overlooks its encoder": "#b3261e", "uses the image": "#1f7a3a"}.get(result.label, MUTED)
        cx = x0 + slot / 2
        body.append(_text(cx, bottom + 16, _shorten(task.replace("_", " "), 26), anchor="middle", size=11,
                          weight="600"))  # fmt: skip
        body.append(f"<g><title>{escape(result.why)}</title>"
                    + _text(cx, bottom + 32, result.label, anchor="middle", size=11, fill=colour) + "</g>")  # fmt: skip
        if vlm.get("tv_to_blind") is not None:
            body.append(_text(cx, bottom + 47, f"TV to blind {vlm['tv_to_blind']:.2f}", anchor="middle", size=10,
                              fill=MUTED))  # fmt: skip
    return _svg(width, height, "findings-figure", f"{vlm_model}: vision readout vs VLM vs blind, every task", body)


def _bar(x: float, role: str, record: dict[str, Any] | None, y_of: Callable[[float], float]) -> list[str]:
    """One bar: the record's accuracy, its Wilson whisker, its chance floor and its value label."""
    base = y_of(0)
    if record is None or record.get("accuracy") is None or not record.get("n"):
        why = "no record" if record is None else (record.get("reason") or "n = 0")
        return [f"<g><title>{escape(why)}</title>"
                + f'<rect x="{_f(x)}" y="{_f(base - 24)}" width="{BAR_W}" height="24" fill="none" stroke="#bbb"'
                + ' stroke-dasharray="3 3"/>'
                + _text(x + BAR_W / 2, base - 8, "n/a", anchor="middle", size=10, fill=MUTED) + "</g>"]  # fmt: skip
    acc = record["accuracy"]
    lo, hi = record.get("ci95") or [None, None]
    tip = f"{model_label(record)} ({record['role']}): {_pct(acc)}"
    if lo is not None:
        tip += f" [{_pct(lo)}, {_pct(hi)}]"
    tip += f", {record.get('correct')}/{record['n']}"
    out = [f"<g><title>{escape(tip)}</title>",
           f'<rect x="{_f(x)}" y="{_f(y_of(acc))}" width="{BAR_W}" height="{_f(base - y_of(acc))}" '
           f'fill="{ROLE_COLOURS[role]}"/>']  # fmt: skip
    if record.get("chance_floor") is not None:
        y = y_of(record["chance_floor"])
        out.append(_line(x - 3, y, x + BAR_W + 3, y, stroke="#777", width=2.5, extra=' stroke-opacity="0.55"'))
    label_top = y_of(acc)
    if lo is not None and hi is not None:
        cx, ylo, yhi = x + BAR_W / 2, y_of(lo), y_of(hi)
        out.append(_line(cx, ylo, cx, yhi, stroke=INK, width=1.3))
        out.append(_line(cx - 5, ylo, cx + 5, ylo, stroke=INK, width=1.3))
        out.append(_line(cx - 5, yhi, cx + 5, yhi, stroke=INK, width=1.3))
        label_top = min(label_top, yhi)
    out.append(_text(x + BAR_W / 2, label_top - 4, _pct(acc), anchor="middle", size=10, fill=INK))
    out.append("</g>")
    return out


# ---------------------------------------------------------------------------------------------
# 2. answer distributions


def answer_distribution(vlm: dict[str, Any]) -> str:
    pred = vlm.get("answer_dist") or {}
    gold = vlm.get("gold_dist") or {}
    blind = vlm.get("blind_answer_dist") or {}
    letters = sorted(set(pred) | set(gold) | set(blind))
    series = [("VLM", pred, ROLE_COLOURS["vlm"]), ("gold", gold, GOLD_COLOUR)]
    if blind:
        series.append(("blind", blind, ROLE_COLOURS["blind"]))
    peak = max([v for _, d, _ in series for v in d.values() if v is not None] + [0.0])
    top = min(1.0, max(0.5, math.ceil(peak * 4) / 4))
    bar_w, inner_gap, letter_gap, left, plot_h = 11, 1, 14, 40, 110
    letter_w = len(series) * (bar_w + inner_gap) - inner_gap
    width = left + max(1, len(letters)) * (letter_w + letter_gap) + 8
    width = max(width, 230)
    legend, legend_h = _legend([(f"box:{c}", name) for name, _, c in series], left, 14, width - left)
    y0 = 14 + legend_h + 6 + plot_h

    def y_of(v: float) -> float:
        return y0 - v / top * plot_h

    body = list(legend)
    ticks = [t / 4 for t in range(0, int(round(top * 4)) + 1)]
    body += _y_axis(left, width - 6, y_of, top, ticks)
    x = left + letter_gap / 2
    for letter in letters:
        for name, dist, colour in series:
            share = dist.get(letter) or 0.0
            tip = escape(f"{name} {letter}: {_pct(share)}")
            body.append(f'<rect x="{_f(x)}" y="{_f(y_of(share))}" width="{bar_w}" height="{_f(y0 - y_of(share))}" '
                        f'fill="{colour}"><title>{tip}</title></rect>')  # fmt: skip
            x += bar_w + inner_gap
        body.append(_text(x - inner_gap - letter_w / 2, y0 + 14, letter, anchor="middle", size=11))
        x += letter_gap - inner_gap
    svg = _svg(width, y0 + 20, "dist-figure", f"{vlm['task']} × {vlm['model']}: answer shares per letter", body)
    facts = [
        f"<strong>{escape(model_label(vlm))}</strong>",
        f"TV(pred, gold) = {escape(_num(vlm.get('tv_to_gold')))}",
        f"TV(pred, blind) = {escape(_num(vlm.get('tv_to_blind')))}",
        f"accuracy {escape(_pct(vlm.get('accuracy')))} · blind {escape(_pct(vlm.get('blind_accuracy')))}",
    ]
    return f'<div class="dist">{svg}<div class="tv">{"<br>".join(facts)}</div></div>'


# ---------------------------------------------------------------------------------------------
# 3. per-layer curves


def layer_curve(probe: dict[str, Any], task_records: list[dict[str, Any]]) -> str:
    points = sorted((p for p in probe["layer_series"] if p.get("accuracy") is not None), key=lambda p: p["layer"])
    left, right_labels, plot_w, plot_h = AXIS_LEFT, 150, max(360, 22 * len(points)), 200
    legend_entries = [(f"band:{ROLE_COLOURS['probe']}", "readout on image-token states (Wilson 95% band)"),
                      ("dash:#222", "chance")]  # fmt: skip
    by_key = {(r["model"], r["role"]): r for r in task_records}
    vlm = by_key.get((probe["model"], "vlm"))
    vision = by_key.get((vlm.get("paired_with"), "vision")) if vlm and vlm.get("paired_with") else None
    refs = []  # (label, accuracy, colour)
    if vlm is not None and vlm.get("accuracy") is not None:
        refs.append(("VLM answer", vlm["accuracy"], ROLE_COLOURS["vlm"]))
        legend_entries.append((f"dot:{ROLE_COLOURS['vlm']}", "the VLM's own answer"))
    if vision is not None and vision.get("accuracy") is not None:
        refs.append((f"{vision['model']}", vision["accuracy"], ROLE_COLOURS["vision"]))
        legend_entries.append((f"dot:{ROLE_COLOURS['vision']}", "paired vision readout"))
    width = left + plot_w + right_labels
    legend, legend_h = _legend(legend_entries, left, 14, width - left - 10)
    top = 14 + legend_h + 10
    bottom = top + plot_h
    height = bottom + 44
    last = max((p["layer"] for p in points), default=1) or 1

    def x_of(layer: float) -> float:
        return left + 10 + layer / last * (plot_w - 20)

    def y_of(v: float) -> float:
        return bottom - v * plot_h

    body = list(legend)
    body += _y_axis(left, left + plot_w, y_of, 1.0, [0, 0.2, 0.4, 0.6, 0.8, 1.0])
    step = max(1, math.ceil(len(points) / 12))
    for i, p in enumerate(points):
        if i % step == 0 or i == len(points) - 1:
            label = "pre-LLM" if p["layer"] == 0 else str(p["layer"])
            body.append(_line(x_of(p["layer"]), bottom, x_of(p["layer"]), bottom + 4, stroke="#999"))
            body.append(_text(x_of(p["layer"]), bottom + 16, label, anchor="middle", size=10, fill=MUTED))
    body.append(_text(left + plot_w / 2, bottom + 34, "point: pre-LLM (projector output), then LLM layer 1…L",
                      anchor="middle", size=11, fill=MUTED))  # fmt: skip
    bands = [(p, wilson_interval(p["correct"], p["n"])) for p in points if p.get("n") and p.get("correct") is not None]
    if len(bands) == len(points) and points:
        upper = " ".join(f"{_f(x_of(p['layer']))},{_f(y_of(hi))}" for p, (_, hi) in bands)
        lower = " ".join(f"{_f(x_of(p['layer']))},{_f(y_of(lo))}" for p, (lo, _) in reversed(bands))
        body.append(
            f'<polygon points="{upper} {lower}" fill="{ROLE_COLOURS["probe"]}" fill-opacity="0.2" stroke="none"/>'
        )
    right_labels_at: list[tuple[str, float, str]] = []
    if probe.get("chance") is not None:
        y = y_of(probe["chance"])
        body.append(_line(left, y, left + plot_w, y, stroke=INK, width=1.3, extra=' stroke-dasharray="6 4"'))
        right_labels_at.append((f"chance {_pct(probe['chance'])}", y, INK))
    for label, acc, colour in refs:
        y = y_of(acc)
        body.append(_line(left, y, left + plot_w, y, stroke=colour, width=1.6, extra=' stroke-dasharray="1.5 2.5"'))
        right_labels_at.append((_shorten(f"{label} {_pct(acc)}", 22), y, colour))
    spread = _spread([y for _, y, _ in right_labels_at], 13)
    for (label, _, colour), y in zip(right_labels_at, spread):
        body.append(_text(left + plot_w + 6, y + 4, label, size=11, fill=colour))
    if points:
        path = " ".join(f"{_f(x_of(p['layer']))},{_f(y_of(p['accuracy']))}" for p in points)
        body.append(f'<polyline points="{path}" fill="none" stroke="{ROLE_COLOURS["probe"]}" stroke-width="2"/>')
        for p in points:
            tip = f"{p.get('point', p['layer'])}: {_pct(p['accuracy'])} ({p.get('correct')}/{p.get('n')})"
            body.append(f'<circle cx="{_f(x_of(p["layer"]))}" cy="{_f(y_of(p["accuracy"]))}" r="3" '
                        f'fill="{ROLE_COLOURS["probe"]}"><title>{escape(tip)}</title></circle>')  # fmt: skip
        best = next((p for p in points if p["layer"] == probe.get("best_layer")), None)
        if best is not None:
            bx, by = x_of(best["layer"]), y_of(best["accuracy"])
            best_label = f"best: {best.get('point', best['layer'])} {_pct(best['accuracy'])}"
            body.append(f'<circle cx="{_f(bx)}" cy="{_f(by)}" r="6" fill="none" stroke="{INK}" stroke-width="1.3"/>')
            anchor = "end" if bx > left + plot_w * 0.7 else "start"
            body.append(_text(bx + (-9 if anchor == "end" else 9), max(top + 10, by - 9),
                              best_label, anchor=anchor, size=11))  # fmt: skip
    title = f"{probe['task']} × {model_label(probe)}: readout accuracy per layer (n = {probe.get('n')})"
    caption = f"<h4>{escape(model_label(probe))} · n = {escape(str(probe.get('n')))}</h4>"
    return f"<div>{caption}{_svg(width, height, 'layer-figure', title, body)}</div>"
