"""report.html: the run as one page to read, next to results.json, items.jsonl and report.md.

Per task, in task order (a table of contents links the sections; the run's metadata heads the page):

1. the paper-style figure: each VLM's accuracy beside its paired vision readout, its blind
   control (white images) and, when probed, its best layer-wise readout point, with Wilson 95%
   whiskers, the chance line and the chance floor; encoders no VLM pairs with get their own bar;
2. answer distributions: each VLM's answer shares per letter against the gold and blind shares,
   with TV(pred, gold) and TV(pred, blind);
3. per-layer curves when a probe record carries a ``layer_series`` (point 0 = pre-LLM);
4. every record of the task (report.md's summary columns) with its verdict, pairing and gate reason;
5. a browser of failed items per VLM: the image as the model saw it, gold, prediction (or why
   there was none) and the per-letter scores.

Everything is computed from results.json and items.jsonl; no model is touched.

Self-contained by design: the page must open offline and make no request at all. CSS is
inline, figures are inline SVG drawn here, images are ``data:image/png;base64`` URIs, there is
no JavaScript (``<details>`` folds the long parts), and a Content-Security-Policy meta makes a
browser refuse anything else. Every string taken from the data is escaped with ``html.escape``.
The same inputs give the same bytes: no clock is read (the only time shown is the metadata's).
"""

from __future__ import annotations

import base64
import json
import math
import re
from collections import Counter
from html import escape
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

from plainsight.report import (
    SUMMARY_HEADER, TUNING_HEADER, atomic_write, attention_series, sort_records, summary_rows, tuning_rows,
)
from plainsight.scoring import wilson_interval

ItemImages = Callable[[str, str, str], bytes | None]
"""(task, model, item_id) -> PNG bytes of the item as that model saw it, or None."""
Bars = list[tuple[str, dict[str, Any] | None]]
"""One figure group's bars: (role, record or None when the run is missing)."""

CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

ROLE_COLOURS = {"vision": "#3b6fb6", "vlm": "#e8772e", "blind": "#a3a3a3", "probe": "#7b52ab"}
ROLE_SHORT = {"vision": "vision", "vlm": "VLM", "blind": "blind", "probe": "probe"}
GOLD_COLOUR = "#2f2f2f"
VERDICT_COLOURS = {"pass": "#1f7a3a", "fail": "#b3261e", "xfail": "#b06000", "skip": "#6b6b6b", "not_comparable": "#6a3d9a"}
INK, MUTED, GRID = "#222", "#666", "#e3e3e3"

# Figure geometry (px). Text widths are estimated at CHAR_W px per character of 12 px sans-serif.
CHAR_W = 6.6
PLOT_H = 220
BAR_W, BAR_GAP, GROUP_PAD = 34, 8, 30
AXIS_LEFT, AXIS_RIGHT_LABELS = 56, 118

_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;color:#222;margin:0 auto;
max-width:1240px;padding:16px 24px 48px;line-height:1.4;background:#fff}
h1{font-size:1.5rem;margin:.2rem 0 .6rem}h2{font-size:1.25rem;margin:2rem 0 .4rem;padding-top:.6rem;border-top:2px solid #ddd}
h3{font-size:1rem;margin:1.1rem 0 .3rem}
table{border-collapse:collapse;font-size:.82rem;margin:.3rem 0;max-width:100%}
th,td{border:1px solid #ddd;padding:2px 7px;text-align:left;vertical-align:top;white-space:nowrap}
th{background:#f4f4f4;font-weight:600}td.num{text-align:right;font-variant-numeric:tabular-nums}
table.meta th{width:9rem}
nav.toc{font-size:.9rem;margin:.6rem 0}nav.toc a{margin-right:1rem;white-space:nowrap}
svg{display:block;max-width:100%;height:auto;font-family:system-ui,-apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif}
.figs{display:flex;flex-wrap:wrap;gap:10px 28px;align-items:flex-start}
.figs h3{margin-top:0}h4{margin:.2rem 0;font-size:.9rem}
.dist{display:flex;gap:10px;align-items:center;margin-bottom:8px}.dist .tv{font-size:.82rem}
.verdict{font-weight:600}
.verdict-pass{color:#1f7a3a}.verdict-fail{color:#b3261e}.verdict-xfail{color:#b06000}
.verdict-skip{color:#6b6b6b}.verdict-not_comparable{color:#6a3d9a}
td.reason{white-space:normal;min-width:10rem;font-size:.78rem;color:#444}
details{margin:.25rem 0}summary{cursor:pointer}
details.failures>summary{font-weight:600}
details.item{margin-left:1.2rem;border-left:3px solid #eee;padding-left:.6rem}
img.item-image{max-width:100%;max-height:420px;display:block;margin:.4rem 0;border:1px solid #ccc}
table.scores td,table.scores th{padding:1px 6px}
tr.gold td{background:#e6f4ea}tr.pred td{background:#fdecea}tr.gold.pred td{background:#e6f4ea}
.note{color:#666;font-size:.85rem}
"""


def load_run(report_dir: Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Read ``results.json`` and ``items.jsonl`` (absent items file: no items) from a report folder."""
    results = json.loads((report_dir / "results.json").read_text())
    items_path = report_dir / "items.jsonl"
    items = []
    if items_path.is_file():
        items = [json.loads(line) for line in items_path.read_text().splitlines() if line.strip()]
    return results, items


def write_html(
    report_dir: Path,
    results: dict[str, Any],
    items: list[dict[str, Any]],
    *,
    item_images: ItemImages | None = None,
    max_failures: int = 12,
) -> Path:
    """Write ``report_dir/report.html`` atomically (temp file in the folder, then rename); returns its path."""
    path = Path(report_dir) / "report.html"
    atomic_write(path, render_html(results, items, item_images=item_images, max_failures=max_failures))
    return path


def render_html(
    results: dict[str, Any],
    items: list[dict[str, Any]],
    *,
    item_images: ItemImages | None = None,
    max_failures: int = 12,
) -> str:
    """The page as a string (what ``write_html`` writes)."""
    records = sort_records(results.get("results", []))
    metadata = _metadata(results)
    tasks = sorted({r["task"] for r in records})
    anchors = _anchors(tasks)
    wrong_by_case = _wrong_items(items)
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f'<meta http-equiv="Content-Security-Policy" content="{escape(CSP)}">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        "<title>plainsight report</title>",
        f"<style>{_CSS}</style>",
        "</head><body>",
        "<h1>plainsight report</h1>",
        _metadata_table(metadata, records),
        _toc(tasks, anchors),
    ]
    for task in tasks:
        task_records = [r for r in records if r["task"] == task]
        parts.append(_task_section(task, anchors[task], task_records, wrong_by_case, item_images, max_failures))
    parts.append(
        '<p class="note">Accuracy is over every item and counts abstentions (ties, NaN, unparseable answers) '
        "and items invalid for a model (an image or marker its preprocessing would crop) as wrong, so all "
        "roles are measured on the same items; the gap to vision and McNemar use the items valid for both. "
        "Whiskers and bands are Wilson 95% intervals. TV(P, Q) = ½ Σ |P(x) − Q(x)| over the answers to "
        "scored items.</p>"
    )
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def rendered_item_images(
    data_root: Path | None = None,
    *,
    seed: int = 0,
    source: str | None = None,
    task_options: Mapping[str, Mapping[str, str]] | None = None,
    image_modes: Mapping[str, str] | None = None,
    max_side: int = 640,
) -> ItemImages:
    """An ``item_images`` drawing items from the dataset as a VLM is shown them; no model is loaded.

    Items are loaded once per task (``data_root`` None = the embedded benchmark) and drawn with
    the task's visual prompt in the model's image mode (``image_modes[model]``, default
    side_by_side); several images are pasted side by side, scaled to at most ``max_side`` px.
    The model's own resize/crop is not applied. Unknown items give None; a task whose items
    cannot be loaded raises the same error for each of its items.
    """
    from plainsight.runner import vlm_view
    from plainsight.tasks import LoadRequest, get_task

    loaded: dict[str, tuple[Any, dict[str, Any]] | Exception] = {}

    def item_images(task_id: str, model: str, item_id: str) -> bytes | None:
        if task_id not in loaded:
            try:
                task = get_task(task_id)
                options = dict((task_options or {}).get(task_id, {}))
                items = task.load_items(LoadRequest(data_root, seed=seed, source=source, options=options))
                loaded[task_id] = (task, {item.id: item for item in items})
            except Exception as exc:  # noqa: BLE001 - kept and raised again per item (shown on the page)
                loaded[task_id] = exc
        entry = loaded[task_id]
        if isinstance(entry, Exception):
            raise entry
        task, by_id = entry
        item = by_id.get(item_id)
        if item is None:
            return None
        from plainsight.render import image_strip

        shown, _ = vlm_view(task.render, item, (image_modes or {}).get(model, "side_by_side"), None)
        return _png_bytes(image_strip(shown), max_side)

    return item_images


def item_images_from_run(results: dict[str, Any]) -> ItemImages:
    """``rendered_item_images`` set up from a run's results.json: its data root, seed, source,
    task options, and each VLM's image mode as its records state it."""
    options = _metadata(results).get("options") or {}
    root = options.get("data_root")
    modes = {r["model"]: r["image_mode"] for r in results.get("results", []) if r.get("image_mode")}
    return rendered_item_images(
        None if root in (None, "embedded") else Path(root),
        seed=_metadata(results).get("seed") or 0,
        source=options.get("data_source"),
        task_options=options.get("task_options") or {},
        image_modes=modes,
    )


def _png_bytes(image: Any, max_side: int) -> bytes:
    import io

    from PIL import Image

    scale = max_side / max(image.size)
    if scale < 1:
        size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
        image = image.resize(size, Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()


# ---------------------------------------------------------------------------------------------
# page scaffolding


def _metadata(results: dict[str, Any]) -> dict[str, Any]:
    """The run metadata: a ``metadata`` object if present, else results.json's top-level fields."""
    if isinstance(results.get("metadata"), dict):
        return results["metadata"]
    return {k: v for k, v in results.items() if k not in ("schema", "results")}


def _anchors(tasks: list[str]) -> dict[str, str]:
    anchors: dict[str, str] = {}
    used: set[str] = set()
    for task in tasks:
        base = "task-" + (re.sub(r"[^A-Za-z0-9_-]+", "-", task).strip("-") or "x")
        anchor, k = base, 2
        while anchor in used:
            anchor, k = f"{base}-{k}", k + 1
        used.add(anchor)
        anchors[task] = anchor
    return anchors


def _metadata_table(metadata: dict[str, Any], records: list[dict[str, Any]]) -> str:
    options = metadata.get("options") or {}
    versions = metadata.get("versions") or {}
    data_source = options.get("data_root", "–")
    if options.get("data_source"):
        data_source = f"{data_source} ({options['data_source']})"
    rows = [
        ("created", metadata.get("created")),
        ("seed", metadata.get("seed")),
        ("git commit", metadata.get("git_commit")),
        ("versions", " · ".join(f"{k} {v}" for k, v in sorted(versions.items()) if v is not None) or None),
        ("data source", data_source),
        ("models", ", ".join(sorted({r["model"] for r in records})) or None),
    ]
    if options.get("limit") is not None:
        rows.append(("item limit", options["limit"]))
    if options.get("task_options"):
        rows.append(("task options", json.dumps(options["task_options"], sort_keys=True)))
    if options.get("device"):
        rows.append(("device / dtype", f"{options.get('device')} / {options.get('dtype')}"))
    verdicts = Counter(r.get("verdict") or "–" for r in records)
    rows.append(("verdicts", " · ".join(f"{k}: {verdicts[k]}" for k in sorted(verdicts)) or None))
    body = "".join(f"<tr><th>{escape(k)}</th><td>{escape('–' if v is None else str(v))}</td></tr>" for k, v in rows)
    return f'<table class="meta">{body}</table>'


def _toc(tasks: list[str], anchors: dict[str, str]) -> str:
    links = "".join(f'<a href="#{escape(anchors[t])}">{escape(t)}</a>' for t in tasks)
    return f'<nav class="toc"><strong>Tasks:</strong> {links}</nav>'


def _task_section(
    task: str,
    anchor: str,
    records: list[dict[str, Any]],
    wrong_by_case: dict[tuple[str, str], list[dict[str, Any]]],
    item_images: ItemImages | None,
    max_failures: int,
) -> str:
    vlms = [r for r in records if r["role"] == "vlm"]
    probes = [r for r in records if r["role"] == "probe" and r.get("layer_series")]
    parts = [f'<section id="{escape(anchor)}">', f"<h2>{escape(task)}</h2>"]
    heading = "<h3>Accuracy: vision readout vs VLM vs blind</h3>"
    row = [f'<div class="fig-main">{heading}{_accuracy_figure(task, records)}</div>']
    if vlms:
        cards = "".join(_answer_distribution(r) for r in vlms)
        row.append(f'<div class="fig-side"><h3>Answer distributions</h3>{cards}</div>')
    parts.append('<div class="figs">' + "".join(row) + "</div>")
    if probes:
        parts.append("<h3>Layer-wise readout</h3>")
        parts.append('<div class="figs">' + "".join(_layer_curve(p, records) for p in probes) + "</div>")
    tuned = tuning_rows(records)
    if tuned:
        parts.append("<h3>Tuned vs original (same held-out items)</h3>")
        parts.append(_tuning_table(tuned, attention_series(records)))
    parts.append("<h3>All records</h3>")
    parts.append(_records_table(records))
    if vlms:
        parts.append("<h3>Failed items</h3>")
        for r in vlms:
            parts.append(_failure_browser(r, wrong_by_case.get((task, r["model"]), []), item_images, max_failures))
    parts.append("</section>")
    return "\n".join(parts)


# ---------------------------------------------------------------------------------------------
# small formatting and SVG helpers


def _pct(x: float | None, digits: int = 1) -> str:
    return "–" if x is None else f"{100 * x:.{digits}f}%"


def _num(x: float | None, digits: int = 3) -> str:
    return "–" if x is None else f"{x:.{digits}f}"


def _score(x: Any) -> str:
    if x is None:
        return "–"
    if isinstance(x, float) and math.isnan(x):
        return "NaN"
    if isinstance(x, (int, float)):
        return f"{x:.4g}"
    return str(x)


def _model_label(record: dict[str, Any]) -> str:
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
        f'<line x1="{_f(x1)}" y1="{_f(y1)}" x2="{_f(x2)}" y2="{_f(y2)}" stroke="{stroke}" stroke-width="{width}"{extra}/>'
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
            out.append(f'<rect x="{_f(cx)}" y="{_f(cy - 10)}" width="16" height="12" fill="{colour}" fill-opacity="0.2"/>')
            out.append(_line(cx, cy - 4, cx + 16, cy - 4, stroke=colour, width=2))
        elif kind == "dot":
            out.append(_line(cx, cy - 4, cx + 16, cy - 4, stroke=colour, width=1.5, extra=' stroke-dasharray="1.5 2.5"'))
        out.append(_text(cx + 20, cy, label, size=11, fill=INK))
        cx += w
    return out, cy - y + 17


def _svg(width: float, height: float, cls: str, label: str, body: list[str]) -> str:
    return (
        f'<svg class="{cls}" width="{round(width)}" height="{round(height)}" '
        f'viewBox="0 0 {round(width)} {round(height)}" role="img" aria-label="{escape(label)}">'
        f"<title>{escape(label)}</title>" + "".join(body) + "</svg>"
    )


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
        groups.append((_model_label(vlm), bars, vlm))
    for enc in (r for r in records if r["role"] == "vision" and r["model"] not in paired):
        groups.append((_model_label(enc), [("vision", enc)], None))
    for probe in (r for r in records if r["role"] == "probe" and r["model"] not in vlm_models):
        groups.append((_model_label(probe), [("probe", probe)], None))
    return groups


def _group_subtitle(bars: Bars, vlm: dict[str, Any] | None) -> str:
    if vlm is not None:
        return f"vs {vlm['paired_with']}" if vlm.get("paired_with") else "no vision pair"
    return "vision readout" if bars[0][0] == "vision" else "layer probe only"


def _task_chance(records: list[dict[str, Any]]) -> float | None:
    values = Counter(r["chance"] for r in records if r.get("chance") is not None)
    return values.most_common(1)[0][0] if values else None


def _accuracy_figure(task: str, records: list[dict[str, Any]]) -> str:
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
    legend, legend_h = _legend(legend_entries, 12, 16, width - 16)
    top = 16 + legend_h + 16
    bottom = top + PLOT_H
    height = bottom + 62

    def y_of(v: float) -> float:
        return bottom - v * PLOT_H

    body = list(legend)
    body += _y_axis(AXIS_LEFT, AXIS_LEFT + plot_w, y_of, 1.0, [0, 0.2, 0.4, 0.6, 0.8, 1.0])
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
        body.append(f"<g><title>{escape(label)}</title>"
                    + _text(cx, bottom + 30, _shorten(label, 30), anchor="middle", size=12, weight="600") + "</g>")  # fmt: skip
        verdict = (vlm if vlm is not None else bars[0][1] or {}).get("verdict") or ""
        body.append(_text(cx, bottom + 44, _shorten(_group_subtitle(bars, vlm), 34), anchor="middle", size=11, fill=MUTED))
        if verdict:
            body.append(_text(cx, bottom + 58, verdict, anchor="middle", size=11, weight="600",
                              fill=VERDICT_COLOURS.get(verdict, MUTED)))  # fmt: skip
        x += slot
    if chance is not None:
        y = y_of(chance)
        body.append(_line(AXIS_LEFT, y, AXIS_LEFT + plot_w, y, stroke=INK, width=1.3, extra=' stroke-dasharray="6 4"'))
        body.append(_text(AXIS_LEFT + plot_w + 6, y + 4, f"chance {_pct(chance)}", size=11, fill=INK))
    return _svg(width, height, "task-figure", f"{task}: vision readout vs VLM vs blind control", body)


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
    tip = f"{_model_label(record)} ({record['role']}): {_pct(acc)}"
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


def _answer_distribution(vlm: dict[str, Any]) -> str:
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
            body.append(f'<rect x="{_f(x)}" y="{_f(y_of(share))}" width="{bar_w}" height="{_f(y0 - y_of(share))}" '
                        f'fill="{colour}"><title>{escape(f"{name} {letter}: {_pct(share)}")}</title></rect>')  # fmt: skip
            x += bar_w + inner_gap
        body.append(_text(x - inner_gap - letter_w / 2, y0 + 14, letter, anchor="middle", size=11))
        x += letter_gap - inner_gap
    svg = _svg(width, y0 + 20, "dist-figure", f"{vlm['task']} × {vlm['model']}: answer shares per letter", body)
    facts = [
        f"<strong>{escape(_model_label(vlm))}</strong>",
        f"TV(pred, gold) = {escape(_num(vlm.get('tv_to_gold')))}",
        f"TV(pred, blind) = {escape(_num(vlm.get('tv_to_blind')))}",
        f"accuracy {escape(_pct(vlm.get('accuracy')))} · blind {escape(_pct(vlm.get('blind_accuracy')))}",
    ]
    return f'<div class="dist">{svg}<div class="tv">{"<br>".join(facts)}</div></div>'


# ---------------------------------------------------------------------------------------------
# 3. per-layer curves


def _layer_curve(probe: dict[str, Any], task_records: list[dict[str, Any]]) -> str:
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
        body.append(f'<polygon points="{upper} {lower}" fill="{ROLE_COLOURS["probe"]}" fill-opacity="0.2" stroke="none"/>')
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
    title = f"{probe['task']} × {_model_label(probe)}: readout accuracy per layer (n = {probe.get('n')})"
    caption = f"<h4>{escape(_model_label(probe))} · n = {escape(str(probe.get('n')))}</h4>"
    return f"<div>{caption}{_svg(width, height, 'layer-figure', title, body)}</div>"


# ---------------------------------------------------------------------------------------------
# 4. the records table


def _tuning_table(rows: list[list[str]], series: list[tuple[str, str, str, list[float]]]) -> str:
    header = "".join(f"<th>{escape(h)}</th>" for h in TUNING_HEADER[1:])
    body = "".join("<tr>" + "".join(f"<td>{escape(c)}</td>" for c in row[1:]) + "</tr>" for row in rows)
    layers = "".join(
        f"<tr><td>{escape(model)}</td><td>{escape(label)}</td>"
        + "".join(f'<td class="num">{x:.3f}</td>' for x in values) + "</tr>"
        for _, model, label, values in series
    )  # fmt: skip
    attention = (
        '<p>Share of the answer position\'s attention on image tokens, per LLM layer (0, 1, …):</p>'
        f'<table class="records"><tbody>{layers}</tbody></table>' if layers else ""
    )  # fmt: skip
    return f'<table class="records"><thead><tr>{header}</tr></thead><tbody>{body}</tbody></table>{attention}'


def _records_table(records: list[dict[str, Any]]) -> str:
    # report.md's summary columns, less the task (the section names it), plus the pairing and the gate reason
    columns = SUMMARY_HEADER[1:]
    header = "".join(f"<th>{escape(h)}</th>" for h in [*columns, "paired with", "gate reason"])
    numeric = {"n", "acc", "chance", "TV gold", "TV blind", "ties", "unparsed", "invalid"}
    rows = []
    for record in records:
        (cells,) = summary_rows([record])
        cells[1] = _model_label(record)
        tds = []
        for name, cell in zip(columns, cells[1:]):
            if name == "verdict":
                tds.append(f'<td class="verdict verdict-{escape(re.sub(r"[^a-z_]", "", cell))}">{escape(cell)}</td>')
            else:
                tds.append(f'<td{" class=num" if name in numeric else ""}>{escape(cell)}</td>')
        tds.append(f"<td>{escape(record.get('paired_with') or '–')}</td>")
        tds.append(f'<td class="reason">{escape(record.get("reason") or "")}</td>')
        rows.append("<tr>" + "".join(tds) + "</tr>")
    return f'<table class="records"><thead><tr>{header}</tr></thead><tbody>{"".join(rows)}</tbody></table>'


# ---------------------------------------------------------------------------------------------
# 5. the failed items browser


def _wrong_items(items: list[dict[str, Any]]) -> dict[tuple[str, str], list[dict[str, Any]]]:
    """The VLM items answered wrongly (or not at all), per (task, model), in natural item order."""
    wrong: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for line in items:
        if line.get("role") == "vlm" and line.get("correct") is False:
            wrong.setdefault((line["task"], line["model"]), []).append(line)
    for lines in wrong.values():
        lines.sort(key=lambda line: _natural_key(str(line.get("item"))))
    return wrong


def _natural_key(text: str) -> list[tuple[int, Any]]:
    return [(0, int(tok)) if tok.isdigit() else (1, tok) for tok in re.split(r"(\d+)", text) if tok]


def _failure_browser(
    vlm: dict[str, Any], wrong: list[dict[str, Any]], item_images: ItemImages | None, max_failures: int
) -> str:
    shown = wrong[: max(0, max_failures)]
    summary = f"{_model_label(vlm)}: {len(wrong)} wrong item{'s' if len(wrong) != 1 else ''}"
    if len(shown) < len(wrong):
        summary += f" (first {len(shown)} shown)"
    body = [_failed_item(line, item_images, open_=i == 0) for i, line in enumerate(shown)]
    body = body or ['<p class="note">No wrong items.</p>']
    return f'<details class="failures" open><summary>{escape(summary)}</summary>{"".join(body)}</details>'


def _failed_item(line: dict[str, Any], item_images: ItemImages | None, *, open_: bool = False) -> str:
    gold, pred, reason = line.get("gold"), line.get("pred"), line.get("reason")
    answer = f"predicted {pred}" if pred is not None else "no prediction"
    if reason:
        answer += f" ({reason})"
    head = f"{line.get('item')} — gold {gold}, {answer}"
    parts = [f'<details class="item"{" open" if open_ else ""}><summary>{escape(head)}</summary>']
    parts.append(_item_image(line, item_images))
    if line.get("detail"):
        parts.append(f'<p class="note">{escape(str(line["detail"]))}</p>')
    parts.append(_scores_table(line.get("scores"), gold, pred))
    parts.append("</details>")
    return "".join(parts)


def _item_image(line: dict[str, Any], item_images: ItemImages | None) -> str:
    if item_images is None:
        return ""
    alt = f"{line.get('task')} {line.get('item')} as {line.get('model')} saw it"
    try:
        png = item_images(line["task"], line["model"], line["item"])
    except Exception as exc:  # noqa: BLE001 - a failed render is reported on the page, not fatal to the report
        return f'<p class="note">image unavailable: {escape(f"{type(exc).__name__}: {exc}")}</p>'
    if png is None:
        return ""
    if not png.startswith(PNG_MAGIC):
        return '<p class="note">image unavailable: item_images returned bytes that are not a PNG</p>'
    data = base64.b64encode(png).decode("ascii")
    return f'<img class="item-image" alt="{escape(alt)}" src="data:image/png;base64,{data}">'


def _scores_table(scores: dict[str, Any] | None, gold: Any, pred: Any) -> str:
    if not scores:
        return '<p class="note">no scores recorded</p>'
    rows = []
    for letter in sorted(scores):
        marks = [m for m, hit in (("gold", letter == gold), ("pred", letter == pred)) if hit]
        cls = f' class="{" ".join(marks)}"' if marks else ""
        rows.append(f"<tr{cls}><td>{escape(str(letter))}</td><td class=num>{escape(_score(scores[letter]))}</td>"
                    f"<td>{escape(' + '.join(marks))}</td></tr>")  # fmt: skip
    return ('<table class="scores"><thead><tr><th>letter</th><th>score</th><th></th></tr></thead>'
            f"<tbody>{''.join(rows)}</tbody></table>")  # fmt: skip
