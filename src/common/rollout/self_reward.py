"""LLM-as-judge scores of rollout trajectories. JUDGE_RUBRIC=additive is the Self-Rewarding
Language Models additive 5-point prompt (Yuan et al., 2024); ace rates accuracy, completeness and
efficiency 1-5 each and scores their mean. The judge is the policy itself (Self-Rewarding) or the
teacher backend (RLAIF, Lee et al. 2023); a reply without a readable score is recorded as
unparseable and never counted as 0 or 5.
"""

from __future__ import annotations

import re
from pathlib import Path

from common.config import Config
from common.errors import ConfigError

JUDGE_PROMPT = """Review the user's question and the corresponding response using the additive 5-point scoring system described below. Points are accumulated based on the satisfaction of each criterion:
- Add 1 point if the response is relevant and provides some information related to the user's inquiry, even if it is incomplete or contains some irrelevant content.
- Add another point if the response addresses a substantial portion of the user's question, but does not completely resolve the query or provide a direct answer.
- Award a third point if the response answers the basic elements of the user's question in a useful way, regardless of whether it seems to have been written by an AI Assistant or if it has elements typically found in blogs or search results.
- Grant a fourth point if the response is clearly written from an AI Assistant's perspective, addressing the user's question directly and comprehensively, and is well-organized and helpful, even if there is slight room for improvement in clarity, conciseness or focus.
- Bestow a fifth point for a response that is impeccably tailored to the user's question by an AI Assistant, without extraneous information, reflecting expert knowledge, and demonstrating a high-quality, engaging, and insightful answer.

User: {question}

<response>{response}</response>

After examining the user's instruction and the response:
- Briefly justify your total score, up to 100 words.
- Conclude with the score using the format: "Score: <total points>"

Remember to assess from the AI Assistant perspective, utilizing web search knowledge as necessary. To evaluate the response in alignment with this additive scoring model, we'll systematically attribute points based on the outlined criteria."""  # noqa: E501

ACE_PROMPT = """Rate the response to the user's question on three criteria, each 1 (poor) to 5 (excellent):
- Accuracy: is the reasoning correct and is the final answer right?
- Completeness: does it answer the whole question, with the steps needed to check it?
- Efficiency: does it reach the answer without detours, repetition or padding?

User: {question}

<response>{response}</response>

Briefly justify your ratings, up to 60 words, then end with exactly these three lines:
Accuracy: <1-5>
Completeness: <1-5>
Efficiency: <1-5>"""

JUDGE_RUBRICS = ("additive", "ace")
_ACE = {
    name: re.compile(rf"{name}\s*:\s*\**\s*([1-5])(?:\s*/\s*5)?\b", re.IGNORECASE)
    for name in ("accuracy", "completeness", "efficiency")
}
_SCORE = re.compile(r"score\s*:\s*\**\s*(\d+(?:\.\d+)?)\s*(?:/\s*5|points?)?", re.IGNORECASE)


def judge_messages(question: str, response: str, rubric: str = "additive") -> list[dict]:
    prompt = ACE_PROMPT if rubric == "ace" else JUDGE_PROMPT
    return [{"role": "user", "content": prompt.format(question=question, response=response)}]


def parse_score(text: str, rubric: str = "additive") -> float | None:
    """The judge's score normalised to [0, 1]: additive, the last "Score: N" over 5 (0-5); ace, the
    mean of the last Accuracy, Completeness and Efficiency ratings (1-5 each) over 5. None when a
    score is absent or out of range."""
    if rubric == "ace":
        ratings = [pattern.findall(text or "") for pattern in _ACE.values()]
        if not all(ratings):
            return None
        return round(sum(int(r[-1]) for r in ratings) / (5 * len(ratings)), 4)
    found = _SCORE.findall(text or "")
    if not found:
        return None
    value = float(found[-1])
    return value / 5 if 0 <= value <= 5 else None


def check_judge(cfg: Config) -> None:
    """Stop before any sampling when the configured judge cannot work, or is needed and off."""
    if cfg.rollout.pair_source in ("judge", "both") and cfg.rollout.self_reward_judge == "none":
        raise ConfigError(
            f"PAIR_SOURCE={cfg.rollout.pair_source} pairs trajectories by the self-reward judge, "
            f"which SELF_REWARD_JUDGE=none turns off: set SELF_REWARD_JUDGE=policy|teacher"
        )
    if cfg.rollout.self_reward_judge == "teacher" and cfg.teacher.backend == "offline":
        raise ConfigError(
            "SELF_REWARD_JUDGE=teacher needs a model teacher; the offline teacher cannot judge: "
            "set TEACHER=openai|anthropic, or SELF_REWARD_JUDGE=policy|none"
        )


def judge_with_policy(cfg: Config, model, tokenizer, items: list[tuple[str, str]]) -> list[str]:
    """The policy's greedy judgement of each (question, response)."""
    from common.data.prompts import render_prompt
    from common.models.generation import generate

    prompts = [render_prompt(tokenizer, judge_messages(q, r, cfg.rollout.judge_rubric)) for q, r in items]
    gens = generate(
        model,
        tokenizer,
        prompts,
        cfg.rollout.judge_max_new_tokens,
        batch_size=cfg.generation.gen_batch_size,
        desc="self-reward judge",
    )
    return [g.text for g in gens]


def judge_with_teacher(
    cfg: Config, task, items: list[tuple[str, str]], keys: list[str], ledger: Path
) -> list[str | None]:
    """The teacher's judgement of each (question, response), through the cache, ledger and budget
    of every teacher call (stage 07 passes the run's teacher_cost.jsonl, so MAX_COST_USD caps the
    teacher and its judging together). A call that failed, or that the budget stopped, judged
    nothing: None."""
    from common.teacher.backends import Job
    from common.teacher.runner import ask_configured_teacher

    jobs = [
        Job(key, 0, judge_messages(q, r, cfg.rollout.judge_rubric), {"id": key, "question": q, "answer": ""})
        for key, (q, r) in zip(keys, items, strict=True)
    ]
    replies: dict[str, str | None] = {}

    def on_reply(job, reply) -> None:
        replies[job.id] = reply.text if reply.status == "ok" else None

    ask_configured_teacher(
        cfg.teacher, task, cfg.run.random_seed, jobs, on_reply, ledger, desc="self-reward judge"
    )
    return [replies.get(key) for key in keys]
