"""Every supported VLM family: letter scoring, generation + parser, and the blind run, in both image modes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from families import FAMILIES

from plainsight.models.vlms import VLMRequest
from plainsight.scoring import choose, parse_choice
from plainsight.tasks import LoadRequest, get_task
from plainsight.views import vlm_preprocess_spec, vlm_view

N_ITEMS = 2


@pytest.fixture(scope="module")
def items(embedded_data: Path):
    task = get_task("low_level_matching")
    return task, task.load_items(LoadRequest(embedded_data, limit=N_ITEMS))


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_family_scores_generates_and_runs_blind(family: str, items):
    task, its = items
    vlm = FAMILIES[family]()
    spec = vlm_preprocess_spec(vlm)
    for mode in ("separate", "side_by_side"):
        for blind in (False, True):
            requests = []
            for item in its:
                shown, _ = vlm_view(task.render, item, mode, spec, blind=blind)
                assert len(shown) == (1 if mode == "side_by_side" else 2)
                requests.append(VLMRequest(shown, item.prompt, item.choices, item))
            before = vlm.forward_count
            scores = vlm.score_letters(requests)
            assert vlm.forward_count - before == len(requests)  # one forward per item
            for s in scores:
                assert set(s.logprobs) == set(item.choices)
                assert all(np.isfinite(v) and v <= 0 for v in s.logprobs.values())
            replies = vlm.generate(requests, max_new_tokens=4)
            assert len(replies) == len(requests) and all(isinstance(r, str) for r in replies)
            for reply, item in zip(replies, its):
                assert parse_choice(reply, item.choices, item.option_texts) in (None, *item.choices)


@pytest.mark.parametrize("family", ["llava-1.5", "qwen2-vl", "smolvlm", "paligemma"])
def test_letter_restricted_generation_equals_the_letter_scoring_argmax(family: str, items):
    task, its = items
    vlm = FAMILIES[family]()
    requests = []
    for k, item in enumerate(its * 3):
        shown, _ = vlm_view(task.render, item, "separate", None)
        shown = [im.rotate(90 * k, expand=True) for im in shown]  # vary the inputs
        requests.append(VLMRequest(shown, item.prompt + " " * k, item.choices, item))
    scored = [choose(s.logprobs, item.choices).letter for s, item in zip(vlm.score_letters(requests), its * 3)]
    generated = [
        parse_choice(r, item.choices) for r, item in zip(vlm.generate(requests, restrict_to_letters=True), its * 3)
    ]
    assert generated == scored and None not in scored


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_batched_scores_equal_one_by_one(family: str, items):
    task, its = items
    vlm = FAMILIES[family]()
    requests = []
    for k, item in enumerate(its):
        shown, _ = vlm_view(task.render, item, "side_by_side", None)
        requests.append(VLMRequest(shown, item.prompt + " Answer with the letter." * k, item.choices, item))
    batched = vlm.score_letters(requests)
    for request, together in zip(requests, batched):
        alone = vlm.score_letters([request])[0]
        for letter in request.letters:
            assert together.logprobs[letter] == pytest.approx(alone.logprobs[letter], abs=2e-3)
