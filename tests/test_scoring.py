"""Statistics against closed forms and enumeration (hypothesis where it could be subtly wrong)."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from plainsight.scoring import (
    Choice,
    binomial_sf,
    chance_floor,
    choose,
    distribution,
    mcnemar_exact,
    mcnemar_one_sided,
    paired_bootstrap_diff,
    tv_distance,
    wilson_interval,
)  # fmt: skip

Z = 1.959963984540054
INF = math.inf
NAN = math.nan


# --- Wilson interval -------------------------------------------------------------------------


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


def test_wilson_known_values():
    # textbook values: 81/100 -> (0.7222, 0.8749); 0/10 -> (0, 0.2775); 10/10 -> (0.7225, 1)
    assert tuple(round(v, 4) for v in wilson_interval(81, 100)) == (0.7222, 0.8749)
    assert tuple(round(v, 4) for v in wilson_interval(0, 10)) == (0.0, 0.2775)
    assert tuple(round(v, 4) for v in wilson_interval(10, 10)) == (0.7225, 1.0)
    assert wilson_interval(0, 0) == (0.0, 1.0)
    # a wider z gives a wider interval (the argument is used, not ignored)
    assert wilson_interval(5, 10, z=3.0)[0] < wilson_interval(5, 10)[0]


@given(st.integers(1, 500).flatmap(lambda n: st.tuples(st.integers(0, n), st.just(n))))
def test_wilson_contains_estimate_and_is_monotone(kn):
    k, n = kn
    lo, hi = wilson_interval(k, n)
    assert 0 <= lo <= k / n <= hi <= 1
    if k < n:
        lo2, hi2 = wilson_interval(k + 1, n)
        assert lo2 > lo and hi2 > hi


@given(st.integers(1, 50).flatmap(lambda n: st.tuples(st.integers(0, n), st.just(n))), st.integers(2, 20))
def test_wilson_shrinks_with_n_at_fixed_estimate(kn, m):
    k, n = kn
    lo, hi = wilson_interval(k, n)
    lo_m, hi_m = wilson_interval(k * m, n * m)
    assert hi_m - lo_m < hi - lo


@pytest.mark.parametrize("k,n", [(-1, 10), (11, 10), (0, -1)])
def test_wilson_rejects_impossible_counts(k, n):
    with pytest.raises(ValueError):
        wilson_interval(k, n)


# --- chance floor, distributions, TV ---------------------------------------------------------


def test_chance_floor():
    assert chance_floor(list("AAAB"), 4) == 0.75
    assert chance_floor(list("ABCD"), 4) == 0.25
    assert chance_floor(list("ABCD"), 2) == 0.5
    assert chance_floor([], 3) == pytest.approx(1 / 3)
    with pytest.raises(ValueError):
        chance_floor(list("AB"), 0)


def test_distribution_with_abstentions():
    d = distribution(["A", None, "B", None], "ABCD")
    assert d == {"A": 0.25, "B": 0.25, "C": 0.0, "D": 0.0, "none": 0.5}
    assert "none" not in distribution(["A"], "AB")
    assert distribution([], "AB") == {"A": 0.0, "B": 0.0}


def test_distribution_rejects_letters_outside_the_choices():
    # an out-of-range prediction is an upstream bug, not an abstention
    with pytest.raises(ValueError, match="'E'"):
        distribution(["A", "E"], "ABCD")


@given(st.lists(st.sampled_from(["A", "B", "C", None]), max_size=80))
def test_distribution_sums_to_one(letters):
    d = distribution(letters, "ABC")
    if letters:
        assert math.fsum(d.values()) == pytest.approx(1.0, abs=1e-12)
    else:
        assert all(v == 0 for v in d.values())
    assert ("none" in d) == (None in letters)
    for key, share in d.items():
        count = letters.count(None if key == "none" else key)
        assert share == pytest.approx(count / len(letters) if letters else 0.0)


dists = (
    st.lists(st.floats(0, 1), min_size=4, max_size=4)
    .filter(lambda v: sum(v) > 0)
    .map(lambda v: {k: x / sum(v) for k, x in zip("ABCD", v)})
)


@given(dists, dists, dists)
def test_tv_is_a_metric(p, q, r):
    assert 0 <= tv_distance(p, q) <= 1 + 1e-12
    assert tv_distance(p, q) == tv_distance(q, p)
    assert tv_distance(p, p) == 0
    if all(p[k] == q[k] for k in p):
        assert tv_distance(p, q) == 0
    # ½ Σ|p−q| ≥ ½ max|p−q|: a difference shows (not "tv == 0 iff equal": ½·5e-324 underflows to 0)
    assert tv_distance(p, q) >= 0.5 * max(abs(p[k] - q[k]) for k in p) - 1e-15
    assert tv_distance(p, r) <= tv_distance(p, q) + tv_distance(q, r) + 1e-12


@given(dists, dists)
def test_tv_equals_largest_event_difference(p, q):
    # TV = max over events E of P(E) - Q(E), attained at E = {x: P(x) > Q(x)}
    event = [k for k in p if p[k] > q[k]]
    assert tv_distance(p, q) == pytest.approx(sum(p[k] - q[k] for k in event), abs=1e-12)


def test_tv_hand_examples():
    answers = distribution(["A"] * 8, "ABCD")
    gold = {"A": 0.25, "B": 0.25, "C": 0.25, "D": 0.25}
    assert tv_distance(answers, gold) == pytest.approx(0.75)
    assert tv_distance({"A": 1.0}, {"B": 1.0}) == 1.0  # disjoint keys: a missing key counts as 0
    # abstentions are an outcome of their own: half abstaining vs never abstaining
    assert tv_distance(distribution(["A", None], "AB"), distribution(["A", "B"], "AB")) == pytest.approx(0.5)


# --- choose: argmax with abstentions ---------------------------------------------------------


def test_choose_ties_nan_and_validity():
    assert choose({"A": -1.0, "B": -1.0, "C": -3.0}, "ABC") == Choice(None, "tie")
    assert choose({"A": -3.0, "B": -1.0, "C": -1.0}, "ABC") == Choice(None, "tie")
    assert choose({"A": NAN, "B": -1.0}, "AB") == Choice(None, "nan")
    assert choose({"A": -1.0, "B": -5.0, "C": NAN}, "ABC") == Choice(None, "nan")
    assert choose({"A": -1.0, "B": -2.0, "Z": 0.0}, "AB") == Choice("A", None)  # Z is not a valid letter
    assert choose({"A": -1.0, "B": -2.0, "Z": NAN}, "AB") == Choice("A", None)  # ... nor is its NaN
    assert choose({"A": -1.0, "B": -0.5}, "AB") == Choice("B", None)
    assert choose({"C": 0.3}, "C") == Choice("C", None)


def test_choose_tie_tolerance():
    assert choose({"A": -1.0, "B": -0.99}, "AB", tie_tol=0.05) == Choice(None, "tie")
    assert choose({"A": -1.0, "B": -0.9}, "AB", tie_tol=0.05) == Choice("B", None)
    assert choose({"A": -1.0, "B": -0.99}, "AB") == Choice("B", None)  # default: exact equality only
    with pytest.raises(ValueError):
        choose({"A": 0.0, "B": 1.0}, "AB", tie_tol=-0.1)


def test_choose_infinities():
    assert choose({"A": INF, "B": INF, "C": 0.0}, "ABC") == Choice(None, "tie")  # inf - inf is NaN, still a tie
    assert choose({"A": -INF, "B": -INF}, "AB") == Choice(None, "nan")  # no letter has any probability
    assert choose({"A": -INF, "B": -3.0}, "AB") == Choice("B", None)
    assert choose({"A": 0.0, "B": INF}, "AB") == Choice("B", None)


def test_choose_rejects_unscored_valid_letters_and_ignores_duplicates():
    with pytest.raises(ValueError, match="'C'"):
        choose({"A": -1.0, "B": -2.0}, "ABC")
    assert choose({"A": -1.0, "B": -2.0}, "AAB") == Choice("A", None)


scores = st.floats(-50, 0, allow_nan=False)


@given(st.lists(scores, min_size=2, max_size=6), st.randoms(use_true_random=False))
def test_choose_is_argmax_or_tie_in_any_order(values, rnd):
    letters = "ABCDEF"[: len(values)]
    logprobs = dict(zip(letters, values))
    order = list(letters)
    rnd.shuffle(order)
    got = choose(logprobs, order)
    assert got == choose(logprobs, letters)  # the letter order must not break ties
    top = max(values)
    if values.count(top) > 1:
        assert got == Choice(None, "tie")
    else:
        assert got == Choice(letters[values.index(top)], None)


# --- binomial tail and McNemar ---------------------------------------------------------------


@given(st.integers(-2, 32), st.integers(0, 30), st.floats(0.0, 1.0))
def test_binomial_sf_matches_enumeration(k, n, p):
    brute = sum(math.comb(n, i) * p**i * (1 - p) ** (n - i) for i in range(max(k, 0), n + 1))
    assert binomial_sf(k, n, p) == pytest.approx(min(1.0, brute), rel=1e-9, abs=1e-12)


@given(st.integers(0, 100), st.floats(0.0, 1.0))
def test_binomial_sf_is_one_at_zero_and_decreasing(n, p):
    assert binomial_sf(0, n, p) == 1.0 and binomial_sf(-3, n, p) == 1.0
    tail = [binomial_sf(k, n, p) for k in range(n + 2)]
    assert all(x >= y for x, y in zip(tail, tail[1:]))
    assert tail[-1] == 0.0


def test_binomial_sf_large_n_is_exact():
    # references: integer sums of math.comb divided by 2**n (exact, correctly rounded)
    n = 10_000
    combs = [1]
    for i in range(n):
        combs.append(combs[-1] * (n - i) // (i + 1))
    for k in (4900, 5000, 5100, 5300):
        exact = sum(combs[k:]) / 2**n
        assert binomial_sf(k, n, 0.5) == pytest.approx(exact, rel=1e-9)
    assert 0.0 <= binomial_sf(9000, n, 0.5) < 1e-300


@pytest.mark.parametrize("k,n,p", [(1, -1, 0.5), (1, 5, -0.1), (1, 5, 1.5), (1, 5, NAN)])
def test_binomial_sf_rejects_bad_parameters(k, n, p):
    with pytest.raises(ValueError):
        binomial_sf(k, n, p)


def mcnemar_by_enumeration(b, c):
    n = b + c
    probs = [math.comb(n, i) / 2**n for i in range(n + 1)]
    observed = probs[b]
    return min(1.0, sum(p for p in probs if p <= observed * (1 + 1e-12)))


@given(st.integers(0, 25), st.integers(0, 25))
def test_mcnemar_exact(b, c):
    p = mcnemar_exact(b, c)
    assert p == mcnemar_exact(c, b)
    assert p == pytest.approx(mcnemar_by_enumeration(b, c), rel=1e-9, abs=1e-15)
    if b == c:
        assert p == 1.0


@given(st.integers(0, 40), st.integers(0, 40))
def test_one_sided_tails_add_up(b, c):
    n = b + c
    pmf_c = math.comb(n, c) / 2**n
    # P[X >= c] + P[X <= c] = 1 + P[X = c], and P[X <= c] = P[X >= b] by symmetry of Bin(n, 1/2)
    assert mcnemar_one_sided(b, c) + mcnemar_one_sided(c, b) == pytest.approx(1 + pmf_c)
    assert mcnemar_exact(b, c) == pytest.approx(min(1.0, 2 * min(mcnemar_one_sided(b, c), mcnemar_one_sided(c, b))))


def test_mcnemar_one_sided():
    # 20 items only the baseline got right, 0 only the new run: P = 0.5**20
    assert mcnemar_one_sided(0, 20) == pytest.approx(0.5**20)
    assert mcnemar_one_sided(20, 0) == 1.0
    assert mcnemar_one_sided(0, 0) == 1.0
    assert mcnemar_one_sided(3, 3) == pytest.approx(sum(math.comb(6, i) for i in range(3, 7)) / 64)
    assert mcnemar_exact(0, 0) == 1.0
    with pytest.raises(ValueError):
        mcnemar_exact(-1, 3)


# --- paired bootstrap ------------------------------------------------------------------------


@settings(max_examples=40)
@given(st.lists(st.tuples(st.booleans(), st.booleans()), min_size=1, max_size=60), st.integers(0, 5))
def test_paired_bootstrap(pairs, seed):
    a = [x for x, _ in pairs]
    b = [y for _, y in pairs]
    diff, lo, hi = paired_bootstrap_diff(a, b, iters=300, seed=seed)
    assert diff == pytest.approx((sum(a) - sum(b)) / len(a))
    assert -1 <= lo <= diff <= hi <= 1
    assert paired_bootstrap_diff(a, b, iters=300, seed=seed) == (diff, lo, hi)
    assert paired_bootstrap_diff(a, a, iters=300, seed=seed) == (0.0, 0.0, 0.0)


def test_paired_bootstrap_width_matches_normal_approximation():
    rng = np.random.default_rng(7)
    a = rng.random(400) < 0.7
    b = rng.random(400) < 0.5
    diff, lo, hi = paired_bootstrap_diff(a, b, iters=4000, seed=1)
    d = a.astype(float) - b.astype(float)
    half = Z * d.std() / math.sqrt(d.size)  # a 95% CI of a mean of 400 is close to ±1.96 s/√n
    assert lo == pytest.approx(diff - half, abs=0.01) and hi == pytest.approx(diff + half, abs=0.01)
    assert paired_bootstrap_diff(a, b, iters=4000, seed=2) != (diff, lo, hi)  # the seed is used


def test_paired_bootstrap_edges():
    assert paired_bootstrap_diff([True] * 5, [False] * 5) == (1.0, 1.0, 1.0)
    assert paired_bootstrap_diff([], []) == (0.0, 0.0, 0.0)
    with pytest.raises(ValueError, match="equal length"):
        paired_bootstrap_diff([True, False], [True])
    with pytest.raises(ValueError):
        paired_bootstrap_diff([True], [True], iters=0)
