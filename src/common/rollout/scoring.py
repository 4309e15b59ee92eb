"""Every score of one question's rollout trajectories: correctness, the coherence scores, length,
the self-reward judgement, the correctness-first reward, the bandit's reward and the trajectory
composite score (success, efficiency, cost).
"""

from __future__ import annotations

from dataclasses import dataclass

from common.config import RolloutSection, float_list
from common.rollout.coherence import path_items, reward, s_cf, s_end, s_path, s_wm
from common.rollout.self_reward import parse_score


@dataclass(frozen=True)
class Weights:
    alpha: float  # ALPHA_CORRECT
    beta: float  # BETA_COHERENCE
    length_penalty: float  # LENGTH_PENALTY, per token
    coherence: tuple[float, float, float]  # s_end, s_path, s_cf
    composite: tuple[float, float, float]  # COMPOSITE_WEIGHTS: success, efficiency, cost
    max_new_tokens: int  # the token budget the composite's cost score is measured against
    question: float = 0.0  # QUESTION_WEIGHT: the question judge's score of the draft's questions

    @classmethod
    def from_config(cls, rollout: RolloutSection) -> Weights:
        return cls(
            rollout.alpha_correct,
            rollout.beta_coherence,
            rollout.length_penalty,
            tuple(float_list(rollout.coherence_weights)),
            tuple(float_list(rollout.composite_weights)),
            rollout.rollout_max_new_tokens,
            rollout.question_weight,
        )


def trajectory_composite(correct: bool, retries: int, tokens: int, w: Weights) -> dict:
    """The trajectory composite score: success, efficiency = 1/(1 + retries), cost = the share of the
    token budget left, and their weighted total (weights renormalised to sum to 1)."""
    success, efficiency = float(correct), 1.0 / (1 + retries)
    cost = max(0.0, 1.0 - tokens / w.max_new_tokens)
    total = sum(w.composite) or 1.0
    weighted = (w.composite[0] * success + w.composite[1] * efficiency + w.composite[2] * cost) / total
    return {
        "success": success,
        "efficiency": round(efficiency, 4),
        "cost": round(cost, 4),
        "total": round(weighted, 4),
    }


def bandit_reward(value: float, w: Weights) -> float:
    """A trajectory's reward mapped into [0, 1] for the bandit (its best is alpha + beta + question)."""
    top = w.alpha + w.beta + w.question
    return min(1.0, max(0.0, value / top)) if top > 0 else 0.0


def score_trajectories(
    trajectories: list[dict],
    answer_kind: str,
    probe_answers: dict[str, dict[str, str | None]],
    judgements: list[str | None],
    w: Weights,
    rubric: str = "additive",
    question_score: float | None = None,
) -> list[dict]:
    """Add the scores to each trajectory of one question, in sampling order.

    Each trajectory has text, pred, correct, tokens, strategy; probe_answers maps a strategy to
    its probes' answers ({} when counterfactuals are off); a judgement None means not judged.
    question_score is the question judge's score of the draft the trajectories answered with
    (None: its draft asked no questions, or nothing judged it); QUESTION_WEIGHT times it is added.
    """
    ends = s_end([t["pred"] for t in trajectories])
    paths = s_path([path_items(t["text"], answer_kind) for t in trajectories])
    out = []
    for k, (t, end, path, judged) in enumerate(zip(trajectories, ends, paths, judgements, strict=True)):
        cf = s_cf(t["pred"], probe_answers.get(t["strategy"], {}))
        wm = s_wm(end, path, cf, w.coherence)
        value = reward(t["correct"], wm, t["tokens"], w.alpha, w.beta, w.length_penalty)
        if question_score is not None:
            value += w.question * question_score
        score = parse_score(judged, rubric) if judged is not None else None
        judge_status = "not_judged" if judged is None else "ok" if score is not None else "unparseable"
        out.append(
            {
                **t,
                "s_end": round(end, 4),
                "s_path": round(path, 4),
                "s_cf": None if cf is None else round(cf, 4),
                "s_wm": round(wm, 4),
                "length": t["tokens"],
                "self_reward": score,
                "judge_status": judge_status,
                "judge_output": judged,
                "question_score": question_score,
                "reward": round(value, 4),
                "bandit_reward": round(bandit_reward(value, w), 4),
                "composite": trajectory_composite(t["correct"], k, t["tokens"], w),
            }
        )
    return out
