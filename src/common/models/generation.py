"""Batched generation with Hugging Face models: left padding, length-sorted batches, stop on
end-of-turn or EOS, a progress bar, and batch halving on CUDA out-of-memory.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from tqdm.auto import tqdm

from common.errors import LooperError

# End-of-turn markers of common chat templates (ChatML, Phi-3, Llama-3); used when present.
END_OF_TURN = ("<|im_end|>", "<|end|>", "<|eot_id|>", "<|endoftext|>")


@dataclass
class Generation:
    text: str
    new_tokens: int
    truncated: bool  # stopped by max_new_tokens, not by an end token


def stop_token_ids(model, tokenizer) -> list[int]:
    ids = set()
    configured = getattr(model.generation_config, "eos_token_id", None)
    if isinstance(configured, int):
        ids.add(configured)
    elif configured:
        ids.update(configured)
    if tokenizer.eos_token_id is not None:
        ids.add(tokenizer.eos_token_id)
    vocab = tokenizer.get_vocab()
    ids.update(vocab[t] for t in END_OF_TURN if t in vocab)
    return sorted(ids)


def _is_oom(err: BaseException) -> bool:
    import torch

    return isinstance(err, torch.cuda.OutOfMemoryError) or "out of memory" in str(err).lower()


def generate_batches(
    model,
    tokenizer,
    prompts: list[str],
    max_new_tokens: int,
    batch_size: int = 16,
    temperature: float = 0.0,
    top_p: float = 1.0,
    seed: int = 0,
    desc: str = "generate",
) -> Iterator[list[tuple[int, Generation]]]:
    """Yield [(prompt index, Generation)] batch by batch, longest prompts first.

    temperature 0 is greedy. Yielding per batch lets callers append results as they come.
    """
    import torch

    if getattr(model, "schedules_own_batches", False):  # vLLM (models/vllm.py) takes them all
        stops = [t for t in [tokenizer.eos_token_id] if t is not None]
        stops += [tokenizer.convert_tokens_to_ids(t) for t in END_OF_TURN if t in tokenizer.get_vocab()]
        gens = model.generate(prompts, max_new_tokens, temperature, top_p, seed, stops)
        yield list(enumerate(gens))
        return
    tokenizer.padding_side = "left"  # decoder-only models continue from the right edge
    stops = stop_token_ids(model, tokenizer)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else stops[0]
    lengths = [len(ids) for ids in tokenizer(prompts, add_special_tokens=False)["input_ids"]]
    order = sorted(range(len(prompts)), key=lambda i: -lengths[i])
    sampling = {"do_sample": True, "temperature": temperature, "top_p": top_p}
    torch.manual_seed(seed)
    bar = tqdm(total=len(prompts), desc=desc, unit="ex", mininterval=1.0)
    start = 0
    while start < len(order):
        idx = order[start : start + batch_size]
        batch = tokenizer(
            [prompts[i] for i in idx], return_tensors="pt", padding=True, add_special_tokens=False
        ).to(model.device)
        try:
            with torch.inference_mode():
                out = model.generate(
                    **batch,
                    max_new_tokens=max_new_tokens,
                    eos_token_id=stops,
                    pad_token_id=pad_id,
                    **(sampling if temperature > 0 else {"do_sample": False}),
                )
        except RuntimeError as err:
            if not _is_oom(err) or batch_size == 1:
                if _is_oom(err):
                    raise LooperError(
                        "CUDA out of memory at generation batch size 1; lower the new-token "
                        "limit or MAX_LENGTH, or use HW=4060 (4-bit) on this card"
                    ) from None
                raise
            torch.cuda.empty_cache()
            batch_size //= 2
            bar.write(f"{desc}: CUDA out of memory; retrying with batch size {batch_size}")
            continue
        new = out[:, batch["input_ids"].shape[1] :]
        results = []
        for row, i in enumerate(idx):
            tokens = new[row].tolist()
            ended = next((k for k, t in enumerate(tokens) if t in stops), None)
            kept = tokens[:ended] if ended is not None else tokens
            text = tokenizer.decode(kept, skip_special_tokens=True)
            results.append((i, Generation(text, len(kept), ended is None)))
        bar.update(len(idx))
        start += len(idx)
        yield results
    bar.close()


def generate(model, tokenizer, prompts: list[str], max_new_tokens: int, **kwargs) -> list[Generation]:
    """All generations, in prompt order."""
    out: list[Generation | None] = [None] * len(prompts)
    for batch in generate_batches(model, tokenizer, prompts, max_new_tokens, **kwargs):
        for i, gen in batch:
            out[i] = gen
    return out  # type: ignore[return-value]
