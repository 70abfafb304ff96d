"""report.html: the run as one page to read, next to results.json, items.jsonl and report.md.

Per task, in task order (a table of contents links the sections; the run's metadata heads the page):
the figures of ``charts`` (accuracy, answer distributions, per-layer curves when probed), the tuned vs
original table, every record of the task (report.md's summary columns) with its verdict, pairing and
gate reason, and the failed items of ``items``. Everything is computed from results.json and
items.jsonl; no model is touched.

Self-contained by design: the page must open offline and make no request at all. CSS is
inline, figures are inline SVG, images are ``data:image/png;base64`` URIs, there is
no JavaScript (``<details>`` folds the long parts), and a Content-Security-Policy meta makes a
browser refuse anything else. Every string taken from the data is escaped with ``html.escape``.
The same inputs give the same bytes: no clock is read (the only time shown is the metadata's).
"""

from __future__ import annotations

import json
import re
from collections import Counter
from html import escape
from pathlib import Path
from typing import Any

from plainsight.report import (
    SUMMARY_HEADER,
    TUNING_HEADER,
    atomic_write,
    attention_series,
    sort_records,
    summary_rows,
    tuning_rows,
)
from plainsight.report_html.charts import (
    accuracy_figure,
    answer_distribution,
    findings_figure,
    layer_curve,
    model_label,
)
from plainsight.report_html.items import ItemImages, failure_browser, metadata_of, wrong_items

CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"

# A trailing backslash continues a CSS line on the next source line: the CSS is unchanged, lines stay short.
_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;color:#222;margin:0 auto;
max-width:1240px;padding:16px 24px 48px;line-height:1.4;background:#fff}
h1{font-size:1.5rem;margin:.2rem 0 .6rem}\
h2{font-size:1.25rem;margin:2rem 0 .4rem;padding-top:.6rem;border-top:2px solid #ddd}
h3{font-size:1rem;margin:1.1rem 0 .3rem}
table{border-collapse:collapse;font-size:.82rem;margin:.3rem 0;max-width:100%}
th,td{border:1px solid #ddd;padding:2px 7px;text-align:left;vertical-align:top;white-space:nowrap}
th{background:#f4f4f4;font-weight:600}td.num{text-align:right;font-variant-numeric:tabular-nums}
table.meta th{width:9rem}
nav.toc{font-size:.9rem;margin:.6rem 0}nav.toc a{margin-right:1rem;white-space:nowrap}
svg{display:block;max-width:100%;height:auto;\
font-family:system-ui,-apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif}
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
    metadata = metadata_of(results)
    tasks = sorted({r["task"] for r in records})
    anchors = _anchors(tasks)
    wrong_by_case = wrong_items(items)
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
        _findings_section(records),
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


# ---------------------------------------------------------------------------------------------
# page scaffolding


def _findings_section(records: list[dict[str, Any]]) -> str:
    """Every task at once for each VLM that has a blind run and a vision pair: the paper's Figure 1."""
    vlms = sorted({r["model"] for r in records if r["role"] == "vlm" and r.get("paired_with") and not r.get("smoke")
                   and any(b["model"] == r["model"] and b["role"] == "blind" for b in records)})  # fmt: skip
    if not vlms:
        return ""
    parts = ['<section id="findings"><h2>The paper\'s finding, task by task</h2>',
             '<p class="note">"overlooks its encoder": the paired vision readout is above chance and above the VLM, '
             "and the VLM is within its blind run (Wilson 95% intervals that do not overlap / overlap); "
             '"uses the image": the VLM is above its blind run. Hover a label for the intervals.</p>']  # fmt: skip
    for model in vlms:
        pair = next(r["paired_with"] for r in records if r["model"] == model and r["role"] == "vlm")
        parts.append(f"<h3>{escape(model)} vs {escape(pair)}</h3>")
        parts.append(f'<div class="figs"><div class="fig-main">{findings_figure(model, records)}</div></div>')
    parts.append("</section>")
    return "\n".join(parts)


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
    row = [f'<div class="fig-main">{heading}{accuracy_figure(task, records)}</div>']
    if vlms:
        cards = "".join(answer_distribution(r) for r in vlms)
        row.append(f'<div class="fig-side"><h3>Answer distributions</h3>{cards}</div>')
    parts.append('<div class="figs">' + "".join(row) + "</div>")
    if probes:
        parts.append("<h3>Layer-wise readout</h3>")
        parts.append('<div class="figs">' + "".join(layer_curve(p, records) for p in probes) + "</div>")
    tuned = tuning_rows(records)
    if tuned:
        parts.append("<h3>Tuned vs original (same held-out items)</h3>")
        parts.append(_tuning_table(tuned, attention_series(records)))
    parts.append("<h3>All records</h3>")
    parts.append(_records_table(records))
    if vlms:
        parts.append("<h3>Failed items</h3>")
        for r in vlms:
            parts.append(failure_browser(r, wrong_by_case.get((task, r["model"]), []), item_images, max_failures))
    parts.append("</section>")
    return "\n".join(parts)


# ---------------------------------------------------------------------------------------------
# the tuning and records tables


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
        cells[1] = model_label(record)
        tds = []
        for name, cell in zip(columns, cells[1:]):
            if name == "verdict":
                tds.append(f'<td class="verdict verdict-{escape(re.sub(r"[^a-z_]", "", cell))}">{escape(cell)}</td>')
            else:
                tds.append(f"<td{' class=num' if name in numeric else ''}>{escape(cell)}</td>")
        tds.append(f"<td>{escape(record.get('paired_with') or '–')}</td>")
        tds.append(f'<td class="reason">{escape(record.get("reason") or "")}</td>')
        rows.append("<tr>" + "".join(tds) + "</tr>")
    return f'<table class="records"><thead><tr>{header}</tr></thead><tbody>{"".join(rows)}</tbody></table>'
