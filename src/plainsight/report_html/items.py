"""report.html's failed items: per VLM, the items it got wrong (or gave no answer to), each with gold,
prediction, per-letter scores and the image as the model saw it.

The images are drawn again from the run's dataset (the task's items and visual prompt, ``runner.vlm_view``;
no model is loaded) and inlined as ``data:image/png;base64`` URIs.
"""

from __future__ import annotations

import base64
import math
import re
from html import escape
from pathlib import Path
from typing import Any, Callable, Mapping

from plainsight.report_html.charts import model_label

ItemImages = Callable[[str, str, str], bytes | None]
"""(task, model, item_id) -> PNG bytes of the item as that model saw it, or None."""

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


# ---------------------------------------------------------------------------------------------
# the failed items browser


def wrong_items(items: list[dict[str, Any]]) -> dict[tuple[str, str], list[dict[str, Any]]]:
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


def failure_browser(
    vlm: dict[str, Any], wrong: list[dict[str, Any]], item_images: ItemImages | None, max_failures: int
) -> str:
    """One VLM's wrong items, folded; the first ``max_failures`` are shown, the first of them open."""
    shown = wrong[: max(0, max_failures)]
    summary = f"{model_label(vlm)}: {len(wrong)} wrong item{'s' if len(wrong) != 1 else ''}"
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


def _score(x: Any) -> str:
    if x is None:
        return "–"
    if isinstance(x, float) and math.isnan(x):
        return "NaN"
    if isinstance(x, (int, float)):
        return f"{x:.4g}"
    return str(x)


# ---------------------------------------------------------------------------------------------
# the items drawn again from the dataset


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
    from plainsight.tasks import LoadRequest, get_task
    from plainsight.views import vlm_view

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
    options = metadata_of(results).get("options") or {}
    root = options.get("data_root")
    modes = {r["model"]: r["image_mode"] for r in results.get("results", []) if r.get("image_mode")}
    return rendered_item_images(
        None if root in (None, "embedded") else Path(root),
        seed=metadata_of(results).get("seed") or 0,
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


def metadata_of(results: dict[str, Any]) -> dict[str, Any]:
    """The run metadata: a ``metadata`` object if present, else results.json's top-level fields."""
    if isinstance(results.get("metadata"), dict):
        return results["metadata"]
    return {k: v for k, v in results.items() if k not in ("schema", "results")}
