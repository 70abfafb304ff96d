"""Harness overhead: scoring N items through plainsight vs the bare batched forwards on the same inputs.

    .venv/bin/pytest tests/benchmarks -p no:xdist -s

(pytest-benchmark disables itself under xdist.) One benchmark round per model measures (medians
of REPEATS interleaved repetitions), in the same process, with the same loaded model, on the same
items: the harness (decode the source images, render markers, compose, check crops, process, one
forward per item, choose, record outcomes), the bare batched forwards on pre-processed inputs, and
processor + forwards on pre-rendered images. The ratios go to the benchmark's ``extra_info`` and are
printed. Models: tiny-llava (32-px images, the default matrix's smoke VLM) and llava-1.5-7b's real
files with shrunk dimensions (336-px CLIP processor, 576 image tokens per image; needs ../shared).
"""

from __future__ import annotations

import gc
import statistics
import time
from pathlib import Path

import pytest
import torch

from plainsight.models.registry import load_models_toml
from plainsight.models.vlms import VLMRequest
from plainsight.runner import Runner, RunOptions, vlm_preprocess_spec, vlm_view
from plainsight.tasks import LoadRequest, get_task

REPO = Path(__file__).resolve().parents[2]
DATA = REPO / "fixtures" / "data"
N_ITEMS = 120
MODEL = "tiny-llava"
REPEATS = 9


def harness(runner: Runner, model: str) -> tuple[float, int, int]:
    """Score the items through the runner, from the source files (decoding included), with the model loaded."""
    runner.forget_runs()
    vlm = runner.model(model)
    before = vlm.forward_count
    start = time.perf_counter()
    run = runner.run("low_level_matching", model, "vlm")
    seconds = time.perf_counter() - start
    return seconds, vlm.forward_count - before, sum(o.valid for o in run.outcomes)


def bare(vlm, requests, batch: int) -> tuple[float, float]:
    tokens = vlm.letter_tokens(requests[0].letters)
    batches = [requests[i : i + batch] for i in range(0, len(requests), batch)]
    start = time.perf_counter()
    prepared = [vlm._inputs(b, tokens.forced) for b in batches]
    processed = time.perf_counter()
    with torch.inference_mode():
        for inputs in prepared:
            vlm.model(**inputs, logits_to_keep=1)
    done = time.perf_counter()
    return done - processed, done - start


def _without_gc(fn, *args):
    gc.collect()
    gc.disable()
    try:
        return fn(*args)
    finally:
        gc.enable()


def _real_config_llava(tmp_path: Path):
    """llava-1.5-7b's real config (shrunk dimensions), tokenizer, template and 336-px CLIP processor, saved as a model folder."""
    from conftest import hf_config_dir
    from transformers import AutoModelForImageTextToText, AutoProcessor

    from plainsight.models.tiny import shrink_vlm_config

    folder = hf_config_dir("llava-hf__llava-1.5-7b-hf")
    torch.manual_seed(0)
    model = AutoModelForImageTextToText.from_config(shrink_vlm_config(folder))
    model.save_pretrained(tmp_path / "llava-1.5-shrunk")
    AutoProcessor.from_pretrained(folder).save_pretrained(tmp_path / "llava-1.5-shrunk")
    toml = tmp_path / "models.toml"
    toml.write_text('[models.llava-1-5-shrunk]\nkind = "vlm"\nsource = "./llava-1.5-shrunk"\nimage_mode = "separate"\nsmoke = true\n')
    return load_models_toml(toml)


@pytest.mark.parametrize("model", [MODEL, "llava-1-5-shrunk"])
def test_harness_overhead(benchmark, model, tmp_path):
    """tiny-llava: 32-px images, the default matrix's smoke VLM; llava-1-5-shrunk: the real processor (336 px, 576 image tokens)."""
    entries = load_models_toml(REPO / "fixtures" / "models.toml") if model == MODEL else _real_config_llava(tmp_path)
    entry = entries[model]
    task = get_task("low_level_matching")
    items = task.load_items(LoadRequest(DATA, limit=N_ITEMS))
    # One runner and one loaded model serve both measurements: loading, building the items and finding the
    # letters' tokens in the chat template happen once per model and are not scoring.
    runner = Runner(RunOptions(data_root=DATA, limit=N_ITEMS), entries)
    vlm = runner.model(model)
    vlm.letter_tokens(items[0].choices)
    spec = vlm_preprocess_spec(vlm)
    views = [(it, *vlm_view(task.render, it, entry.image_mode, spec)) for it in items]
    # The bare forwards get the same inputs the harness scores: items whose markers survive the model's crop.
    requests = [VLMRequest(shown, it.prompt, it.choices) for it, shown, invalid in views if invalid is None]
    bare(vlm, requests[: entry.batch_size], entry.batch_size)  # warm-up

    def measure():
        """Medians of REPEATS interleaved repetitions, the order alternating (interleaving cancels drift).

        Like timeit, each timed section starts from a collected heap with the garbage collector off:
        a collection of pytest's large heap landing in one section but not the other is noise, not cost.
        """
        runs = []
        for rep in range(REPEATS):
            if rep % 2:
                plain = _without_gc(bare, vlm, requests, entry.batch_size)
                h, forwards, valid = _without_gc(harness, runner, model)
            else:
                h, forwards, valid = _without_gc(harness, runner, model)
                plain = _without_gc(bare, vlm, requests, entry.batch_size)
            runs.append((h, forwards, valid, *plain))
        h, forward_only, with_processor = (statistics.median(r[i] for r in runs) for i in (0, 3, 4))
        return h, runs[0][1], runs[0][2], forward_only, with_processor

    h, forwards, valid, forward_only, with_processor = benchmark.pedantic(measure, rounds=1, iterations=1)
    benchmark.extra_info.update(
        model=model, items=N_ITEMS, forwards=forwards, harness_s=h, bare_forward_s=forward_only,
        bare_processor_and_forward_s=with_processor, ratio=h / forward_only, ratio_incl_processor=h / with_processor,
    )  # fmt: skip
    print(
        f"\n{model}, {N_ITEMS} items: harness {h:.3f}s, bare forwards {forward_only:.3f}s "
        f"(ratio {h / forward_only:.2f}), processor+forwards {with_processor:.3f}s (ratio {h / with_processor:.2f}), "
        f"{forwards / valid:.2f} forwards per scored item"
    )
    assert forwards == valid == len(requests) >= 90  # one forward per scored item (the rest: markers cropped away)
