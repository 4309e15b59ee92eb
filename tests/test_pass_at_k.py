"""pass@k: the unbiased estimator against the combinatorial formula it rewrites."""

import math

import pytest

from common.eval.stats import pass_at_k


def test_matches_the_combinatorial_formula():
    for n in range(1, 21):
        for c in range(n + 1):
            for k in range(1, n + 1):
                expected = 1 - math.comb(n - c, k) / math.comb(n, k)
                assert pass_at_k(n, c, k) == pytest.approx(expected, abs=1e-12), (n, c, k)


def test_edge_cases():
    assert pass_at_k(10, 0, 1) == 0.0
    assert pass_at_k(10, 10, 10) == 1.0
    assert pass_at_k(10, 3, 8) == 1.0  # n - c < k: every draw of 8 holds a correct one
    assert pass_at_k(10, 3, 1) == pytest.approx(0.3)  # pass@1 is the fraction correct
    assert pass_at_k(1, 1, 1) == 1.0
    # stable where the binomials are astronomically large
    assert pass_at_k(10_000, 1, 100) == pytest.approx(0.01)
    assert 0.0 < pass_at_k(200, 1, 1) < pass_at_k(200, 1, 10) < pass_at_k(200, 1, 100) < 1.0


@pytest.mark.parametrize(
    "n, c, k", [(5, 2, 6), (5, 2, 0), (0, 0, 1), (5, -1, 1), (5, 6, 1), (5.0, 2, 1), (5, 2, True)]
)
def test_bad_inputs(n, c, k):
    with pytest.raises(ValueError):
        pass_at_k(n, c, k)
