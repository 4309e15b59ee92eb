"""The rollout bandit converges to the best arm on a synthetic reward, and its state round-trips."""

import random

import pytest

from common.rollout.bandit import Bandit

ARMS = [
    "none@0.3",
    "cot@0.3",
    "explicit@0.3",
    "alternating@0.3",
    "none@0.8",
    "cot@0.8",
    "explicit@0.8",
    "alternating@0.8",
]
SUCCESS = [0.1, 0.8, 0.5, 0.4, 0.1, 0.6, 0.3, 0.2]  # cot@0.3 is the best arm


@pytest.mark.parametrize("method", ["ucb1", "thompson"])
def test_converges_to_the_best_arm(method):
    rng, env = random.Random(0), random.Random(1)
    bandit = Bandit(ARMS, method)
    for _ in range(2000):
        arm = bandit.choose(rng)
        bandit.update(arm, float(env.random() < SUCCESS[arm]))
    best = max(range(len(ARMS)), key=bandit.pulls.__getitem__)
    assert ARMS[best] == "cot@0.3"
    assert bandit.pulls[best] > 0.4 * sum(bandit.pulls)  # most pulls go to it, not a tie
    assert all(n > 0 for n in bandit.pulls)  # every arm was explored


def test_state_round_trips_and_resumes_identically():
    rng = random.Random(3)
    bandit = Bandit(ARMS, "ucb1")
    for _ in range(50):
        arm = bandit.choose(rng)
        bandit.update(arm, SUCCESS[arm])
    copy = Bandit.from_state(bandit.state())
    assert copy.state() == bandit.state()
    assert copy.choose(random.Random(0)) == bandit.choose(random.Random(0))


def test_bad_input():
    with pytest.raises(ValueError, match="unknown bandit method"):
        Bandit(ARMS, "epsilon")
    with pytest.raises(ValueError, match=r"in \[0, 1\]"):
        Bandit(ARMS).update(0, 1.5)
