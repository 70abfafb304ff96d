"""report.html, the run as one self-contained page: ``page`` (layout, sections, tables, writing),
``charts`` (the inline SVG figures) and ``items`` (the failed items, drawn again as the VLM saw them)."""

from plainsight.report_html.items import item_images_from_run, rendered_item_images
from plainsight.report_html.page import load_run, render_html, write_html

__all__ = ["item_images_from_run", "load_run", "render_html", "rendered_item_images", "write_html"]
