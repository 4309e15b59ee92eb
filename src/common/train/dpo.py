"""Phase C on TRL's DPOTrainer: the losses of losses.py, the staged beta schedule (DPO_SCHEDULE), and
reference log-probabilities computed once per (reference, pairs file) and cached on disk.

The reference is the Phase B policy itself: the policy starts as a trainable copy of the Phase B
adapter, TRL keeps a frozen copy of that adapter (not a second model) for the one pass that
computes reference log-probs, and training then reads them from the batch. With FINETUNE=full the
policy, before its first step, is the reference, so that same pass runs on it.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import torch
from trl import DPOTrainer

from common.config import Config, DPOSection, shown, trl_args
from common.jsonl import read_jsonl, write_jsonl
from common.manifest import hash_path
from common.train import losses as dpo_losses


def reference_cache_path(cfg: Config, reference: Path, pair_files: list[Path], cache_dir: Path) -> Path:
    """One file per (reference adapter and base model, pairs files, tokenization limit)."""
    key = json.dumps(
        {
            "reference": hash_path(reference),
            "base": cfg.model.model_name,
            "pairs": [hash_path(p) for p in pair_files],
            "max_length": cfg.train.max_length,
        },
        sort_keys=True,
    )
    return cache_dir / f"{hashlib.sha256(key.encode()).hexdigest()[:16]}.jsonl"


def dpo_config(args: dict, dpo: DPOSection):
    """TRL's DPOConfig for Phase C: the shared trainer arguments, DPO_BETA, the cached reference
    log-probs, then DPO_ARGS (TRL's own settings, checked by the config) over all of them."""
    from trl import DPOConfig

    looper = {"beta": dpo.dpo_beta, "precompute_ref_log_probs": False, "remove_unused_columns": False}
    return DPOConfig(**(args | looper | trl_args(dpo.dpo_args, "dpo")))


def attach_reference_logps(trainer: DPOTrainer, cache_path: Path) -> int:
    """Give the train and eval datasets ref_chosen_logps/ref_rejected_logps columns: from the
    cache where it has the id, else computed with the frozen reference adapter and added to it.
    Returns how many pairs had to be computed."""
    cached = {r["id"]: r for r in read_jsonl(cache_path)} if cache_path.is_file() else {}
    computed = 0
    for split in ("train_dataset", "eval_dataset"):
        dataset = getattr(trainer, split)
        if dataset is None:
            continue
        missing = [i for i, row_id in enumerate(dataset["id"]) if row_id not in cached]
        if missing:
            loader = torch.utils.data.DataLoader(
                dataset.select(missing),
                batch_size=trainer.args.per_device_eval_batch_size,
                collate_fn=trainer.data_collator,
                shuffle=False,
            )
            ids = [dataset[i]["id"] for i in missing]
            chosen, rejected = [], []
            trainer.model.eval()
            for batch in loader:
                batch = {k: v.to(trainer.accelerator.device) for k, v in batch.items()}
                c, r = trainer.compute_ref_log_probs(trainer.model, batch)
                chosen += c.float().cpu().tolist()
                rejected += r.float().cpu().tolist()
            for row_id, c, r in zip(ids, chosen, rejected, strict=True):
                cached[row_id] = {"id": row_id, "ref_chosen_logps": c, "ref_rejected_logps": r}
            computed += len(missing)
        rows = [cached[row_id] for row_id in dataset["id"]]
        dataset = dataset.add_column("ref_chosen_logps", [r["ref_chosen_logps"] for r in rows])
        dataset = dataset.add_column("ref_rejected_logps", [r["ref_rejected_logps"] for r in rows])
        setattr(trainer, split, dataset)
    if computed and trainer.is_world_process_zero():
        write_jsonl(cache_path, cached.values())
    print(
        f"reference log-probs: {computed} computed, "
        f"{sum(len(getattr(trainer, s) or []) for s in ('train_dataset', 'eval_dataset')) - computed} "
        f"from the cache {shown(cache_path)}"
    )
    return computed


def noisy_threshold(dataset, fraction: float) -> float:
    """The reference's preference for the rejected answer above which a pair counts as noisy:
    the top `fraction` of pairs by ref_rejected - ref_chosen (the staged schedule's Dr-DPO-style filter)."""
    gaps = torch.tensor(dataset["ref_rejected_logps"]) - torch.tensor(dataset["ref_chosen_logps"])
    return torch.quantile(gaps.float(), 1 - fraction).item() if fraction > 0 else float("inf")


def turn_end_ids(tokenizer) -> list[int]:
    """The tokens a chat template puts after an assistant message's text (<|im_end|> and a
    newline for ChatML): the common end of two renderings that differ only in that text."""
    user = [{"role": "user", "content": "q"}]
    a, b = (
        tokenizer.apply_chat_template(
            user + [{"role": "assistant", "content": text}], tokenize=True, return_dict=True
        )["input_ids"]
        for text in ("1", "2")
    )
    n = 0
    while n < min(len(a), len(b)) and a[-1 - n] == b[-1 - n]:
        n += 1
    return list(a[len(a) - n :])


class LooperDPOTrainer(DPOTrainer):
    """DPOTrainer whose loss comes from dpo_losses, with cached reference log-probs in the batch.
    A rejected answer cut at its first wrong step (rejected_cut) is left open: without the turn's
    end, so DPO does not learn the easy lesson "don't end a turn after a step" from it.
    """

    def __init__(self, *args, dpo: DPOSection, **kwargs):
        super().__init__(*args, **kwargs)
        self.looper = dpo
        self.loss_names = dpo.dpo_loss.split("+")
        self.noisy_above = float("inf")

    def _prepare_dataset(self, dataset, processing_class, args, dataset_name):
        # TRL's own tokenizing hook (trl is pinned in requirements.txt): the cut is applied to the
        # token ids it makes, so every template and both datasets (train, eval) get the same rule.
        dataset = super()._prepare_dataset(dataset, processing_class, args, dataset_name)
        if "rejected_cut" not in dataset.column_names or not any(dataset["rejected_cut"]):
            return dataset
        end = turn_end_ids(getattr(processing_class, "tokenizer", processing_class))

        def leave_open(row: dict) -> dict:
            ids = row["rejected_ids"]
            if row["rejected_cut"] and end and ids[-len(end) :] == end:
                row["rejected_ids"] = ids[: -len(end)]
            return row

        return dataset.map(leave_open, desc=f"Opening cut rejected answers ({dataset_name})")

    def schedule(self) -> tuple[float, list[str], bool]:
        """(beta, losses, filter noisy pairs) for the current epoch."""
        if self.looper.dpo_schedule != "staged":
            return self.looper.dpo_beta, self.loss_names, False
        epoch = int(self.state.epoch or 0)
        extra = [n for n in self.loss_names if n == "sft"]
        if epoch == 0:  # warm-up: plain DPO at a small beta
            return 0.05, ["sigmoid", *extra], False
        return 0.10, ["centered", *extra], epoch >= 3

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        mode = "train" if self.model.training else "eval"
        completion_mask = inputs["completion_mask"]
        labels = inputs["input_ids"].masked_fill(completion_mask == 0, -100)
        outputs = model(
            input_ids=inputs["input_ids"],
            attention_mask=inputs["attention_mask"],
            labels=labels,
            use_cache=False,
            fused_lm_head=True,
        )
        shift_mask = completion_mask[..., 1:]
        logps = outputs.log_probs[:, -shift_mask.size(1) :].sum(dim=1)
        policy_w, policy_l = logps.chunk(2, dim=0)
        len_w, len_l = shift_mask.sum(dim=1).chunk(2, dim=0)
        ref_w, ref_l = inputs["ref_chosen_logps"], inputs["ref_rejected_logps"]

        beta, names, filter_noisy = self.schedule()
        weights = torch.ones_like(policy_w)
        if filter_noisy:
            weights = ((ref_l - ref_w) <= self.noisy_above).to(policy_w.dtype)
        loss = policy_w.new_zeros(())
        for name in names:
            per_pair = dpo_losses.per_pair_loss(
                name, policy_w, policy_l, ref_w, ref_l, beta, len_w, len_l, self.looper.dpo_label_smoothing
            )
            scale = self.looper.dpo_sft_weight if name == "sft" else 1.0
            loss = loss + scale * dpo_losses.reduce(name, per_pair, weights, self.looper.dr_dpo_beta)

        chosen_rewards = (beta * (policy_w - ref_w)).detach()
        rejected_rewards = (beta * (policy_l - ref_l)).detach()
        metrics = {
            "rewards/chosen": chosen_rewards,
            "rewards/rejected": rejected_rewards,
            "rewards/margins": chosen_rewards - rejected_rewards,
            "rewards/accuracies": (chosen_rewards > rejected_rewards).float(),
            "logps/chosen": policy_w.detach(),
            "logps/rejected": policy_l.detach(),
            "pairs_kept": weights,
            "beta": torch.full_like(weights, beta),
        }
        for key, value in metrics.items():
            self._metrics[mode][key].append(self.accelerator.gather_for_metrics(value).mean().item())
        return (loss, outputs) if return_outputs else loss
