"""The bundled trainer: tokenizer, shard loader with mixture sampling, pretraining + annealing.

Importing this package stays cheap (the run config imports `curate.train.config`); torch and
transformers load only when training starts.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from curate.config import Config

__all__ = ["run_training"]


def run_training(cfg: Config, resume: bool = True) -> Path:
    """Train per `cfg.train` on the run's shards (`cfg.output.path`); return the final model folder."""
    if cfg.train is None:
        raise ValueError("the config has no `train:` section")
    from curate.pipeline.storage import Storage
    from curate.train.loop import resolve_inputs, train

    return train(cfg.train, resolve_inputs(cfg.train, cfg.output.path, Storage.of(cfg.storage)), resume=resume)
