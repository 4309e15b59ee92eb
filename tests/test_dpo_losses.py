"""Each DPO loss against values computed by hand (math module, no torch)."""

import math

import pytest
import torch

from common.train import losses as L


def logsig(x):
    return -math.log1p(math.exp(-x))


# Two pairs: sequence log-probs of policy and reference for chosen (w) and rejected (l).
PW, PL, RW, RL = [-10.0, -20.0], [-14.0, -18.0], [-11.0, -19.0], [-12.0, -19.5]
LW, LL = [5.0, 10.0], [4.0, 8.0]
BETA = 0.1


def t(values):
    return torch.tensor(values, dtype=torch.float64)


def ratios(i):
    return PW[i] - RW[i], PL[i] - RL[i]  # r_w, r_l


def per_pair(name, **kw):
    return L.per_pair_loss(name, t(PW), t(PL), t(RW), t(RL), BETA, t(LW), t(LL), **kw).tolist()


def test_sigmoid():
    expected = [-logsig(BETA * (rw - rl)) for rw, rl in map(ratios, range(2))]
    assert per_pair("sigmoid") == pytest.approx(expected, abs=1e-12)
    # r_w = 1, r_l = -2 for pair 0 by hand: -log sigma(0.3) = 0.554355...
    assert per_pair("sigmoid")[0] == pytest.approx(0.5543552444685272, abs=1e-12)


def test_ipo_is_length_normalised_like_trl():
    # Per-token margins, as TRL normalises IPO: pair 0: 1/5 - (-2)/4 = 0.7; pair 1: -1/10 - 1.5/8 = -0.2875.
    # 1/(2 beta) = 5: (0.7 - 5)^2 = 18.49 and (-0.2875 - 5)^2 = 27.95765625.
    assert per_pair("ipo") == pytest.approx([18.49, 27.95765625], abs=1e-12)


def test_robust():
    # With logsig(-m) = logsig(m) - m the loss is -logsig(m) - eps m / (1 - 2 eps). eps = 0.2.
    # Pair 0: m = 0.1 * 3 = 0.3: 0.5543552444685272 - 0.1. Pair 1: m = 0.1 * -2.5:
    # log(1 + e^0.25) = 0.8259394198788435, plus 0.2 * 0.25 / 0.6.
    expected = [0.5543552444685272 - 0.1, 0.8259394198788436 + 0.05 / 0.6]
    assert per_pair("robust", label_smoothing=0.2) == pytest.approx(expected, abs=1e-12)
    # eps = 0 is plain DPO.
    assert per_pair("robust", label_smoothing=0.0) == pytest.approx(per_pair("sigmoid"), abs=1e-12)


def test_cal_dpo_matches_the_formula():
    expected = []
    for i in range(2):
        rw, rl = ratios(i)
        expected.append(-logsig(rw - rl) + 0.5 * ((rw - 1 / (2 * BETA)) ** 2 + (rl + 1 / (2 * BETA)) ** 2))
    assert per_pair("cal_dpo") == pytest.approx(expected, abs=1e-12)
    # pair 0 by hand: r_w = 1, r_l = -2: -log sigma(3) + 0.5 * ((1 - 5)^2 + (-2 + 5)^2) = 12.5486
    assert per_pair("cal_dpo")[0] == pytest.approx(0.04858735157374206 + 12.5, abs=1e-12)


def test_centered_subtracts_the_batch_mean_margin():
    # Margins 3 and -2.5, mean 0.25: -logsig(0.1 * 2.75) = log(1 + e^-0.275) = 0.5650706676896001,
    # and the other pair, -logsig(-0.275), is exactly 0.275 more.
    assert per_pair("centered") == pytest.approx([0.5650706676896001, 0.8400706676896001], abs=1e-12)


def test_sft_is_per_token_nll_of_chosen():
    assert per_pair("sft") == pytest.approx([10.0 / 5.0, 20.0 / 10.0], abs=1e-12)


def test_dr_dpo_log_mean_exp():
    dpo = per_pair("sigmoid")
    for beta_prime in (0.5, 1.0, 4.0):
        expected = -beta_prime * math.log(sum(math.exp(-x / beta_prime) for x in dpo) / 2)
        got = L.reduce("dr_dpo", t(dpo), torch.ones(2, dtype=torch.float64), beta_prime).item()
        assert got == pytest.approx(expected, abs=1e-12)
    # Weighted out pairs do not count: with one pair left, Dr-DPO is that pair's DPO loss.
    one = L.reduce("dr_dpo", t(dpo), t([1.0, 0.0]), 1.0).item()
    assert one == pytest.approx(dpo[0], abs=1e-12)


def test_weighted_mean_reduce():
    got = L.reduce("sigmoid", t([1.0, 3.0]), t([1.0, 0.0])).item()
    assert got == 1.0


@pytest.mark.parametrize("name", L.LOSSES)
def test_losses_stay_finite_at_extremes(name):
    big = t([-5000.0, 0.0, 5000.0])
    zeros = torch.zeros(3, dtype=torch.float64)
    out = L.per_pair_loss(name, big, -big, zeros, zeros, 0.1, t([1, 1, 1]), t([1, 1, 1]))
    assert torch.isfinite(out).all() and out.shape == (3,)
    assert torch.isfinite(L.reduce(name, out, torch.ones(3, dtype=torch.float64)))
