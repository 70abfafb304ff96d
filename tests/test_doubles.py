"""The model doubles behave exactly as documented (the gates' tests rely on it)."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from plainsight.errors import ConfigError
from plainsight.items import Item, ItemImage
from plainsight.models.doubles import (
    ConstantVLM,
    ImageBlindVLM,
    NaNVLM,
    OracleVLM,
    TyingVLM,
    make_double,
)
from plainsight.models.vlms import VLMRequest

LETTERS = ("A", "B", "C", "D")
PHOTO = [Image.new("RGB", (20, 10), (10, 20, 30))]
WHITE = [Image.new("RGB", (20, 10), (255, 255, 255))]


def item(gold: str, item_id: str = "i1") -> Item:
    im = ItemImage("a.png", (10, 10), {"REF": (1, 1)})
    return Item(item_id, "low_level_matching", (im, im), LETTERS, gold, "Which?", "p@v1")


def scores_of(double, images=PHOTO, gold="C", item_id="i1", prompt="Which?") -> dict[str, float]:
    return double.score_letters([VLMRequest(images, prompt, LETTERS, item(gold, item_id))])[0].logprobs


def argmax(scores: dict[str, float]) -> str:
    return max(scores, key=scores.get)


@pytest.mark.parametrize("gold", LETTERS)
def test_oracle_prefers_gold_with_the_rest_lower_equal_and_finite(gold: str):
    scores = scores_of(make_double("oracle", "o"), gold=gold)
    assert scores[gold] == pytest.approx(math.log(0.97))
    others = {v for letter, v in scores.items() if letter != gold}
    assert len(others) == 1 and all(math.isfinite(v) and v < scores[gold] for v in others)


def test_oracle_cannot_know_without_images_and_misses_the_listed_items():
    oracle = make_double("oracle", "o")
    assert argmax(scores_of(oracle, WHITE, gold="C")) == "A"
    missing = make_double("oracle", "o", {"miss": ["i2"]})
    assert argmax(scores_of(missing, gold="C", item_id="i1")) == "C"
    assert argmax(scores_of(missing, gold="C", item_id="i2")) != "C"
    with pytest.raises(ValueError, match="needs the item"):
        OracleVLM("o").score_letters([VLMRequest(PHOTO, "Which?", LETTERS)])


@pytest.mark.parametrize("kind, letter", [("constant-a", "A"), ("constant-b", "B"), ("constant-d", "D")])
def test_constant_always_prefers_its_letter(kind: str, letter: str):
    double = make_double(kind, "c")
    assert isinstance(double, ConstantVLM)
    for gold in LETTERS:
        assert argmax(scores_of(double, gold=gold)) == letter
        assert argmax(scores_of(double, WHITE, gold=gold)) == letter


@settings(max_examples=40, deadline=None)
@given(prompt=st.text(max_size=30), item_id=st.text(min_size=1, max_size=10), gold=st.sampled_from(LETTERS))
def test_image_blind_answers_identically_with_and_without_images(prompt: str, item_id: str, gold: str):
    blind = make_double("image-blind", "x")
    seen = scores_of(blind, PHOTO, gold=gold, item_id=item_id, prompt=prompt)
    assert seen == scores_of(blind, WHITE, gold=gold, item_id=item_id, prompt=prompt)
    assert seen == scores_of(ImageBlindVLM("other"), [], gold="A", item_id=item_id, prompt=prompt)  # deterministic
    assert len(set(seen.values())) == 2  # one preferred letter, no tie


def test_image_blind_spreads_its_answers_over_the_letters():
    blind = make_double("image-blind", "x")
    answers = [argmax(scores_of(blind, item_id=f"item-{i}")) for i in range(200)]
    counts = {letter: answers.count(letter) for letter in LETTERS}
    assert all(20 < c < 80 for c in counts.values()), counts


def test_tying_gives_every_letter_the_same_finite_score():
    scores = scores_of(make_double("tying", "t"))
    assert set(scores) == set(LETTERS) and len(set(scores.values())) == 1
    assert all(math.isfinite(v) for v in scores.values())


def test_nan_gives_nan_for_every_letter():
    scores = scores_of(make_double("nan", "n"))
    assert set(scores) == set(LETTERS) and all(math.isnan(v) for v in scores.values())


@pytest.mark.parametrize("cls", [OracleVLM, ConstantVLM, ImageBlindVLM, TyingVLM, NaNVLM])
def test_each_double_counts_one_forward_per_item(cls):
    double = cls("d")
    requests = [VLMRequest(PHOTO, "Which?", LETTERS, item("B", f"i{k}")) for k in range(3)]
    assert double.forward_count == 0
    out = double.score_letters(requests)
    assert len(out) == 3 and double.forward_count == 3
    double.score_letters(requests[:1])
    assert double.forward_count == 4


def test_generate_names_the_preferred_letter_or_none_on_a_tie():
    request = [VLMRequest(PHOTO, "Which?", LETTERS, item("D"))]
    assert "(D)" in make_double("oracle", "o").generate(request)[0]
    tie_reply = make_double("tying", "t").generate(request)[0]
    assert not any(f"({letter})" in tie_reply for letter in LETTERS)


@pytest.mark.parametrize("kind", ["genius", "constant-", "constant-ab", "Oracle"])
def test_unknown_kind_is_a_config_error_listing_the_kinds(kind: str):
    with pytest.raises(ConfigError, match=r"unknown double.*oracle.*constant-<letter>.*image-blind.*tying.*nan"):
        make_double(kind, "g")
