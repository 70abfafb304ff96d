"""The letter token scored is the one the model emits when its answer is that letter (real tokenizers/templates)."""

from __future__ import annotations

import json
import math

import pytest
import torch
from PIL import Image

from conftest import hf_config_dir
from plainsight.models.tiny import shrink_config_from_hf_configs
from plainsight.models.vlms import HFVLM, VLMRequest

LETTERS = ("A", "B", "C", "D")


def real_config_vlm(folder_name: str) -> HFVLM:
    from transformers import AutoModelForImageTextToText

    config, processor = shrink_config_from_hf_configs(hf_config_dir(folder_name))
    torch.manual_seed(0)
    model = AutoModelForImageTextToText.from_config(config)
    return HFVLM(folder_name, model, processor)


@pytest.fixture(scope="module")
def llava() -> HFVLM:
    return real_config_vlm("llava-hf__llava-1.5-7b-hf")


def answered_conversation_tokens(vlm: HFVLM, letter: str) -> tuple[list[int], list[int]]:
    """Independent check: tokenize the whole conversation with the assistant's answer, and without it."""
    user = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Which point?"}]}]
    answered = user + [{"role": "assistant", "content": [{"type": "text", "text": letter}]}]
    tok = vlm.processor.tokenizer
    with_answer = tok(vlm.processor.apply_chat_template(answered, tokenize=False))["input_ids"]
    prompt = tok(vlm.processor.apply_chat_template(user, add_generation_prompt=True, tokenize=False))["input_ids"]
    return prompt, with_answer


def test_llava_scores_the_token_after_assistant_colon(llava: HFVLM):
    vlm = llava
    tok = vlm.processor.tokenizer
    ids = vlm.letter_token_ids(LETTERS)
    for letter in LETTERS:
        prompt, full = answered_conversation_tokens(vlm, letter)
        assert full[: len(prompt)] == prompt
        assert ids[letter] == [full[len(prompt)]], (letter, full[len(prompt) :])
    assert ids["A"] == [319] == tok("A", add_special_tokens=False)["input_ids"]
    # the trap: " A" on its own is two tokens, a bare "▁" then "▁A"; scoring either naive choice is wrong
    assert tok(" A", add_special_tokens=False)["input_ids"] == [29871, 319]
    assert len({tuple(v) for v in ids.values()}) == 4
    assert vlm.letter_tokens(LETTERS).forced == ()
    # and the scores carry exactly these ids
    scores = vlm.score_letters([VLMRequest([Image.new("RGB", (64, 48), (20, 200, 20))], "Which point?", LETTERS)])
    assert scores[0].token_ids == {letter: ids[letter][-1] for letter in LETTERS}


def test_llava_logits_are_wider_than_the_tokenizer_and_one_forward_per_item(llava: HFVLM):
    vlm = llava
    before = vlm.forward_count
    assert vlm.model.config.text_config.vocab_size > len(vlm.processor.tokenizer)
    requests = [VLMRequest([Image.new("RGB", (64, 48), (i * 60, 20, 20))], "Which point?", LETTERS) for i in range(2)]
    scores = vlm.score_letters(requests)
    assert vlm.forward_count - before == 2
    for s in scores:
        assert set(s.logprobs) == set(LETTERS)
        assert all(math.isfinite(v) and v < 0 for v in s.logprobs.values())
        assert all(token < len(vlm.processor.tokenizer) for token in s.token_ids.values())


@pytest.mark.parametrize(
    "folder, expected_a", [("Qwen__Qwen2-VL-2B-Instruct", 32), ("HuggingFaceTB__SmolVLM-256M-Instruct", 330)]
)
def test_other_families_score_their_own_answer_token(folder: str, expected_a: int):
    vlm = real_config_vlm(folder)
    ids = vlm.letter_token_ids(LETTERS)
    for letter in LETTERS:
        prompt, full = answered_conversation_tokens(vlm, letter)
        assert full[: len(prompt)] == prompt
        assert ids[letter] == [full[len(prompt)]]
    assert ids["A"] == [expected_a]
    assert len({tuple(v) for v in ids.values()}) == 4
    scores = vlm.score_letters([VLMRequest([Image.new("RGB", (64, 48), (200, 30, 30))], "Which point?", LETTERS)])
    assert vlm.forward_count == 1 and len(scores[0].logprobs) == 4


def test_hf_configs_have_the_documented_token_ids():
    data = json.loads((hf_config_dir("Qwen__Qwen2-VL-2B-Instruct") / "vocab.json").read_text())
    assert data["A"] == 32 and data["ĠA"] == 362
