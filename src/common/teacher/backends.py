"""Teacher backends behind one async call, complete(job) -> Reply: OpenAI and Anthropic through
their official async SDKs (whose own retry machinery handles 429/5xx/timeouts/dropped
connections, honouring Retry-After), and an offline teacher built from the dataset's rationale.
"""

from __future__ import annotations

import json
import random
import re
from dataclasses import dataclass, field
from decimal import Decimal

from common.config import TeacherSection
from common.data import prompts
from common.errors import ConfigError
from common.teacher.costs import estimate_tokens, teacher_model


@dataclass
class Job:
    """One request: an example's attempt number and the messages sent for it."""

    id: str
    attempt: int
    messages: list[dict]
    example: dict = field(repr=False)
    hint: str | None = None  # the gold answer shown to the teacher (rationalization)


@dataclass
class Reply:
    status: str  # ok | refused | empty | api_error
    text: str = ""
    tokens_in: int = 0
    tokens_out: int = 0
    error: str = ""
    cached: bool = False


_SECRET_PATTERNS = [re.compile(r"(Bearer\s+)\S+"), re.compile(r"\b(sk-)[\w-]{6,}")]


def redact(text: str, secrets: list[str]) -> str:
    """Remove keys from a message before it is printed or stored (servers may echo them)."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    for pattern in _SECRET_PATTERNS:
        text = pattern.sub(r"\1***", text)
    return text


class OpenAITeacher:
    def __init__(self, settings: TeacherSection):
        import openai

        self.sdk, self.key = openai, settings.openai_api_key
        self.model, self.settings = teacher_model(settings), settings
        self.client = openai.AsyncOpenAI(
            api_key=settings.openai_api_key,
            base_url=settings.openai_base_url or None,
            timeout=settings.teacher_timeout,
            max_retries=settings.teacher_max_retries,
        )

    async def aclose(self) -> None:
        await self.client.close()

    async def complete(self, job: Job) -> Reply:
        # client.post is the SDK's own call with its retries and typed response; it skips
        # chat.completions.create's recursive TypedDict transform of the messages, which cost
        # about 2 ms of CPU a request (docs/BENCHMARKS.md).
        resp, failed = await sdk_call(
            self.sdk,
            self.key,
            self.client.post(
                "/chat/completions",
                cast_to=self.sdk.types.chat.ChatCompletion,
                body={
                    "model": self.model,
                    "messages": job.messages,
                    "temperature": self.settings.teacher_temperature,
                    "max_completion_tokens": self.settings.teacher_max_tokens,
                },
            ),
        )
        if failed:
            return failed
        if not resp.choices:
            return api_error("malformed response: no choices", self.key)
        choice, usage = resp.choices[0], resp.usage
        tokens = (usage.prompt_tokens, usage.completion_tokens) if usage else (0, 0)
        if choice.message.refusal or choice.finish_reason == "content_filter":
            return Reply("refused", choice.message.refusal or "content filter", *tokens)
        text = choice.message.content or ""
        return Reply("ok" if text.strip() else "empty", text, *tokens)


class AnthropicTeacher:
    def __init__(self, settings: TeacherSection):
        import anthropic

        self.sdk, self.key = anthropic, settings.anthropic_api_key
        self.model, self.settings = teacher_model(settings), settings
        self.client = anthropic.AsyncAnthropic(
            api_key=settings.anthropic_api_key,
            base_url=settings.anthropic_base_url or None,
            timeout=settings.teacher_timeout,
            max_retries=settings.teacher_max_retries,
        )

    async def aclose(self) -> None:
        await self.client.close()

    async def complete(self, job: Job) -> Reply:
        system = "\n\n".join(m["content"] for m in job.messages if m["role"] == "system")
        messages = [m for m in job.messages if m["role"] != "system"]
        resp, failed = await sdk_call(
            self.sdk,
            self.key,
            self.client.messages.create(
                model=self.model,
                system=system,
                messages=messages,
                max_tokens=self.settings.teacher_max_tokens,  # this SDK takes no temperature
            ),
        )
        if failed:
            return failed
        tokens = (resp.usage.input_tokens, resp.usage.output_tokens)
        if resp.stop_reason == "refusal":
            return Reply("refused", "refusal", *tokens)
        text = "".join(block.text for block in resp.content if block.type == "text")
        return Reply("ok" if text.strip() else "empty", text, *tokens)


def api_error(message: str, key: str) -> Reply:
    return Reply("api_error", error=redact(message, [key]))


async def sdk_call(sdk, key: str, request):
    """(response, None), or (None, an api_error Reply) for what the SDK's retries could not fix.
    The openai and anthropic SDKs share these exception names."""
    try:
        return await request, None
    except sdk.APIStatusError as err:
        return None, api_error(f"HTTP {err.status_code} {type(err).__name__}: {err.message}", key)
    except sdk.APITimeoutError:
        return None, api_error("timed out after all retries", key)
    except sdk.APIConnectionError:
        return None, api_error("connection failed after all retries", key)
    except (json.JSONDecodeError, sdk.APIResponseValidationError) as err:
        return None, api_error(f"malformed response: {str(err)[:120]}", key)


class OfflineTeacher:
    """Writes the teaching format from the dataset's own rationale (GSM8K's worked solution,
    StrategyQA's facts, the generator's steps). TEACHER_ERROR_RATE makes it wrong on purpose,
    optionally only on questions whose gold is TEACHER_ERROR_LABEL, to imitate a real teacher."""

    model = "offline"

    def __init__(self, settings: TeacherSection, task, seed: int = 0, strategy: str = "explicit"):
        self.settings, self.task, self.answer_kind = settings, task, task.answer_kind
        self.seed, self.strategy = seed, strategy

    def wrong_on(self, example: dict, attempt: int) -> bool:
        label = self.settings.teacher_error_label
        if label and example["answer"] != label:
            return False
        rng = random.Random(f"{self.seed}:{example['id']}:{attempt}")
        return rng.random() < self.settings.teacher_error_rate

    def final_answer(self, example: dict, attempt: int, hinted: bool) -> str:
        gold = example["answer"]
        if hinted or not self.wrong_on(example, attempt):
            return gold.upper() if self.answer_kind == "yesno" else gold
        if self.answer_kind == "yesno":
            return "NO" if gold == "yes" else "YES"
        delta = random.Random(f"delta:{example['id']}:{attempt}").randint(1, 9)
        return str(Decimal(gold) + delta)

    def code_reply(self, example: dict, attempt: int, hinted: bool) -> str:
        """The canonical program in the format being taught, with an approach from the docstring;
        a program made wrong on purpose returns None where its last return was, which its tests
        catch."""
        program = example["solution"]
        if not hinted and self.wrong_on(example, attempt):
            lines = program.rstrip("\n").split("\n")
            last = max((i for i, line in enumerate(lines) if line.strip().startswith("return")), default=None)
            if last is not None:
                lines[last] = lines[last][: len(lines[last]) - len(lines[last].lstrip())] + "return None"
            program = "\n".join(lines) + "\n"
        return prompts.build_code_target(self.strategy, program, self.task.rationale_steps(example))

    async def complete(self, job: Job) -> Reply:
        example = job.example
        if self.answer_kind == "code":
            text = self.code_reply(example, job.attempt, hinted=job.hint is not None)
            prompt = "".join(m["content"] for m in job.messages)
            return Reply("ok", text, estimate_tokens(prompt), estimate_tokens(text))
        draft = example.get("draft_answer")
        analysis = (
            f"The student's draft answered {draft!r}; let us check it step by step."
            if draft
            else "Let us work through the question step by step."
        )
        final = self.final_answer(example, job.attempt, hinted=job.hint is not None)
        text = prompts.format_teacher_reply(analysis, self.task.rationale_steps(example), final)
        prompt = "".join(m["content"] for m in job.messages)
        return Reply("ok", text, estimate_tokens(prompt), estimate_tokens(text))


def make_teacher(settings: TeacherSection, task, seed: int = 0, strategy: str = "explicit"):
    """The configured backend for a task (the offline one seeded with RANDOM_SEED); a missing API key
    stops here, before any work."""
    if settings.backend == "offline":
        return OfflineTeacher(settings, task, seed, strategy)
    key_name = {"openai": "OPENAI_API_KEY", "anthropic": "ANTHROPIC_API_KEY"}[settings.backend]
    if not getattr(settings, key_name.lower()):
        raise ConfigError(
            f"TEACHER={settings.backend} needs {key_name}; set it in the environment or .env "
            f"(or use TEACHER=offline, or DRY_RUN=1 to see what would be sent)"
        )
    return OpenAITeacher(settings) if settings.backend == "openai" else AnthropicTeacher(settings)
