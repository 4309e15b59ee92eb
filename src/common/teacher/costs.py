"""Teacher pricing: USD per million tokens per model, token estimates, and the spending cap."""

from __future__ import annotations

from dataclasses import dataclass

from common.config import TeacherSection
from common.errors import ConfigError

# List prices in USD per 1M tokens (input, output). Check your provider's current prices and
# override with TEACHER_PRICE_IN / TEACHER_PRICE_OUT when they differ.
PRICES: dict[str, tuple[float, float]] = {
    "gpt-4.1": (2.00, 8.00),
    "gpt-4.1-mini": (0.40, 1.60),
    "gpt-4.1-nano": (0.10, 0.40),
    "gpt-4o": (2.50, 10.00),
    "gpt-4o-mini": (0.15, 0.60),
    "claude-sonnet-4-5": (3.00, 15.00),
    "claude-sonnet-4": (3.00, 15.00),
    "claude-3-5-haiku": (0.80, 4.00),
    "claude-haiku-4-5": (1.00, 5.00),
    "claude-opus-4-1": (15.00, 75.00),
    "offline": (0.0, 0.0),
}
DEFAULT_TEACHER_MODELS = {
    "openai": "gpt-4.1-mini",
    "anthropic": "claude-sonnet-4-5",
    "offline": "offline",
}


def teacher_model(teacher: TeacherSection) -> str:
    return teacher.teacher_model or DEFAULT_TEACHER_MODELS[teacher.backend]


def prices(teacher: TeacherSection) -> tuple[float, float]:
    """(input, output) USD per 1M tokens: the overrides, else the table (dated suffixes match)."""
    model = teacher_model(teacher)
    if teacher.teacher_price_in >= 0 and teacher.teacher_price_out >= 0:
        return teacher.teacher_price_in, teacher.teacher_price_out
    for name in sorted(PRICES, key=len, reverse=True):
        if model == name or model.startswith(name + "-"):
            return PRICES[name]
    raise ConfigError(
        f"TEACHER_MODEL={model!r} has no known price; set TEACHER_PRICE_IN and TEACHER_PRICE_OUT "
        f"(USD per 1M tokens) so MAX_COST_USD can be enforced"
    )


def usd(tokens_in: int, tokens_out: int, price: tuple[float, float]) -> float:
    return (tokens_in * price[0] + tokens_out * price[1]) / 1e6


def estimate_tokens(text: str) -> int:
    """About four characters a token for English; an over-estimate is the safe side here."""
    return len(text) // 3 + 1


@dataclass
class Budget:
    """Never start a request that could take spending past the cap (0 = no cap)."""

    limit: float
    spent: float
    price: tuple[float, float]
    max_out_tokens: int
    reserved: float = 0.0
    exhausted: bool = False

    def worst_case(self, tokens_in: int) -> float:
        return usd(tokens_in, self.max_out_tokens, self.price)

    def try_reserve(self, tokens_in: int) -> bool:
        cost = self.worst_case(tokens_in)
        if self.limit and self.spent + self.reserved + cost > self.limit:
            self.exhausted = True
            return False
        self.reserved += cost
        return True

    def settle(self, tokens_in_estimate: int, actual: float) -> None:
        self.reserved -= self.worst_case(tokens_in_estimate)
        self.spent += actual
