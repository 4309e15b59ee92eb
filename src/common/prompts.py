"""The one place prompts are built. Training, rollouts and evaluation all call build_messages(),
so for a given task and strategy the train and eval prompts are the same bytes.
"""

from __future__ import annotations

ANSWER_FORMATS = {"number": "The answer is: <number>", "yesno": "The answer is: <yes or no>"}

STRATEGY_INSTRUCTIONS = {
    "none": "Reply with the final answer only, as '{fmt}'.",
    "cot": "Think step by step, one step per line, then end with '{fmt}'.",
    "explicit": "Write '## Reasoning' and your reasoning, then '## Answer' and '{fmt}'.",
    "alternating": "Alternate sub-questions and their answers ('Q1: ...' then 'A1: ...'), "
    "then end with '{fmt}'.",
}


def instruction(strategy: str, answer_kind: str) -> str:
    return STRATEGY_INSTRUCTIONS[strategy].format(fmt=ANSWER_FORMATS[answer_kind])


def build_messages(
    question: str, strategy: str, answer_kind: str, draft: str | None = None
) -> list[dict]:
    """The chat messages for one question: question, optional student draft, instruction."""
    parts = [question.strip()]
    if draft is not None:
        parts.append("Student draft:\n" + draft.strip())
    parts.append(instruction(strategy, answer_kind))
    return [{"role": "user", "content": "\n\n".join(parts)}]


def render_prompt(tokenizer, messages: list[dict]) -> str:
    """The exact text the model sees before it answers (chat template + generation prompt)."""
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
