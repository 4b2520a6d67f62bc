"""Llama models from size presets, built from scratch (random init, no download)."""

from __future__ import annotations

from dataclasses import dataclass

from transformers import LlamaConfig, LlamaForCausalLM

from curate.train.config import ModelConfig


@dataclass(frozen=True)
class Preset:
    hidden_size: int
    num_layers: int
    num_heads: int
    num_kv_heads: int
    intermediate_size: int
    tie_embeddings: bool


# Shapes follow the usual Llama-family ratios (SwiGLU ~8/3 * hidden, head dim 64-128);
# `tiny` is for CPU tests and the 2-core ablation.
PRESETS: dict[str, Preset] = {
    "tiny": Preset(hidden_size=96, num_layers=3, num_heads=4, num_kv_heads=4, intermediate_size=256, tie_embeddings=True),
    "125m": Preset(hidden_size=768, num_layers=12, num_heads=12, num_kv_heads=12, intermediate_size=2048, tie_embeddings=True),
    "350m": Preset(hidden_size=1024, num_layers=24, num_heads=16, num_kv_heads=16, intermediate_size=2816, tie_embeddings=True),
    "1b": Preset(hidden_size=2048, num_layers=16, num_heads=32, num_kv_heads=8, intermediate_size=8192, tie_embeddings=True),
}


def llama_config(cfg: ModelConfig, vocab_size: int, seq_len: int, eos_id: int, pad_id: int) -> LlamaConfig:
    p = PRESETS[cfg.preset]
    hidden = cfg.hidden_size or p.hidden_size
    heads = cfg.num_heads or p.num_heads
    kv_heads = cfg.num_kv_heads or (p.num_kv_heads if cfg.num_heads is None else heads)
    if hidden % heads or heads % kv_heads:
        raise ValueError(f"model: hidden_size {hidden} must divide by num_heads {heads}, and heads by num_kv_heads {kv_heads}")
    return LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=hidden,
        intermediate_size=cfg.intermediate_size or p.intermediate_size,
        num_hidden_layers=cfg.num_layers or p.num_layers,
        num_attention_heads=heads,
        num_key_value_heads=kv_heads,
        max_position_embeddings=seq_len,
        tie_word_embeddings=p.tie_embeddings,
        bos_token_id=eos_id,
        eos_token_id=eos_id,
        pad_token_id=pad_id,
        rope_theta=10_000.0,
        use_cache=False,  # training never reuses the KV cache; generate() turns it back on
    )


def build_model(config: LlamaConfig) -> LlamaForCausalLM:
    return LlamaForCausalLM(config)


def count_params(model: LlamaForCausalLM, non_embedding: bool = False) -> int:
    n = sum(p.numel() for p in model.parameters())
    if non_embedding:
        n -= model.get_input_embeddings().weight.numel()
    return n


def flops_per_token(config: LlamaConfig, n_params_non_embedding: int, seq_len: int) -> float:
    """Training FLOPs per token (PaLM appendix B): 6N plus attention's 12 * layers * hidden * seq."""
    lm_head = config.vocab_size * config.hidden_size
    return 6.0 * (n_params_non_embedding + lm_head) + 12.0 * config.num_hidden_layers * config.hidden_size * seq_len
