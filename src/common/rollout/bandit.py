"""A multi-armed bandit over rollout arms (a reasoning strategy with a temperature): UCB1 by
default, Thompson sampling as an option. Rewards are in [0, 1]. Its state is a plain dict, so
stage 07 can save it beside its outputs and resume."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field


@dataclass
class Bandit:
    arms: list[str]
    method: str = "ucb1"  # ucb1 | thompson
    pulls: list[int] = field(default_factory=list)
    reward_sum: list[float] = field(default_factory=list)

    def __post_init__(self):
        if self.method not in ("ucb1", "thompson"):
            raise ValueError(f"unknown bandit method {self.method!r}; use ucb1 or thompson")
        self.pulls = self.pulls or [0] * len(self.arms)
        self.reward_sum = self.reward_sum or [0.0] * len(self.arms)

    def mean(self, arm: int) -> float:
        return self.reward_sum[arm] / self.pulls[arm] if self.pulls[arm] else 0.0

    def choose(self, rng: random.Random) -> int:
        """The arm for the next sample."""
        untried = [a for a, n in enumerate(self.pulls) if n == 0]
        if untried:
            return untried[0]
        if self.method == "ucb1":
            total = sum(self.pulls)
            return max(
                range(len(self.arms)),
                key=lambda a: self.mean(a) + math.sqrt(2 * math.log(total) / self.pulls[a]),
            )
        # Thompson: a Beta posterior per arm over its success rate (reward read as a probability).
        draws = [
            rng.betavariate(1 + self.reward_sum[a], 1 + self.pulls[a] - self.reward_sum[a])
            for a in range(len(self.arms))
        ]
        return max(range(len(self.arms)), key=draws.__getitem__)

    def choose_batch(self, n: int, rng: random.Random) -> list[int]:
        """Arms for n samples drawn together, before any of their rewards is known. Each pick
        counts as a pull at the arm's current mean, so UCB1's bonus shrinks and the batch spreads
        instead of taking one arm n times; Thompson draws afresh for each."""
        shadow = Bandit(self.arms, self.method, list(self.pulls), list(self.reward_sum))
        picks = []
        for _ in range(n):
            arm = shadow.choose(rng)
            picks.append(arm)
            shadow.update(arm, shadow.mean(arm))
        return picks

    def update(self, arm: int, reward: float) -> None:
        if not 0.0 <= reward <= 1.0:
            raise ValueError(f"bandit rewards must be in [0, 1], got {reward}")
        self.pulls[arm] += 1
        self.reward_sum[arm] += reward

    def state(self) -> dict:
        return {
            "arms": self.arms,
            "method": self.method,
            "pulls": self.pulls,
            "reward_sum": self.reward_sum,
            "mean_reward": [round(self.mean(a), 4) for a in range(len(self.arms))],
        }

    @classmethod
    def from_state(cls, state: dict) -> Bandit:
        return cls(state["arms"], state["method"], list(state["pulls"]), list(state["reward_sum"]))
