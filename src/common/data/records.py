"""Training records in TRL's conversational formats, and their ShareGPT export for Axolotl."""

from __future__ import annotations

ROLE_TO_SHAREGPT = {"system": "system", "user": "human", "assistant": "gpt"}


def sft_record(id: str, prompt: list[dict], completion: str, **meta) -> dict:
    """TRL prompt-completion (conversational): the loss falls on the completion only."""
    return {"id": id, "prompt": prompt, "completion": [{"role": "assistant", "content": completion}], **meta}


def preference_record(
    id: str, prompt: list[dict], chosen: str, rejected: str, pair_type: str, **meta
) -> dict:
    """TRL preference (conversational, explicit prompt), as DPOTrainer reads it."""
    return {
        "id": id,
        "prompt": prompt,
        "chosen": [{"role": "assistant", "content": chosen}],
        "rejected": [{"role": "assistant", "content": rejected}],
        "pair_type": pair_type,
        **meta,
    }


def to_sharegpt(record: dict) -> dict:
    """{"conversations": [{"from": "human", "value": ...}, {"from": "gpt", ...}]}"""
    turns = record["prompt"] + record["completion"]
    return {
        "id": record["id"],
        "conversations": [{"from": ROLE_TO_SHAREGPT[t["role"]], "value": t["content"]} for t in turns],
    }


def to_sharegpt_preference(record: dict) -> dict:
    """The ShareGPT preference layout Axolotl and LLaMA-Factory read:
    {"conversations": [prompt turns], "chosen": {"from": "gpt", ...}, "rejected": {...}}."""

    def turn(message: dict) -> dict:
        return {"from": ROLE_TO_SHAREGPT[message["role"]], "value": message["content"]}

    return {
        "id": record["id"],
        "conversations": [turn(m) for m in record["prompt"]],
        "chosen": turn(record["chosen"][0]),
        "rejected": turn(record["rejected"][0]),
        "pair_type": record["pair_type"],
    }
