"""Statistics against closed forms and enumeration (hypothesis where it could be subtly wrong)."""

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from plainsight.scoring import (
    binomial_sf, chance_floor, choose, distribution, mcnemar_exact, mcnemar_one_sided,
    paired_bootstrap_diff, tv_distance, wilson_interval,
)  # fmt: skip

Z = 1.959963984540054


def wilson_by_hand(k, n):
    p = k / n
    c = (p + Z**2 / (2 * n)) / (1 + Z**2 / n)
    h = Z / (1 + Z**2 / n) * math.sqrt(p * (1 - p) / n + Z**2 / (4 * n**2))
    return c - h, c + h


@pytest.mark.parametrize("k,n", [(0, 10), (5, 10), (10, 10), (81, 100), (1, 3)])
def test_wilson_closed_form(k, n):
    lo, hi = wilson_interval(k, n)
    elo, ehi = wilson_by_hand(k, n)
    assert lo == pytest.approx(max(0, elo), abs=1e-12) and hi == pytest.approx(min(1, ehi), abs=1e-12)


def test_wilson_known_value():
    # 81/100: textbook Wilson interval (0.7222, 0.8749)
    lo, hi = wilson_interval(81, 100)
    assert (round(lo, 4), round(hi, 4)) == (0.7222, 0.8749)


@given(st.integers(1, 500).flatmap(lambda n: st.tuples(st.integers(0, n), st.just(n))))
def test_wilson_contains_estimate_and_is_monotone(kn):
    k, n = kn
    lo, hi = wilson_interval(k, n)
    assert 0 <= lo <= k / n <= hi <= 1
    if k < n:
        lo2, hi2 = wilson_interval(k + 1, n)
        assert lo2 >= lo and hi2 >= hi


def test_wilson_shrinks_with_n():
    widths = [wilson_interval(n // 2, n) for n in (10, 100, 1000)]
    assert widths[0][1] - widths[0][0] > widths[1][1] - widths[1][0] > widths[2][1] - widths[2][0]


@given(st.integers(0, 30), st.integers(0, 30), st.floats(0.01, 0.99))
def test_binomial_sf_matches_enumeration(k, n, p):
    brute = sum(math.comb(n, i) * p**i * (1 - p) ** (n - i) for i in range(max(k, 0), n + 1))
    assert binomial_sf(k, n, p) == pytest.approx(min(1.0, brute), rel=1e-9, abs=1e-12)


def test_binomial_sf_edges_and_large_n():
    assert binomial_sf(0, 10, 0.3) == 1.0 and binomial_sf(11, 10, 0.3) == 0.0
    assert binomial_sf(5000, 10000, 0.5) == pytest.approx(0.5039893, rel=1e-5)
    assert all(binomial_sf(k, 20, 0.4) >= binomial_sf(k + 1, 20, 0.4) for k in range(20))


def mcnemar_by_enumeration(b, c):
    n = b + c
    probs = [math.comb(n, i) / 2**n for i in range(n + 1)]
    observed = probs[b]
    return min(1.0, sum(p for p in probs if p <= observed + 1e-15))


@given(st.integers(0, 25), st.integers(0, 25))
def test_mcnemar_exact(b, c):
    p = mcnemar_exact(b, c)
    assert p == pytest.approx(mcnemar_exact(c, b))
    assert p == pytest.approx(mcnemar_by_enumeration(b, c), abs=1e-12)
    if b == c:
        assert p == 1.0


def test_mcnemar_one_sided():
    # 20 items only the baseline got right, 0 only the new run: P = 0.5**20
    assert mcnemar_one_sided(0, 20) == pytest.approx(0.5**20)
    assert mcnemar_one_sided(20, 0) == 1.0
    assert mcnemar_one_sided(3, 3) == pytest.approx(sum(math.comb(6, i) for i in range(3, 7)) / 64)


dists = st.lists(st.floats(0, 1), min_size=4, max_size=4).filter(lambda v: sum(v) > 0).map(
    lambda v: {k: x / sum(v) for k, x in zip("ABCD", v)}
)


@given(dists, dists, dists)
def test_tv_is_a_metric(p, q, r):
    assert 0 <= tv_distance(p, q) <= 1 + 1e-12
    assert tv_distance(p, q) == pytest.approx(tv_distance(q, p))
    assert tv_distance(p, p) == 0
    assert tv_distance(p, r) <= tv_distance(p, q) + tv_distance(q, r) + 1e-12


def test_tv_hand_example_constant_a():
    answers = distribution(["A"] * 8, "ABCD")
    gold = {"A": 0.25, "B": 0.25, "C": 0.25, "D": 0.25}
    assert tv_distance(answers, gold) == pytest.approx(0.75)
    assert tv_distance({"A": 1.0}, {"B": 1.0}) == 1.0


def test_choose_ties_nan_and_validity():
    assert choose({"A": -1.0, "B": -1.0, "C": -3.0}, "ABC").reason == "tie"
    assert choose({"A": -1.0, "B": -1.0, "C": -3.0}, "ABC").letter is None
    assert choose({"A": float("nan"), "B": -1.0}, "AB").reason == "nan"
    assert choose({"A": -1.0, "B": -2.0, "Z": 0.0}, "AB").letter == "A"  # Z is not a valid letter
    assert choose({"A": -1.0, "B": -0.5}, "AB").letter == "B"
    assert choose({"A": -1.0, "B": -0.99}, "AB", tie_tol=0.05).reason == "tie"


def test_distribution_with_abstentions_sums_to_one():
    d = distribution(["A", None, "B", None], "ABCD")
    assert d == {"A": 0.25, "B": 0.25, "C": 0.0, "D": 0.0, "none": 0.5}
    assert sum(d.values()) == 1.0
    assert "none" not in distribution(["A"], "AB")
    assert distribution([], "AB") == {"A": 0.0, "B": 0.0}


def test_chance_floor():
    assert chance_floor(list("AAAB"), 4) == 0.75
    assert chance_floor(list("ABCD"), 4) == 0.25
    assert chance_floor(list("ABCD"), 2) == 0.5


@settings(max_examples=30)
@given(st.lists(st.tuples(st.booleans(), st.booleans()), min_size=1, max_size=60), st.integers(0, 5))
def test_paired_bootstrap(pairs, seed):
    a = [x for x, _ in pairs]
    b = [y for _, y in pairs]
    diff, lo, hi = paired_bootstrap_diff(a, b, iters=300, seed=seed)
    assert lo <= diff <= hi
    assert paired_bootstrap_diff(a, b, iters=300, seed=seed) == (diff, lo, hi)
    assert paired_bootstrap_diff(a, a, iters=300, seed=seed) == (0.0, 0.0, 0.0)
