"""The task interface every benchmark implements: load a split as canonical examples, build the
prompts for a reasoning strategy, extract and grade a final answer, give the class-balance label.

A canonical example is {"id", "question", "answer", "rationale"} (+ "facts", "decomposition" for
yes/no tasks); "answer" is the normalised gold: "72" or "yes"/"no" (code tasks: common.data.code_tasks).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from common.data import answers, prompts, synthetic
from common.data.loading import Source, load_source, sibling_test_file
from common.errors import DataError


@dataclass(frozen=True)
class Task:
    name: str
    answer_kind: str  # "number" | "yesno"
    train_source: str  # hub id, or "" for a generated task
    test_source: str
    hub_config: str | None = None
    test_split: str = "test"

    # -- data ---------------------------------------------------------------------------------
    def sources(self, dataset_path: str = "", test_path: str = "") -> tuple[str, str]:
        """Train and test sources. A local train file with no TEST_PATH uses its sibling test file."""
        train = dataset_path or self.train_source
        test = test_path
        if not test and dataset_path:
            sibling = sibling_test_file(dataset_path)
            test = str(sibling) if sibling else self.test_source
        return train, test or self.test_source

    def load_split(self, split: str, source: str) -> list[dict]:
        """Canonical examples of `split` ("train" or "test") from `source` ("" = generated)."""
        if not source:
            rows = synthetic.generate(self.name, split)
            src = Source(f"<generated {self.name} {split}>", rows)
        else:
            hub_split = self.test_split if split == "test" else "train"
            src = load_source(source, hub_split, self.hub_config)
        return [self.normalize(row, src.where(i)) for i, row in enumerate(src.rows)]

    def normalize(self, row: dict, where: str) -> dict:
        question = row.get("question")
        if not isinstance(question, str) or not question.strip():
            raise DataError(f"{where}: missing field 'question'; every row needs the question text")
        if row.get("answer") is None:
            raise DataError(f"{where}: missing field 'answer'; every row needs the gold answer")
        return self._normalize(row, question.strip(), where)

    def _normalize(self, row: dict, question: str, where: str) -> dict:
        raise NotImplementedError

    def rationale_steps(self, example: dict) -> list[str]:
        """Reasoning steps from the dataset itself: GSM8K's worked solution (calculator
        annotations removed), StrategyQA's facts (or its decomposition)."""
        if self.answer_kind == "yesno":
            steps = example.get("facts") or example.get("decomposition") or []
            return steps or ["Recall what is known about the question."]
        lines = [re.sub(r"<<[^>]*>>", "", line).strip() for line in example["rationale"].splitlines()]
        return [line for line in lines if line] or ["Compute the result directly."]

    def label(self, example: dict) -> str | None:
        """The class used for stratified sampling and balance; None for open answers."""
        return example["answer"] if self.answer_kind == "yesno" else None

    # -- prompts and grading ------------------------------------------------------------------
    def build_messages(self, question: str, strategy: str, draft: str | None = None) -> list[dict]:
        return prompts.build_messages(question, strategy, self.answer_kind, draft)

    def build_draft_messages(self, question: str) -> list[dict]:
        return prompts.build_draft_messages(question, self.answer_kind)

    def build_teacher_messages(
        self, question: str, draft: str | None = None, hint: str | None = None, strategy: str = "cot"
    ) -> list[dict]:
        """The teacher's request; it answers in the teaching format whatever `strategy` (code
        tasks ask for the program in that format)."""
        return prompts.build_teacher_messages(question, self.answer_kind, draft, hint)

    def target(self, strategy: str, example: dict, steps: list[str]) -> str:
        """What the student is trained to write for `example` in `strategy`."""
        return prompts.build_target(strategy, example["answer"], steps, example.get("decomposition"))

    def steps_from_teacher(self, text: str) -> list[str]:
        return prompts.teacher_steps(text)

    def hint(self, example: dict) -> str:
        """What STaR rationalization shows the teacher: the gold answer."""
        return example["answer"].upper() if self.answer_kind == "yesno" else example["answer"]

    def extract_answer(self, text: str) -> str | None:
        if self.answer_kind == "number":
            return answers.extract_number(text)
        return answers.extract_yes_no(text)

    def is_correct(self, pred: str | None, gold: str) -> bool:
        if self.answer_kind == "number":
            return answers.numbers_equal(pred, gold)
        return pred is not None and pred == gold

    def check_many(self, preds: list[str | None], golds: list[str]) -> list[bool]:
        """is_correct of each (pred, gold) pair (code tasks run the programs in parallel, once)."""
        return [self.is_correct(p, g) for p, g in zip(preds, golds, strict=True)]

    def grade_many(self, outputs: list[str], golds: list[str], desc: str | None = None) -> list[dict]:
        """Outputs graded against their golds, in order (code tasks run them in parallel)."""
        rows = []
        for output, gold in zip(outputs, golds, strict=True):
            pred = self.extract_answer(output)
            rows.append({"pred": pred, "correct": self.is_correct(pred, gold), "parse_ok": pred is not None})
        return rows


def _stable_id(task: str, row: dict, question: str) -> str:
    for key in ("id", "qid"):
        if row.get(key) not in (None, ""):
            return str(row[key])
    return f"{task}-{hashlib.sha1(question.encode()).hexdigest()[:12]}"
