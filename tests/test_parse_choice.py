"""The strict answer parser: a table of replies (peers' known failures included)."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from plainsight.scoring import parse_choice

ABCD = ("A", "B", "C", "D")
DEPTH = ("A", "B")
DEPTH_OPTIONS = ("table", "bookcase")
ART = ("A", "B")
ART_OPTIONS = ("the second image", "the third image")

CASES = [
    # (reply, letters, options, expected)
    ("B", ABCD, None, "B"),
    ("(B)", ABCD, None, "B"),
    ("B.", ABCD, None, "B"),
    ("B)", ABCD, None, "B"),
    ("[C]", ABCD, None, "C"),
    ("**B**", ABCD, None, "B"),
    ("`D`", ABCD, None, "D"),
    ("  C  ", ABCD, None, "C"),
    ("b", ABCD, None, "B"),
    ("(d)", ABCD, None, "D"),
    ("Answer: B", ABCD, None, "B"),
    ("answer: (C)", ABCD, None, "C"),
    ("The answer is (B)", ABCD, None, "B"),
    ("The answer is B.", ABCD, None, "B"),
    ("The correct answer is option D", ABCD, None, "D"),
    ("Option A", ABCD, None, "A"),
    ("**Answer:** C", ABCD, None, "C"),
    ("B</s>", ABCD, None, "B"),
    ("(A)<|im_end|>", ABCD, None, "A"),
    ("C<end_of_utterance>", ABCD, None, "C"),
    ("B. Point B", ABCD, None, "B"),
    ("(B) Point B", ABCD, None, "B"),
    ("A. The reference point matches A.", ABCD, None, "A"),
    ("D: the fourth point", ABCD, None, "D"),
    ("bookcase", DEPTH, DEPTH_OPTIONS, "B"),
    ("The bookcase.", DEPTH, DEPTH_OPTIONS, "B"),
    ("the third image", ART, ART_OPTIONS, "B"),
    ("The second image shares the style.", ART, ART_OPTIONS, "A"),
    ("Point C", ABCD, ("Point A", "Point B", "Point C", "Point D"), "C"),
    # abstentions
    ("A or B", ABCD, None, None),
    ("Either (A) or (C)", ABCD, None, None),
    ("Database", ABCD, None, None),  # lmms-eval reads this as D
    ("Answer: E", ABCD, None, None),
    ("E", ABCD, None, None),
    ("C", DEPTH, None, None),
    ("", ABCD, None, None),
    ("</s>", ABCD, None, None),
    ("I cannot tell from the image.", ABCD, None, None),
    ("Both the table and the bookcase", DEPTH, DEPTH_OPTIONS, None),
    ("The answer is B, or maybe C", ABCD, None, None),
    ("Depth", ABCD, None, None),
    ("A good choice is C", ABCD, None, None),
    ("Answer: B or D", ABCD, None, None),
    ("B and C", ABCD, None, None),
]


@pytest.mark.parametrize("reply, letters, options, expected", CASES, ids=[repr(c[0])[:30] for c in CASES])
def test_parse_table(reply, letters, options, expected):
    assert parse_choice(reply, letters, options) == expected


def test_the_table_is_large():
    assert len(CASES) >= 40 and sum(c[3] is None for c in CASES) >= 10


@given(st.text(max_size=40))
def test_never_returns_an_invalid_letter(reply):
    assert parse_choice(reply, ("A", "B"), ("cat", "dog")) in (None, "A", "B")


@given(
    st.sampled_from(ABCD),
    st.sampled_from(["{}", "({})", "{}.", "Answer: {}", "The answer is ({})", "**{}**", "{}</s>"]),
)
def test_every_accepted_form_round_trips(letter, form):
    assert parse_choice(form.format(letter), ABCD) == letter
