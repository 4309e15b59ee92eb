"""The benchmark tasks by name: GSM8K and StrategyQA forms (and their synthetic twins arith and
compare), and the code tasks; `get_task(name)`. The interface is common.data.task.Task."""

from __future__ import annotations

from common.data import answers
from common.data.code_tasks import HUMANEVAL_SOURCE, BigCodeBenchTask, HumanEvalTask, MbppTask, PyfuncTask
from common.data.task import Task, _stable_id
from common.errors import ConfigError, DataError


class NumericTask(Task):
    """GSM8K form: a worked solution ending in '#### N', or a bare number."""

    def _normalize(self, row: dict, question: str, where: str) -> dict:
        raw = str(row["answer"])
        rationale, sep, final = raw.rpartition("####")
        gold = answers.normalize_number(final.strip()) if sep else answers.normalize_number(raw)
        if gold is None:
            raise DataError(f"{where}: answer {raw[-40:]!r} has no final number; end it with '#### N'")
        return {
            "id": _stable_id(self.name, row, question),
            "question": question,
            "answer": gold,
            "rationale": rationale.strip(),
        }


def _as_list(value) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [line.strip() for line in value.splitlines() if line.strip()]
    return [str(v).strip() for v in value if str(v).strip()]


class YesNoTask(Task):
    """StrategyQA form: a boolean answer with facts and a decomposition into sub-questions."""

    def _normalize(self, row: dict, question: str, where: str) -> dict:
        gold = answers.normalize_yes_no(row["answer"])
        if gold is None:
            raise DataError(f"{where}: answer {row['answer']!r} is not yes/no; use true/false or yes/no")
        facts = _as_list(row.get("facts"))
        return {
            "id": _stable_id(self.name, row, question),
            "question": question,
            "answer": gold,
            "rationale": " ".join(facts),
            "facts": facts,
            "decomposition": _as_list(row.get("decomposition")),
        }


BIGCODEBENCH, BIGCODEBENCH_VERSION = "bigcode/bigcodebench", "v0.1.4"  # the version is a split
TASKS: dict[str, Task] = {
    "gsm8k": NumericTask("gsm8k", "number", "openai/gsm8k", "madrylab/gsm8k-platinum", "main"),
    "strategyqa": YesNoTask("strategyqa", "yesno", "ChilleD/StrategyQA", "ChilleD/StrategyQA"),
    "arith": NumericTask("arith", "number", "", ""),
    "compare": YesNoTask("compare", "yesno", "", ""),
    "pyfunc": PyfuncTask("pyfunc", "code", "", ""),
    "humaneval": HumanEvalTask("humaneval", "code", HUMANEVAL_SOURCE, HUMANEVAL_SOURCE),
    "mbpp": MbppTask(
        "mbpp", "code", "google-research-datasets/mbpp", "google-research-datasets/mbpp", "full"
    ),
    "bigcodebench": BigCodeBenchTask(
        "bigcodebench", "code", BIGCODEBENCH, BIGCODEBENCH, test_split=BIGCODEBENCH_VERSION
    ),
    "bigcodebench-instruct": BigCodeBenchTask(
        "bigcodebench-instruct",
        "code",
        BIGCODEBENCH,
        BIGCODEBENCH,
        test_split=BIGCODEBENCH_VERSION,
        prompt_field="instruct_prompt",
    ),
}


def get_task(name: str) -> Task:
    if name not in TASKS:
        raise ConfigError(f"TASK={name!r} is not allowed; choose one of {'|'.join(TASKS)}")
    return TASKS[name]
