"""Harness overhead: scoring N items through plainsight vs the bare batched forwards on the same inputs.

    .venv/bin/pytest tests/benchmarks -p no:xdist -s --bench-repeats 15

(the suite's own run, ``pytest``, makes 3 repetitions: the same code and checks, a rougher ratio.)

(pytest-benchmark disables itself under xdist.) One benchmark round per model measures, in the same
process, with the same loaded model, on the same items:

- the harness: ``Runner.run`` from the source files (decode the images, render markers, compose,
  check crops, process, one forward per item, choose, record outcomes);
- the bare path: the processor and the batched forwards on the pre-rendered images, with the
  forwards alone timed too.

Pairing. This 2-vCPU machine is shared: its speed shifts by up to 20% in phases lasting a fraction of
a second to seconds, so two whole runs timed one after the other can land in different phases. The
N items are therefore cut into blocks of one batch of consecutive items (a runner per block, all
with the one loaded model; consecutive, so images that neighbouring items share are decoded once per
block, as they are once per run), and each block's harness run and bare run are timed back to back,
the order alternating. A repetition sums its blocks, so both sides cover all N items;
the reported ratio is the median over ``--bench-repeats`` repetitions of harness / bare, with its interquartile
range. Per-run fixed costs (looking up the processor's geometry, sorting outcomes) are paid once per
block rather than once per run, so the ratio errs high.

Models: tiny-llava (32-px images, the default matrix's smoke VLM) and llava-1.5-7b's real files with
shrunk dimensions (336-px CLIP processor, 576 image tokens per image; needs ../shared). The ratios go
to the benchmark's ``extra_info`` and are printed.
"""

from __future__ import annotations

import gc
import statistics
import time
from pathlib import Path

import pytest
import torch

from plainsight import runner as runner_module
from plainsight.geometry import letterbox_for
from plainsight.models import loading
from plainsight.models.registry import load_models_toml
from plainsight.models.vlms import VLMRequest
from plainsight.runner import Runner, RunOptions
from plainsight.tasks import get_task
from plainsight.views import compose_view, vlm_preprocess_spec, vlm_view

REPO = Path(__file__).resolve().parents[2]
DATA = REPO / "fixtures" / "data"
TASK = "low_level_matching"
N_ITEMS = 120
MODEL = "tiny-llava"


def harness(runner: Runner, model: str) -> tuple[float, int, int]:
    """Score the runner's items from the source files (decoding included), with the model loaded: seconds, forwards, valid."""
    runner.forget_runs()
    vlm = runner.model(model)
    before = vlm.forward_count
    start = time.perf_counter()
    run = runner.run(TASK, model, "vlm")
    seconds = time.perf_counter() - start
    return seconds, vlm.forward_count - before, sum(o.valid for o in run.outcomes)


def bare(vlm, requests, batch: int) -> tuple[float, float]:
    """(forwards, processor + forwards) seconds for the requests, batched as the harness batches them."""
    if not requests:
        return 0.0, 0.0
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


def letterboxing(spec, composed: list) -> float:
    """Seconds to letterbox the composed views (``image_resize = "letterbox"``): plan the padding and paste."""
    start = time.perf_counter()
    for shown in composed:
        for image in shown:
            box = letterbox_for(spec, image.size) if spec is not None else None
            if box is not None:
                box.apply(image)
    return time.perf_counter() - start


def consecutive_block(items: list, block: tuple[int, int]) -> list:
    """Block i of n: the i-th run of consecutive items (the benchmark's stand-in for ``--shard``'s every n-th item)."""
    index, count = block
    size = -(-len(items) // count)
    return items[(index - 1) * size : index * size]


def paired_ratio(numerators: list[float], denominators: list[float]) -> tuple[float, tuple[float, float]]:
    """Median and interquartile range of the per-repetition ratios numerator_i / denominator_i."""
    ratios = [n / d for n, d in zip(numerators, denominators)]
    q1, median, q3 = statistics.quantiles(ratios, n=4, method="inclusive")
    return median, (q1, q3)


def _real_config_llava(tmp_path: Path):
    """llava-1.5-7b's real config (shrunk dimensions), tokenizer, template and 336-px CLIP processor, saved as a model folder."""
    from transformers import AutoModelForImageTextToText, AutoProcessor

    from conftest import hf_config_dir
    from plainsight.models.tiny import shrink_vlm_config

    folder = hf_config_dir("llava-hf__llava-1.5-7b-hf")
    torch.manual_seed(0)
    model = AutoModelForImageTextToText.from_config(shrink_vlm_config(folder))
    model.save_pretrained(tmp_path / "llava-1.5-shrunk")
    AutoProcessor.from_pretrained(folder).save_pretrained(tmp_path / "llava-1.5-shrunk")
    toml = tmp_path / "models.toml"
    toml.write_text(
        '[models.llava-1-5-shrunk]\nkind = "vlm"\nsource = "./llava-1.5-shrunk"\nimage_mode = "separate"\nsmoke = true\n'
    )
    return load_models_toml(toml)


@pytest.mark.parametrize("model", [MODEL, "llava-1-5-shrunk"])
def test_harness_overhead(benchmark, model, tmp_path, monkeypatch, request):
    """tiny-llava: 32-px images, the default matrix's smoke VLM; llava-1-5-shrunk: the real processor (336 px, 576 image tokens)."""
    repeats = request.config.getoption("--bench-repeats")
    entries = load_models_toml(REPO / "fixtures" / "models.toml") if model == MODEL else _real_config_llava(tmp_path)
    entry = entries[model]
    task = get_task(TASK)
    # Loading the model, building the items and finding the letters' tokens in the chat template
    # happen once per model and are not scoring: every runner below gets this one loaded model.
    whole = Runner(RunOptions(data_root=DATA, limit=N_ITEMS), entries)
    vlm = whole.model(model)
    monkeypatch.setattr(loading, "load_model", lambda *args, **kwargs: vlm)
    # The runner's own name for shard_items: the blocks are consecutive runs of items, not every n-th item.
    monkeypatch.setattr(
        runner_module, "shard_items", lambda items, shard: items if shard is None else consecutive_block(items, shard)
    )
    n_blocks = N_ITEMS // entry.batch_size
    blocks = [
        Runner(RunOptions(data_root=DATA, limit=N_ITEMS, shard=(i + 1, n_blocks)), entries) for i in range(n_blocks)
    ]
    spec = vlm_preprocess_spec(vlm)
    block_requests = []
    for runner in blocks:
        views = [(it, *vlm_view(task.render, it, entry.image_mode, spec)) for it in runner.items(TASK)]
        # The bare forwards get the inputs the harness scores (letterboxed where the processor would crop).
        block_requests.append(
            [VLMRequest(shown, it.prompt, it.choices) for it, shown, invalid in views if invalid is None]
        )
    assert [it.id for r in blocks for it in r.items(TASK)] == [it.id for it in whole.items(TASK)]  # all N, once each
    harness(blocks[0], model), bare(vlm, block_requests[0], entry.batch_size)  # warm-up

    def repetition(rep: int) -> tuple[float, float, float]:
        """All blocks once: summed (harness, bare forwards, bare processor + forwards) seconds."""
        h = forward_only = with_processor = 0.0
        for i, (runner, requests) in enumerate(zip(blocks, block_requests)):
            if (rep + i) % 2:
                f, p = bare(vlm, requests, entry.batch_size)
                h += harness(runner, model)[0]
            else:
                h += harness(runner, model)[0]
                f, p = bare(vlm, requests, entry.batch_size)
            forward_only, with_processor = forward_only + f, with_processor + p
        return h, forward_only, with_processor

    def measure():
        """``repeats`` repetitions. Like timeit, each starts from a collected heap with the garbage collector
        off: a collection of pytest's large heap landing in one section but not the other is noise, not cost."""
        runs = []
        for rep in range(repeats):
            gc.collect()
            gc.disable()
            try:
                runs.append(repetition(rep))
            finally:
                gc.enable()
        return runs

    runs = benchmark.pedantic(measure, rounds=1, iterations=1)
    # What letterboxing alone costs on the same views, against the same bare time: its share of the ratio.
    composed = [compose_view(task.render(it, it.load_images()), entry.image_mode)[0] for it in whole.items(TASK)]
    boxed = sum(letterbox_for(spec, im.size) is not None for shown in composed for im in shown) if spec else 0
    letterbox_s = statistics.median(letterboxing(spec, composed) for _ in range(repeats))
    h, forward_only, with_processor = (statistics.median(r[i] for r in runs) for i in range(3))
    ratio, ratio_iqr = paired_ratio([r[0] for r in runs], [r[2] for r in runs])
    ratio_forward_only, _ = paired_ratio([r[0] for r in runs], [r[1] for r in runs])
    # One whole run over the N items counts the forwards.
    _, forwards, valid = harness(whole, model)
    benchmark.extra_info.update(
        model=model, items=N_ITEMS, blocks=n_blocks, repeats=repeats, forwards=forwards, harness_s=h,
        bare_forward_s=forward_only, bare_processor_and_forward_s=with_processor, ratio=ratio_forward_only,
        ratio_incl_processor=ratio, ratio_incl_processor_iqr=ratio_iqr, letterbox_s=letterbox_s,
        letterboxed_images=boxed,
    )  # fmt: skip
    print(
        f"\n{model}, {N_ITEMS} items in {n_blocks} blocks, {repeats} repetitions (medians): harness {h:.3f}s, "
        f"bare forwards {forward_only:.3f}s (ratio {ratio_forward_only:.2f}), processor+forwards "
        f"{with_processor:.3f}s (ratio {ratio:.3f}, IQR {ratio_iqr[0]:.3f}-{ratio_iqr[1]:.3f}), "
        f"{valid} scored items, {forwards / valid:.2f} forwards per scored item; letterboxing {boxed} images "
        f"{1000 * letterbox_s:.1f} ms = {100 * letterbox_s / with_processor:.2f}% of processor+forwards"
    )
    assert forwards == valid == sum(map(len, block_requests)) == N_ITEMS  # one forward per item, none cropped away
