"""`make gpu-check`: on a CUDA machine with no network, build a Phi-3.5-mini-shaped model with
random weights (32 layers, hidden 3072, vocabulary 32,064) and train LoRA steps through the real
profile code (common.training.load_student):
  - 4060 profile (4-bit NF4 QLoRA, gradient checkpointing, paged 8-bit AdamW) at length 2048:
    peak GPU memory; the goal is <= 7.5 GB so it fits the 8 GB card;
  - h100 profile (bf16 LoRA): tokens/s and model-FLOPs utilisation (6 x parameters x tokens/s
    over the GPU's dense bf16 peak).
Without CUDA it says so in one line and exits 0.
"""

import argparse
import tempfile
import time

import torch

# Dense bf16 peak of the cards people use; others can pass --peak-tflops.
PEAK_TFLOPS = {"H100": 989.0, "H200": 989.0, "A100": 312.0, "RTX 4060": 121.0, "L4": 121.0}


def phi35_mini_config():
    from transformers import Phi3Config

    return Phi3Config(
        vocab_size=32064,
        hidden_size=3072,
        intermediate_size=8192,
        num_hidden_layers=32,
        num_attention_heads=32,
        num_key_value_heads=32,
        max_position_embeddings=4096,
        pad_token_id=32000,
        bos_token_id=1,
        eos_token_id=32000,
    )


def train_steps(model, optimizer, batch: int, length: int, steps: int) -> tuple[float, float]:
    """(seconds per step after one warm-up step, peak GB)."""
    ids = torch.randint(0, 32000, (batch, length), device="cuda")
    torch.cuda.reset_peak_memory_stats()
    times = []
    for _ in range(steps + 1):
        torch.cuda.synchronize()
        start = time.perf_counter()
        loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return sum(times[1:]) / steps, torch.cuda.max_memory_allocated() / 1e9


def run_profile(hw: str, model_dir: str, length: int, steps: int):
    from common.config import load_config
    from common.train.setup import load_student

    cfg = load_config([], env={"HW": hw, "MODEL_NAME": model_dir, "TASK": "gsm8k"})[0]
    model, _ = load_student(cfg.model)
    model.train()  # from_pretrained returns eval mode, where checkpointing and dropout are off
    if cfg.train.gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    if not cfg.model.load_in_4bit:  # 4-bit weights are placed on the GPU as they load
        model.to("cuda")
    params = [p for p in model.parameters() if p.requires_grad]
    if cfg.train.optim == "paged_adamw_8bit":
        import bitsandbytes as bnb

        optimizer = bnb.optim.PagedAdamW8bit(params, lr=cfg.train.learning_rate)
    else:
        optimizer = torch.optim.AdamW(params, lr=cfg.train.learning_rate, fused=True)
    n_params = sum(p.numel() for p in model.parameters())
    seconds, peak = train_steps(model, optimizer, cfg.train.batch_size, length, steps)
    del model, optimizer
    torch.cuda.empty_cache()
    return cfg, seconds, peak, n_params


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--length", type=int, default=2048)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--peak-tflops", type=float, default=0.0)
    args = parser.parse_args()
    if not torch.cuda.is_available():
        print("gpu-check: no CUDA device here; run it on a GPU machine (nothing measured)")
        return
    from transformers import Phi3ForCausalLM

    from common.models.tiny import build_tokenizer

    name = torch.cuda.get_device_name(0)
    peak_tflops = args.peak_tflops or next((v for k, v in PEAK_TFLOPS.items() if k in name), 0.0)
    print(f"gpu-check on {name}, torch {torch.__version__}, CUDA {torch.version.cuda}")
    with tempfile.TemporaryDirectory() as tmp:
        torch.manual_seed(0)
        Phi3ForCausalLM(phi35_mini_config()).to(torch.bfloat16).save_pretrained(tmp)
        build_tokenizer().save_pretrained(tmp)  # steps train on random ids; it only has to load
        try:
            cfg, seconds, peak, _ = run_profile("4060", tmp, args.length, args.steps)
        except torch.cuda.OutOfMemoryError:
            print(f"4060 profile: CUDA out of memory at length {args.length} on this card")
            raise SystemExit(1) from None
        verdict = "fits" if peak <= 7.5 else "DOES NOT FIT"
        print(
            f"4060 profile (4-bit QLoRA, batch {cfg.train.batch_size} x {args.length}, gradient "
            f"checkpointing, {cfg.train.optim}): peak {peak:.2f} GB ({verdict}: goal <= 7.5 GB), "
            f"{seconds:.2f} s/step"
        )
        cfg, seconds, peak, n_params = run_profile("h100", tmp, args.length, args.steps)
        tokens_per_s = cfg.train.batch_size * args.length / seconds
        mfu = 6 * n_params * tokens_per_s / (peak_tflops * 1e12) if peak_tflops else float("nan")
        print(
            f"h100 profile (bf16 LoRA, batch {cfg.train.batch_size} x {args.length}): "
            f"{tokens_per_s:,.0f} tokens/s, MFU {mfu:.1%} (6 x {n_params / 1e9:.2f}B params x "
            f"tokens/s / {peak_tflops:.0f} TFLOPS), peak {peak:.1f} GB"
        )


if __name__ == "__main__":
    main()
