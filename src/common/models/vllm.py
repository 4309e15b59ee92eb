"""Generation through vLLM (GEN_BACKEND=vllm, CUDA only): the base model with a phase's LoRA
adapter applied per request. generate_batches() hands it the whole prompt list."""

from __future__ import annotations

from common.errors import ConfigError
from common.models.checkpoints import adapter_base, is_adapter
from common.models.generation import Generation


class VLLMGenerator:
    """vLLM over the base model, with a phase's LoRA adapter applied per request (GEN_BACKEND=vllm).
    vLLM schedules its own batches, so the whole prompt list goes in at once."""

    schedules_own_batches = True

    def __init__(self, cfg, path: str):
        try:
            import vllm
            from vllm.lora.request import LoRARequest
        except ImportError:
            raise ConfigError(
                "GEN_BACKEND=vllm needs vLLM on a CUDA machine: pip install vllm "
                "(or use the default GEN_BACKEND=hf)"
            ) from None
        adapter = path if is_adapter(path) else None
        extra = (
            {"data_parallel_size": cfg.generation.vllm_data_parallel}
            if cfg.generation.vllm_data_parallel > 1
            else {}
        )
        self.vllm = vllm
        self.llm = vllm.LLM(
            model=adapter_base(path) if adapter else path,
            dtype=cfg.model.compute_dtype,
            tensor_parallel_size=cfg.generation.vllm_tensor_parallel,
            enable_lora=adapter is not None,
            max_lora_rank=max(16, cfg.model.lora_r),
            seed=cfg.run.random_seed,
            **extra,
        )
        self.lora = LoRARequest("looper", 1, adapter) if adapter else None
        self.tokenizer = self.llm.get_tokenizer()

    def generate(self, prompts, max_new_tokens, temperature, top_p, seed, stops) -> list[Generation]:
        params = self.vllm.SamplingParams(
            max_tokens=max_new_tokens,
            temperature=temperature,
            top_p=top_p,
            seed=seed,
            stop_token_ids=stops,
        )
        outs = self.llm.generate(prompts, params, lora_request=self.lora, use_tqdm=True)
        return [
            Generation(o.outputs[0].text, len(o.outputs[0].token_ids), o.outputs[0].finish_reason == "length")
            for o in outs
        ]
