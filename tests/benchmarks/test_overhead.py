"""Harness overhead: scoring N items through plainsight vs the bare batched forwards on the same inputs.

    .venv/bin/pytest tests/benchmarks -p no:xdist -s

(pytest-benchmark disables itself under xdist.) One benchmark round measures (medians of
5 interleaved repetitions), in the same process and on the same items: the harness (render markers, compose, process, one forward per
item, choose, stream outcomes), the bare forwards on pre-processed inputs, and processor +
forwards. The ratios go to the benchmark's ``extra_info`` and are printed.
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path

import torch

from plainsight.models.registry import load_models_toml
from plainsight.models.vlms import VLMRequest
from plainsight.runner import Runner, RunOptions, vlm_preprocess_spec, vlm_view
from plainsight.tasks import LoadRequest, get_task

REPO = Path(__file__).resolve().parents[2]
DATA = REPO / "fixtures" / "data"
N_ITEMS = 120
MODEL = "tiny-llava"


def harness(entries) -> tuple[float, int, int]:
    runner = Runner(RunOptions(data_root=DATA, limit=N_ITEMS), entries)
    vlm = runner.model(MODEL)  # loading the model and building the items are not scoring
    runner.items("low_level_matching")
    start = time.perf_counter()
    run = runner.run("low_level_matching", MODEL, "vlm")
    seconds = time.perf_counter() - start
    return seconds, vlm.forward_count, sum(o.valid for o in run.outcomes)


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


def test_harness_overhead(benchmark):
    entries = load_models_toml(REPO / "fixtures" / "models.toml")
    entry = entries[MODEL]
    task = get_task("low_level_matching")
    items = task.load_items(LoadRequest(DATA, limit=N_ITEMS))
    runner = Runner(RunOptions(data_root=DATA), entries)
    vlm = runner.model(MODEL)
    spec = vlm_preprocess_spec(vlm)
    requests = [VLMRequest(vlm_view(task.render, it, entry.image_mode, spec)[0], it.prompt, it.choices) for it in items]
    bare(vlm, requests[: entry.batch_size], entry.batch_size)  # warm-up

    def measure():
        """Medians of 5 interleaved repetitions (the ratio is what matters; interleaving cancels drift)."""
        runs = []
        for _ in range(5):
            h, forwards, valid = harness(entries)
            runs.append((h, forwards, valid, *bare(vlm, requests, entry.batch_size)))
        h, forward_only, with_processor = (statistics.median(r[i] for r in runs) for i in (0, 3, 4))
        return h, runs[0][1], runs[0][2], forward_only, with_processor

    h, forwards, valid, forward_only, with_processor = benchmark.pedantic(measure, rounds=1, iterations=1)
    benchmark.extra_info.update(
        model=MODEL, items=N_ITEMS, forwards=forwards, harness_s=h, bare_forward_s=forward_only,
        bare_processor_and_forward_s=with_processor, ratio=h / forward_only, ratio_incl_processor=h / with_processor,
    )  # fmt: skip
    print(
        f"\n{MODEL}, {N_ITEMS} items: harness {h:.3f}s, bare forwards {forward_only:.3f}s "
        f"(ratio {h / forward_only:.2f}), processor+forwards {with_processor:.3f}s (ratio {h / with_processor:.2f}), "
        f"{forwards / valid:.2f} forwards per scored item"
    )
    assert forwards == valid == N_ITEMS  # one forward per item, none invalid at 32 px without a crop
