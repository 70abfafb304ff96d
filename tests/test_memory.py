"""A model's memory is returned before the next one loads (CPU: resident set size)."""

from __future__ import annotations

import gc
from pathlib import Path

import torch
from PIL import Image

from plainsight.models.registry import ModelEntry
from plainsight.runner import Runner, RunOptions


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def big_encoder(folder: Path) -> Path:
    from transformers import BitImageProcessorPil, Dinov2Config, Dinov2Model

    config = Dinov2Config(
        hidden_size=512, num_hidden_layers=6, num_attention_heads=8, intermediate_size=2048, image_size=32, patch_size=8
    )  # fmt: skip  (~19M parameters, ~75 MB in float32)
    torch.manual_seed(0)
    Dinov2Model(config).save_pretrained(folder)
    BitImageProcessorPil(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}).save_pretrained(folder)
    return folder


def test_release_returns_the_models_memory(tmp_path: Path):
    entries = {
        name: ModelEntry(name, "encoder", str(big_encoder(tmp_path / name)), base_dir=tmp_path)
        for name in ("one", "two")
    }
    runner = Runner(RunOptions(), entries)
    image = Image.new("RGB", (32, 32), (120, 60, 30))
    gc.collect()
    before = rss_mb()
    runner.model("one").encode([image])  # weights may be memory-mapped: a forward makes them resident
    loaded = rss_mb()
    assert loaded - before > 25  # the weights are resident
    runner.model("two").encode([image])  # releases "one" first
    both = rss_mb()
    runner.release()
    gc.collect()
    after = rss_mb()
    assert both - before < 1.5 * (loaded - before)  # never two models resident at once
    assert after - before < 0.3 * (loaded - before), (before, loaded, both, after)
    assert runner.loads == ["one", "two"]
