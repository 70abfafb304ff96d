"""A contact sheet of the benchmark: a few items per task, drawn as the VLM sees them, in one PNG.

`plainsight fixtures sheet` writes it (docs/benchmark.png in the README). Each row is one
item: its task, id and gold letter on the left, then its images with the task's visual
prompt (rings, labels, boxes) drawn, scaled to a common height.
"""

from __future__ import annotations

from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from plainsight.tasks import LoadRequest, all_tasks

ROW_HEIGHT = 128
GAP = 6
LABEL_WIDTH = 230
BACKGROUND = (255, 255, 255)
INK = (20, 20, 20)


def _row(label: list[str], images: list[Image.Image]) -> Image.Image:
    scaled = [im.resize((max(1, round(im.width * ROW_HEIGHT / im.height)), ROW_HEIGHT), Image.Resampling.LANCZOS)
              for im in images]  # fmt: skip
    width = LABEL_WIDTH + sum(im.width + GAP for im in scaled)
    row = Image.new("RGB", (width, ROW_HEIGHT), BACKGROUND)
    draw = ImageDraw.Draw(row)
    font = ImageFont.load_default(size=14)
    for i, line in enumerate(label):
        draw.text((4, 8 + 20 * i), line, fill=INK, font=font)
    x = LABEL_WIDTH
    for im in scaled:
        row.paste(im, (x, 0))
        x += im.width + GAP
    return row


def contact_sheet(data_root: Path | None = None, *, per_task: int = 2, seed: int = 0) -> Image.Image:
    """Rows of ``per_task`` items per task (evenly spread through each task's items), tasks in registry order."""
    rows = []
    for task_id, task in all_tasks().items():
        items = task.load_items(LoadRequest(data_root, seed=seed))
        step = max(1, len(items) // per_task)
        for item in items[::step][:per_task]:
            shown = task.render(item, item.load_images())
            rows.append(
                _row(
                    [
                        task_id,
                        item.id[:27],
                        f"gold: ({item.gold}) {dict(zip(item.choices, item.option_texts)).get(item.gold, '')}"[:30],
                    ],
                    shown,
                )
            )
    sheet = Image.new("RGB", (max(r.width for r in rows), sum(r.height + GAP for r in rows)), BACKGROUND)
    y = 0
    for row in rows:
        sheet.paste(row, (0, y))
        y += row.height + GAP
    return sheet
