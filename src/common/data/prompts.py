"""The one place prompts are built. Training, rollouts and evaluation all call build_messages(),
so for a given task and strategy the train and eval prompts are the same bytes.
"""

from __future__ import annotations

import ast
import re

ANSWER_FORMATS = {"number": "The answer is: <number>", "yesno": "The answer is: <yes or no>"}

STRATEGY_INSTRUCTIONS = {
    "none": "Reply with the final answer only, as '{fmt}'.",
    "cot": "Think step by step, one step per line, then end with '{fmt}'.",
    "explicit": "Write '## Reasoning' and your reasoning, then '## Answer' and '{fmt}'.",
    "alternating": "Alternate sub-questions and their answers ('Q1: ...' then 'A1: ...'), "
    "then end with '{fmt}'.",
}


def instruction(strategy: str, answer_kind: str) -> str:
    if answer_kind == "code":
        return CODE_INSTRUCTIONS[strategy]
    return STRATEGY_INSTRUCTIONS[strategy].format(fmt=ANSWER_FORMATS[answer_kind])


def build_messages(question: str, strategy: str, answer_kind: str, draft: str | None = None) -> list[dict]:
    """The chat messages for one question: question, optional student draft, instruction."""
    parts = [question.strip()]
    if draft and draft.strip():
        parts.append("Student draft:\n" + draft.strip())
    parts.append(instruction(strategy, answer_kind))
    return [{"role": "user", "content": "\n\n".join(parts)}]


def render_prompt(tokenizer, messages: list[dict]) -> str:
    """The exact text the model sees before it answers (chat template + generation prompt)."""
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)


# -- Stage 02: the student's draft ---------------------------------------------------------------
DRAFT_ANSWER = {
    "number": "<number>",
    "yesno": "<Yes or No>",
    "code": "<the function's result on the first example>",
}
DRAFT_INSTRUCTION = (
    "Give a quick first answer, then ask the questions you would need answered to be sure. "
    "Reply in exactly two lines:\n"
    "Answer: {answer} - <brief reasoning>\n"
    "Questions: <focused question>? <key uncertainty>?"
)


def build_draft_messages(question: str, answer_kind: str) -> list[dict]:
    text = question.strip() + "\n\n" + DRAFT_INSTRUCTION.format(answer=DRAFT_ANSWER[answer_kind])
    return [{"role": "user", "content": text}]


def parse_draft(text: str) -> dict:
    """Split a draft into its answer, reasoning and clarifying questions; parse_ok says all came."""
    answer_line = re.search(r"Answer:\s*([^\n]*)", text)
    questions_line = re.search(r"Questions?:\s*([^\n]*)", text)
    answer, _, reasoning = (answer_line.group(1) if answer_line else "").partition(" - ")
    questions = [q.strip() + "?" for q in (questions_line.group(1) if questions_line else "").split("?")]
    questions = [q for q in questions if len(q) > 1]
    return {
        "draft_answer": answer.strip(),
        "draft_reasoning": reasoning.strip(),
        "questions": questions,
    }


# -- Stage 03: the teacher -----------------------------------------------------------------------
HINT = "(The correct answer is {hint}. Explain how to reach it.)"
# Phrases by which a rationalized reply would give away that it was shown the answer.
HINT_GIVEAWAYS = ("correct answer is", "hint", "we are told the answer", "given answer")
TEACHER_FINAL = {"number": "the number", "yesno": "YES or NO"}
TEACHER_SYSTEM = (
    "You are an expert teacher. A student has attempted a question. Teach the correct reasoning "
    "clearly and concisely, in exactly this format:\n\n"
    "## Teaching Analysis\n<2-3 sentences on the student's approach>\n\n"
    "## Step-by-Step Reasoning\n1. <step>\n2. <step>\n...\n\n"
    "## Final Assessment\nBased on this analysis, the answer is: **[<{final}>]**"
)


def build_teacher_messages(
    question: str, answer_kind: str, draft: str | None = None, hint: str | None = None
) -> list[dict]:
    """System + user messages for the teacher. `hint` (the gold answer, for STaR-style
    rationalization) goes only into this request, never into training text."""
    parts = [f"Question: {question.strip()}"]
    if draft and draft.strip():
        parts.append(f"Student draft:\n{draft.strip()}")
    if hint is not None:
        parts.append(HINT.format(hint=hint))
    return [
        {"role": "system", "content": TEACHER_SYSTEM.format(final=TEACHER_FINAL[answer_kind])},
        {"role": "user", "content": "\n\n".join(parts)},
    ]


def mentions_hint(text: str) -> bool:
    """True if a reply reveals the gold hint; such text must never become training text."""
    low = text.lower()
    return any(phrase in low for phrase in HINT_GIVEAWAYS)


def format_teacher_reply(analysis: str, steps: list[str], final: str) -> str:
    """A reply in the teaching format (what the offline teacher writes)."""
    numbered = "\n".join(f"{i}. {step}" for i, step in enumerate(steps, 1))
    return (
        f"## Teaching Analysis\n{analysis}\n\n## Step-by-Step Reasoning\n{numbered}\n\n"
        f"## Final Assessment\nBased on this analysis, the answer is: **[{final}]**"
    )


# -- Completions: what the student is trained to write, per strategy ----------------------------
_EQUATION = re.compile(r"([\d.,]+(?:\s*[-+*/x×]\s*[\d.,]+)+)\s*=\s*[\d.,]+")


def final_line(answer: str) -> str:
    """The answer line every strategy ends with (answers.extract_* read it back)."""
    return f"The answer is: {answer}"


def subquestion(step: str, i: int, decomposition: list[str]) -> str:
    """The question a step answers: the dataset's decomposition where it has one, else the
    step's own equation ("What is 34 + 30?"), else a plain prompt."""
    if i < len(decomposition):
        return decomposition[i]
    m = _EQUATION.search(step)
    return f"What is {m.group(1).strip()}?" if m else "What follows from this?"


def build_target(
    strategy: str,
    answer: str,
    steps: list[str],
    decomposition: list[str] | None = None,
) -> str:
    """The assistant's reply for a strategy: reasoning (none for `none`), then the answer line."""
    last = final_line(answer)
    if strategy == "none" or not steps:
        return last
    if strategy == "cot":
        return "\n".join(steps) + "\n" + last
    if strategy == "explicit":
        return "## Reasoning\n" + "\n".join(steps) + "\n## Answer\n" + last
    pairs = [
        f"Q{i + 1}: {subquestion(s, i, decomposition or [])}\nA{i + 1}: {s}" for i, s in enumerate(steps)
    ]
    return "\n".join(pairs) + "\n" + last


def teacher_steps(text: str) -> list[str]:
    """The numbered steps of a teaching-format reply; without that section, its plain lines."""
    section = re.search(r"##\s*Step-by-Step Reasoning\s*\n(.*?)(?=\n##\s|\Z)", text, re.S)
    body = section.group(1) if section else text
    steps = []
    for line in body.splitlines():
        line = re.sub(r"^\s*(?:\d+[.)]|[-*])\s*", "", line).strip()
        if line and not line.startswith("#") and "answer is" not in line.lower():
            steps.append(line)
    return steps


# -- Code: four formats for a program, one fenced python block (alternating: one per part) ------
CODE_INSTRUCTIONS = {
    "none": "Reply with the complete Python program only, in one ```python block.",
    "cot": "Reply as: 'First, I'll analyze the problem: ...', 'Key considerations: ...', "
    "'My approach: ...', then 'Final solution:' and the complete program in one ```python block.",
    "explicit": "Reply with '## APPROACH' and how you will solve it, then '## CODE' and the complete "
    "program in one ```python block.",
    "alternating": "Reply with your overall approach, then the program in parts: 'Part 1 of the "
    "solution:' and a ```python block, 'Part 2 of the solution:' and a block, and so on; the "
    "blocks joined in order are the complete program.",
}
FENCED = re.compile(r"```[ \t]*(?:python|py|python3)?[ \t]*\n(.*?)(?:```|\Z)", re.S | re.IGNORECASE)
# Sentence openers of the formats: taken off the approach when a reply is split into steps.
CODE_LABELS = re.compile(
    r"^(?:## APPROACH|## CODE|First, I'll analyze the problem:|Key considerations:|My approach:|"
    r"Final solution:|Overall approach:|Part \d+ of the solution:)\s*",
    re.IGNORECASE,
)


def fence(code: str) -> str:
    return f"```python\n{code.strip(chr(10))}\n```"


def split_program(program: str, parts: int = 2) -> list[str]:
    """The program cut into about `parts` pieces, at top-level statements where it has several,
    else in the middle of its one statement; joined with newlines they are the program again."""
    lines = program.strip("\n").split("\n")
    tops = [i for i in range(1, len(lines)) if lines[i][:1] not in ("", " ", "\t")]
    cuts = tops[: parts - 1] or ([len(lines) // 2] if len(lines) > 1 else [])
    bounds = [0, *cuts, len(lines)]
    return ["\n".join(lines[a:b]) for a, b in zip(bounds, bounds[1:], strict=False)]


def build_code_target(strategy: str, program: str, steps: list[str]) -> str:
    """The assistant's reply for a code format: the approach (none for `none`), then the program."""
    approach = " ".join(s.strip() for s in steps if s.strip()) or "Implement the function as specified."
    if strategy == "none":
        return fence(program)
    if strategy == "explicit":
        return f"## APPROACH\n{approach}\n## CODE\n{fence(program)}"
    if strategy == "cot":
        first, rest = (steps[0], steps[1:]) if steps else (approach, [])
        return (
            f"First, I'll analyze the problem: {first.strip()}\n"
            f"Key considerations: {' '.join(rest).strip() or 'the examples in the docstring.'}\n"
            f"My approach: {approach}\nFinal solution:\n{fence(program)}"
        )
    parts = split_program(program)
    body = "\n".join(f"Part {i} of the solution:\n{fence(p)}" for i, p in enumerate(parts, 1))
    return f"Overall approach: {approach}\n{body}"


def extract_program(text: str) -> str | None:
    """The program of a reply: its fenced python blocks joined in order; a reply with no block is
    taken whole when it parses as Python and defines something; otherwise None (a parse failure)."""
    blocks = [b.strip("\n") for b in FENCED.findall(text) if b.strip()]
    if blocks:
        return "\n".join(blocks) + "\n"
    try:
        tree = ast.parse(text)
    except (SyntaxError, ValueError):
        return None
    defines = any(
        isinstance(n, (ast.FunctionDef, ast.ClassDef, ast.Import, ast.ImportFrom)) for n in tree.body
    )
    return text.strip("\n") + "\n" if defines else None


def code_steps(text: str) -> list[str]:
    """The approach of a code reply: its prose outside the code blocks, format labels removed."""
    prose = FENCED.sub("\n", text)
    steps = []
    for line in prose.splitlines():
        if line.strip().lower().startswith("my approach:"):  # cot restates the steps there
            continue
        line = CODE_LABELS.sub("", line.strip()).strip()
        if line and not line.startswith("```"):
            steps.append(line)
    return steps


CODE_TEACHER_SYSTEM = (
    "You are an expert Python programmer teaching a student. Solve the task with a correct, "
    "self-contained program that defines the requested function. {instruction}"
)
CODE_HINT = "(A reference solution, which passes the tests:\n{hint}\nExplain how to reach a correct program.)"


def build_code_teacher_messages(
    question: str, strategy: str, draft: str | None = None, hint: str | None = None
) -> list[dict]:
    """System + user messages asking the teacher for a program in the format being taught."""
    parts = [f"Task:\n{question.strip()}"]
    if draft and draft.strip():
        parts.append(f"Student draft:\n{draft.strip()}")
    if hint is not None:
        parts.append(CODE_HINT.format(hint=fence(hint)))
    system = CODE_TEACHER_SYSTEM.format(instruction=CODE_INSTRUCTIONS[strategy])
    return [{"role": "system", "content": system}, {"role": "user", "content": "\n\n".join(parts)}]
