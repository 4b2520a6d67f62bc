"""`curate train CONFIG` and `curate generate MODEL_DIR` (registered by curate/cli.py)."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from curate.config import Config


def add_subcommands(subparsers) -> None:
    p = subparsers.add_parser("train", help="train a model on a run's shards (the config's `train:` section)")
    p.add_argument("config", help="the run YAML with a `train:` section")
    p.add_argument("--fresh", action="store_true", help="ignore existing checkpoints and start over")
    p.set_defaults(func=train_command)

    g = subparsers.add_parser("generate", help="sample text from a trained model folder")
    g.add_argument("model_dir")
    g.add_argument("--prompt", default="", help="text to continue (empty: start from end-of-text)")
    g.add_argument("--max-new-tokens", type=int, default=64)
    g.add_argument("--num-samples", type=int, default=1)
    g.add_argument("--temperature", type=float, default=0.8, help="0 = greedy")
    g.add_argument("--top-k", type=int, default=50)
    g.add_argument("--seed", type=int, default=0)
    g.set_defaults(func=generate_command)


def load_train_config(path: str, why: str = "") -> Config | None:
    """The run config of a command that trains, or None once it printed why it cannot (exit 2)."""
    from curate.config import ConfigError, load_config

    try:
        cfg = load_config(path)
    except ConfigError as err:
        print(err, file=sys.stderr)
        return None
    if cfg.train is None:
        print(f"{path}: no `train:` section{why}", file=sys.stderr)
        return None
    return cfg


def train_command(args: argparse.Namespace) -> int:
    cfg = load_train_config(args.config)
    if cfg is None:
        return 2
    from curate.train import run_training

    final = run_training(cfg, resume=not args.fresh)
    print(f"model saved to {final}")
    return 0


def generate(model_dir: str, prompt: str, max_new_tokens: int, num_samples: int = 1,
             temperature: float = 0.8, top_k: int = 50, seed: int = 0) -> list[str]:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.manual_seed(seed)
    tok = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    model.eval()
    ids = tok(prompt, add_special_tokens=False)["input_ids"] if prompt else []
    # Starting a sample at a document boundary is what the model saw during training.
    input_ids = torch.tensor([[tok.eos_token_id, *ids]] * num_samples)
    sampling = temperature > 0
    out = model.generate(
        input_ids=input_ids,
        attention_mask=torch.ones_like(input_ids),
        max_new_tokens=max_new_tokens,
        do_sample=sampling,
        temperature=temperature if sampling else None,
        top_k=top_k if sampling else None,
        pad_token_id=tok.pad_token_id,
        eos_token_id=tok.eos_token_id,
        use_cache=True,
    )
    return [prompt + tok.decode(row[input_ids.shape[1]:], skip_special_tokens=True) for row in out]


def generate_command(args: argparse.Namespace) -> int:
    for i, text in enumerate(generate(args.model_dir, args.prompt, args.max_new_tokens, args.num_samples,
                                      args.temperature, args.top_k, args.seed)):
        if args.num_samples > 1:
            print(f"--- sample {i + 1}")
        print(text)
    return 0
