"""HFVLM on the committed tiny LLaVA, and the model doubles."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from PIL import Image

from plainsight.errors import ConfigError, ModelUnavailable
from plainsight.items import Item, ItemImage
from plainsight.models.doubles import make_double
from plainsight.models.registry import ModelEntry
from plainsight.models.vlms import HFVLM, VLMRequest, load_vlm

REPO = Path(__file__).resolve().parents[1]
TINY_LLAVA = REPO / "fixtures" / "models" / "tiny-llava"
LETTERS = ("A", "B", "C", "D")


@pytest.fixture(scope="module")
def vlm() -> HFVLM:
    return HFVLM.from_pretrained("tiny-llava", str(TINY_LLAVA))


def requests(n: int) -> list[VLMRequest]:
    return [
        VLMRequest([Image.new("RGB", (40 + 8 * i, 30), (30 * i, 90, 10))], "Which point? " * (1 + 2 * i), LETTERS)
        for i in range(n)
    ]


def test_batched_scores_equal_one_by_one_and_count_one_forward_per_item(vlm: HFVLM):
    reqs = requests(5)
    before = vlm.forward_count
    batched = vlm.score_letters(reqs)
    assert vlm.forward_count - before == 5
    single = [vlm.score_letters([r])[0] for r in reqs]
    for b, s in zip(batched, single):
        for letter in LETTERS:
            assert b.logprobs[letter] == pytest.approx(s.logprobs[letter], abs=1e-4)


def test_scores_are_the_log_softmax_at_the_answer_position(vlm: HFVLM):
    req = requests(1)[0]
    text = vlm.build_prompt(1, req.prompt)
    assert "<image>" in text and text.endswith("ASSISTANT:")
    inputs = vlm.processor(images=req.images, text=[text], return_tensors="pt")
    with torch.inference_mode():
        logits = vlm.model(**inputs).logits[0, -1]
    expected = torch.log_softmax(logits.float(), -1)
    got = vlm.score_letters([req])[0]
    for letter, token in got.token_ids.items():
        assert got.logprobs[letter] == pytest.approx(expected[token].item(), abs=1e-5)


def test_letter_tokens_come_from_the_template_answer(vlm: HFVLM):
    ids = vlm.letter_token_ids(LETTERS)
    tok = vlm.processor.tokenizer
    for letter in LETTERS:
        assert tok.decode([ids[letter]]).strip() == letter


def test_missing_local_folder_is_unavailable_with_the_fix(tmp_path: Path):
    entry = ModelEntry(name="ghost", kind="vlm", source="./nowhere", base_dir=tmp_path)
    with pytest.raises(ModelUnavailable, match="nowhere"):
        load_vlm(entry)
    entry = ModelEntry(name="ghost", kind="vlm", source="someorg/not-cached-model", base_dir=tmp_path)
    with pytest.raises(ModelUnavailable, match="huggingface-cli download someorg/not-cached-model"):
        load_vlm(entry)


def item(gold: str) -> Item:
    im = ItemImage("a.png", (10, 10), {"REF": (1, 1)})
    return Item("i1", "low_level_matching", (im, im), LETTERS, gold, "Which?", "p@v1")


def test_doubles_behave_as_documented():
    photo = [Image.new("RGB", (20, 10), (10, 20, 30))]
    white = [Image.new("RGB", (20, 10), (255, 255, 255))]

    def best(double, images, gold="C"):
        scores = double.score_letters([VLMRequest(images, "Which?", LETTERS, item(gold))])[0].logprobs
        return max(scores, key=scores.get), scores

    oracle = make_double("oracle", "o")
    assert best(oracle, photo)[0] == "C" and best(oracle, photo, "D")[0] == "D"
    assert best(oracle, white)[0] == "A"  # blind: it cannot know
    assert best(make_double("constant-b", "b"), photo)[0] == "B"
    blind = make_double("image-blind", "x")
    assert best(blind, photo) == best(blind, white)
    _, tie = best(make_double("tying", "t"), photo)
    assert len(set(tie.values())) == 1
    _, nan = best(make_double("nan", "n"), photo)
    assert all(v != v for v in nan.values())
    assert oracle.forward_count == 3
    with pytest.raises(ConfigError, match="unknown double"):
        make_double("genius", "g")
