"""Integrated-gradients attribution: how much of the evidence for the model's answer comes from
the student's draft tokens in the prompt (Sundararajan et al. 2017, https://arxiv.org/abs/1703.01365).
"""

from __future__ import annotations

import torch


def token_span(tokenizer, text: str, start: int, end: int) -> list[int]:
    """Indices of the tokens of `text` that overlap characters [start, end)."""
    offsets = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
    return [i for i, (a, b) in enumerate(offsets) if a < end and b > start]


def integrated_gradients(model, prompt_ids: torch.Tensor, answer_ids: torch.Tensor, steps: int = 16):
    """Per-prompt-token attribution of log p(answer | prompt), with an all-zero embedding
    baseline and a Riemann sum over `steps` points on the straight path (Sundararajan et al. 2017).
    """
    embed = model.get_input_embeddings()
    ids = torch.cat([prompt_ids, answer_ids]).unsqueeze(0).to(model.device)
    with torch.no_grad():
        full = embed(ids)[0]
    n_prompt = prompt_ids.numel()
    alphas = (torch.arange(1, steps + 1, device=full.device, dtype=full.dtype) / steps).view(-1, 1, 1)
    prompt_embeds = full[:n_prompt].unsqueeze(0) * alphas  # only the prompt moves along the path
    answer_embeds = full[n_prompt:].unsqueeze(0).expand(steps, -1, -1)
    prompt_embeds.requires_grad_(True)
    logits = model(inputs_embeds=torch.cat([prompt_embeds, answer_embeds], dim=1)).logits
    targets = ids[0, n_prompt:]
    logps = torch.log_softmax(logits[:, n_prompt - 1 : -1].float(), dim=-1)
    score = logps.gather(-1, targets.view(1, -1, 1).expand(steps, -1, 1)).sum()
    (grads,) = torch.autograd.grad(score, prompt_embeds)
    return (full[:n_prompt] * grads.mean(dim=0)).sum(dim=-1).detach().float().cpu()


def draft_share(model, tokenizer, prompt: str, draft: str, answer: str, steps: int = 16) -> float | None:
    """Share of the absolute attribution mass that falls on the draft's tokens (None if the
    draft is not in the prompt)."""
    start = prompt.find(draft.strip()) if draft and draft.strip() else -1
    if start < 0:
        return None
    draft_tokens = token_span(tokenizer, prompt, start, start + len(draft.strip()))
    prompt_ids = torch.tensor(tokenizer(prompt, add_special_tokens=False)["input_ids"])
    answer_ids = torch.tensor(
        tokenizer(answer, add_special_tokens=False)["input_ids"] or [tokenizer.eos_token_id]
    )
    attributions = integrated_gradients(model, prompt_ids, answer_ids, steps).abs()
    total = attributions.sum().item()
    return attributions[draft_tokens].sum().item() / total if total > 0 else None
