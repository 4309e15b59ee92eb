"""Coherence scores on trajectories built by hand."""

import pytest

from common.rollout.coherence import intermediate_numbers, reward, s_end, s_path, s_wm

TRAJECTORIES = [
    "23 + 45 = 68.\n68 - 17 = 51.\nThe answer is: 51",
    "23 + 45 = 68.\n68 - 17 = 51.\nThe answer is: 51",
    "23 + 45 = 68.\n68 - 7 = 61.\nThe answer is: 61",
    "I am not sure.\nThe answer is: 1,000",
]


def test_intermediate_numbers_skip_the_final_line():
    assert intermediate_numbers(TRAJECTORIES[0]) == {"23", "45", "68", "17", "51"}
    assert intermediate_numbers("The answer is: 5") == set()


def test_s_end_is_self_consistency():
    assert s_end(["51", "51", "61", "1000"]) == [0.5, 0.5, 0.25, 0.25]
    assert s_end(["51", None]) == [0.5, 0.0]


def test_s_path_against_the_majority_path():
    paths = [intermediate_numbers(t) for t in TRAJECTORIES]
    scores = s_path(paths)
    # majority (>= 2 of 4): 23, 45, 68, 17, 51
    assert scores[0] == scores[1] == 1.0
    assert scores[2] == pytest.approx(3 / 7)  # shares 23, 45, 68 of {23,45,68,17,51,7,61}
    assert scores[3] == 0.0
    assert s_path([set(), set()]) == [1.0, 1.0]


def test_s_wm_and_reward():
    assert s_wm(1.0, 0.5, None, (0.5, 0.3, 0.2)) == pytest.approx((0.5 + 0.15) / 0.8)
    assert s_wm(1.0, 0.5, 0.0, (0.5, 0.3, 0.2)) == pytest.approx(0.65)
    assert reward(True, 0.5, 100, alpha=1.0, beta=0.5, length_penalty=0.001) == pytest.approx(1.15)
    assert reward(False, 1.0, 0, 1.0, 0.5, 0.0) < reward(True, 0.0, 0, 1.0, 0.5, 0.0)
