"""HFVLM letter scoring on the committed tiny LLaVA, and load_vlm."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from plainsight.errors import ModelUnavailable
from plainsight.models.doubles import OracleVLM
from plainsight.models.loading import load_vlm
from plainsight.models.registry import ModelEntry
from plainsight.models.vlms import HFVLM, VLMRequest

REPO = Path(__file__).resolve().parents[1]
TINY_LLAVA = REPO / "fixtures" / "models" / "tiny-llava"
LETTERS = ("A", "B", "C", "D")


def fresh_vlm(**kwargs) -> HFVLM:
    return HFVLM.from_pretrained("tiny-llava", str(TINY_LLAVA), **kwargs)


@pytest.fixture(scope="module")
def vlm() -> HFVLM:
    return fresh_vlm()


def requests(n: int) -> list[VLMRequest]:
    return [
        VLMRequest([Image.new("RGB", (40 + 8 * i, 30), (30 * i, 90, 10))], "Which point? " * (1 + 2 * i), LETTERS)
        for i in range(n)
    ]


def manual_logprobs(vlm: HFVLM, req: VLMRequest, extra: tuple[int, ...] = ()) -> torch.Tensor:
    """An independent single-item forward: full-vocabulary log-softmax at the last position."""
    text = vlm.build_prompt(len(req.images), req.prompt)
    inputs = vlm.processor(images=req.images, text=[text], return_tensors="pt")
    if extra:
        inputs["input_ids"] = torch.cat([inputs["input_ids"], torch.tensor([extra])], dim=1)
        inputs["attention_mask"] = torch.ones_like(inputs["input_ids"])
    with torch.inference_mode():
        logits = vlm.model(**inputs).logits[0, -1]
    return torch.log_softmax(logits.float(), -1)


def test_batched_scores_equal_one_by_one_and_count_one_forward_per_item(vlm: HFVLM):
    reqs = requests(5)
    before = vlm.forward_count
    batched = vlm.score_letters(reqs)
    assert vlm.forward_count - before == 5
    single = [vlm.score_letters([r])[0] for r in reqs]
    assert vlm.forward_count - before == 10
    for b, s in zip(batched, single):
        for letter in LETTERS:
            assert b.logprobs[letter] == pytest.approx(s.logprobs[letter], abs=1e-4)


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    words=st.lists(st.integers(1, 12), min_size=2, max_size=4),
    batch_size=st.integers(1, 3),
    shade=st.integers(0, 255),
)
def test_left_padding_never_changes_a_score(vlm: HFVLM, words: list[int], batch_size: int, shade: int):
    reqs = [
        VLMRequest([Image.new("RGB", (24 + 6 * n, 20), (shade, 255 - shade, 7 * n))], "left right " * n, LETTERS)
        for n in words
    ]
    batched = HFVLM(vlm.name, vlm.model, vlm.processor, batch_size=batch_size).score_letters(reqs)
    for req, got in zip(reqs, batched):
        expected = manual_logprobs(vlm, req)
        for letter, token in got.token_ids.items():
            assert got.logprobs[letter] == pytest.approx(expected[token].item(), abs=1e-4)
    assert vlm.processor.tokenizer.padding_side == "right"  # restored after the call


def test_scores_are_the_log_softmax_at_the_answer_position(vlm: HFVLM):
    req = requests(1)[0]
    assert vlm.build_prompt(1, req.prompt).endswith("ASSISTANT:")
    expected = manual_logprobs(vlm, req)
    got = vlm.score_letters([req])[0]
    assert set(got.token_ids) == set(LETTERS)
    for letter, token in got.token_ids.items():
        assert got.logprobs[letter] == pytest.approx(expected[token].item(), abs=1e-5)


def test_build_prompt_has_one_image_placeholder_per_image(vlm: HFVLM):
    for n in (1, 2):
        text = vlm.build_prompt(n, "Which point?")
        assert text.count("<image>") == n and text.index("<image>") < text.index("Which point?")


def test_letter_tokens_are_the_template_answer(vlm: HFVLM):
    ids = vlm.letter_token_ids(LETTERS)
    tok = vlm.processor.tokenizer
    prompt = vlm.build_prompt(1, "Question?")
    for letter in LETTERS:
        answered = vlm.processor.apply_chat_template(
            [
                {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Question?"}]},
                {"role": "assistant", "content": [{"type": "text", "text": letter}]},
            ],
            tokenize=False,
        )
        answer = tok(answered, add_special_tokens=False)["input_ids"][
            len(tok(prompt, add_special_tokens=False)["input_ids"]) :
        ]
        assert ids[letter] == answer[: len(ids[letter])]
        assert tok.decode(ids[letter]).strip() == letter


def test_a_shared_answer_prefix_is_teacher_forced_in_the_same_forward():
    vlm = fresh_vlm()
    # an assistant that answers "The answer is (X)": every letter's answer starts with the same tokens
    vlm.processor.chat_template = vlm.processor.chat_template.replace(
        "{{ c['text'] + ' ' }}", "{% if message['role'] == 'assistant' %}{{ 'The answer is (' + c['text'] + ')' }}"
        "{% else %}{{ c['text'] + ' ' }}{% endif %}"
    )  # fmt: skip
    tokens = vlm.letter_tokens(LETTERS)
    assert tokens.forced, "the template should give a shared prefix"
    assert vlm.processor.tokenizer.decode(list(tokens.forced)).strip() == "The answer is ("
    assert vlm.letter_token_ids(LETTERS)["B"] == [*tokens.forced, tokens.ids["B"]]
    req = requests(1)[0]
    got = vlm.score_letters([req])[0]
    assert vlm.forward_count == 1
    expected = manual_logprobs(vlm, req, extra=tokens.forced)
    for letter in LETTERS:
        assert got.logprobs[letter] == pytest.approx(expected[tokens.ids[letter]].item(), abs=1e-5)
    # and the batched, left-padded path agrees with it
    batched = vlm.score_letters(requests(3))
    assert batched[0].logprobs == pytest.approx(got.logprobs, abs=1e-4)


def test_template_whose_answer_does_not_extend_the_prompt_is_an_error_naming_the_model():
    vlm = fresh_vlm()
    vlm.processor.chat_template = vlm.processor.chat_template.replace("'ASSISTANT:'", "'BOT:'")
    with pytest.raises(RuntimeError, match="tiny-llava.*generation prompt"):
        vlm.score_letters(requests(1))


def test_letters_the_template_cannot_tell_apart_are_an_error_naming_the_model():
    vlm = fresh_vlm()
    # the assistant's answer is rendered without its text: every letter gives the same tokens
    vlm.processor.chat_template = vlm.processor.chat_template.replace(
        "{{ c['text'] + ' ' }}", "{% if message['role'] != 'assistant' %}{{ c['text'] + ' ' }}{% endif %}"
    )
    with pytest.raises(RuntimeError, match="tiny-llava"):
        vlm.letter_tokens(LETTERS)


def test_logits_wider_than_the_tokenizer_are_scored_over_the_full_width():
    vlm = fresh_vlm()
    n = len(vlm.processor.tokenizer)
    vlm.model.resize_token_embeddings(n + 40)
    with torch.no_grad():  # make the padding rows matter: a softmax over only len(tokenizer) would be far off
        vlm.model.lm_head.weight[n:] = vlm.model.lm_head.weight[:40] * 5
    req = requests(1)[0]
    expected = manual_logprobs(vlm, req)
    assert expected.shape[0] == n + 40
    got = vlm.score_letters([req])[0]
    for letter, token in got.token_ids.items():
        assert token < n
        assert got.logprobs[letter] == pytest.approx(expected[token].item(), abs=1e-5)


def test_tiny_llava_resizes_without_crop_so_edge_markers_survive(vlm: HFVLM):
    image = np.full((40, 80, 3), 128, np.uint8)
    image[:, -4:] = (255, 0, 0)  # a marker at the far right of a 2:1 side-by-side image
    pixels = vlm.processor.image_processor(Image.fromarray(image), return_tensors="pt")["pixel_values"]
    assert tuple(pixels.shape) == (1, 3, 32, 32)
    red, green = pixels[0, 0, :, -1], pixels[0, 1, :, -1]
    assert bool(torch.all(red > green + 1.0))


def test_load_vlm_reads_a_local_folder_and_doubles(tmp_path: Path):
    entry = ModelEntry(name="tiny", kind="vlm", source="./tiny-llava", base_dir=TINY_LLAVA.parent)
    loaded = load_vlm(entry)
    assert isinstance(loaded, HFVLM) and loaded.name == "tiny"
    double = load_vlm(ModelEntry(name="o", kind="vlm", source="double:oracle", base_dir=tmp_path))
    assert isinstance(double, OracleVLM) and double.name == "o"


def test_load_vlm_missing_model_is_unavailable_with_the_fix(tmp_path: Path):
    entry = ModelEntry(name="ghost", kind="vlm", source="./nowhere", base_dir=tmp_path)
    with pytest.raises(ModelUnavailable, match="nowhere.*not found"):
        load_vlm(entry)
    entry = ModelEntry(name="ghost", kind="vlm", source="someorg/not-cached-model", base_dir=tmp_path)
    with pytest.raises(ModelUnavailable, match="huggingface-cli download someorg/not-cached-model"):
        load_vlm(entry)


def test_non_finite_logits_reach_the_scores_of_their_row_only():
    """NaN anywhere in a row's logits makes every letter NaN (it poisons the normaliser), in that row only;
    a finite row beside it is scored as usual, and +inf on a non-letter token leaves no letter any probability."""
    vlm = fresh_vlm()
    reqs = requests(3)
    clean = vlm.score_letters(reqs)
    letter_ids = set(clean[0].token_ids.values())
    other = next(i for i in range(10) if i not in letter_ids)

    def corrupt(module, args, output):
        output = output.clone()
        output[0, -1, other] = float("nan")
        output[2, -1, other] = float("inf")
        return output

    handle = vlm.model.get_output_embeddings().register_forward_hook(corrupt)
    try:
        got = vlm.score_letters(reqs)
    finally:
        handle.remove()
    assert all(np.isnan(v) for v in got[0].logprobs.values())
    assert got[1].logprobs == pytest.approx(clean[1].logprobs, abs=1e-5)
    assert all(v == -np.inf for v in got[2].logprobs.values())
