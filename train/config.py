"""YAML section `train:` -- the bundled trainer's settings, validated before any work starts.

Every sub-section is a StrictModel, so a misspelled key fails at load time with its dotted path.
Paths left unset default to the run's own output (`<output.path>/shards/*.parquet`,
`<output.path>/manifest.json`, `<output.path>/model`); `resolve_paths` fills them in.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from curate.config_base import StrictModel


class TrainDataConfig(StrictModel):
    """Where the pretraining documents come from."""

    paths: list[str] | None = Field(
        None, description="globs of .parquet / .jsonl(.gz) / .txt files; default: <output.path>/shards/*.parquet"
    )
    manifest: str | None = Field(None, description="manifest.json with the mixture; default: <output.path>/manifest.json")
    text_column: str = "text"
    use_mixture: bool = Field(True, description="sample by manifest.json's mixture weights when it has them")


class TokenizerConfig(StrictModel):
    path: str | None = Field(None, description="a tokenizer.json (or a folder holding one) to load instead of training")
    vocab_size: int = Field(8192, ge=260, le=262_144)
    sample_docs: int = Field(20_000, ge=1, description="documents (from the start of the pool) the BPE is trained on")
    min_frequency: int = Field(2, ge=1)


ModelPreset = Literal["tiny", "125m", "350m", "1b"]


class ModelConfig(StrictModel):
    preset: ModelPreset = "tiny"
    # Optional overrides of the preset (None keeps the preset's value).
    hidden_size: int | None = Field(None, ge=8)
    num_layers: int | None = Field(None, ge=1)
    num_heads: int | None = Field(None, ge=1)
    num_kv_heads: int | None = Field(None, ge=1)
    intermediate_size: int | None = Field(None, ge=8)


class OptimConfig(StrictModel):
    lr: float = Field(3e-3, gt=0)
    min_lr_ratio: float = Field(0.1, ge=0, le=1, description="cosine floor as a fraction of lr")
    weight_decay: float = Field(0.1, ge=0)
    beta1: float = Field(0.9, ge=0, lt=1)
    beta2: float = Field(0.95, ge=0, lt=1)
    eps: float = Field(1e-8, gt=0)
    grad_clip: float = Field(1.0, ge=0, description="max global grad norm; 0 disables clipping")
    warmup_steps: int = Field(20, ge=0)
    schedule: Literal["cosine", "wsd"] = "cosine"
    wsd_decay_fraction: float = Field(
        0.2, gt=0, le=1, description="wsd without annealing: share of steps spent decaying linearly to zero"
    )


class WikipediaConfig(StrictModel):
    """Real Wikipedia articles fetched once over HTTPS into `cache` (see `curate.train.wikipedia`)."""

    articles: int = Field(200, ge=1)
    seed: int = 0
    min_chars: int = Field(1000, ge=1, description="shorter articles (stubs) are skipped")
    cache: str = ".cache/eval"
    api_url: str = "https://en.wikipedia.org/w/api.php"


class AnnealConfig(StrictModel):
    """The last `fraction` of the token budget, drawn from a high-quality pool, LR linearly to zero.

    The pool is the union of: rows of the training data passing the row filters (`min_score` on
    `score_column` and/or `domains`; with neither set, no rows come from the training data), and
    every document of `paths` (a separate high-quality source such as Wikipedia text).
    """

    fraction: float = Field(0.0, ge=0, lt=1, description="0 disables annealing")
    score_column: str = "wiki_score"
    min_score: float | None = None
    domains: list[str] | None = None
    paths: list[str] = Field(default_factory=list, description="globs of .parquet / .jsonl(.gz) / .txt high-quality text")
    wikipedia: WikipediaConfig | None = Field(
        None, description="also anneal on real Wikipedia articles fetched once into a local cache (never the eval set's)"
    )

    @model_validator(mode="after")
    def _pool_selected(self) -> AnnealConfig:
        if self.fraction > 0 and self.min_score is None and not self.domains and not self.paths and self.wikipedia is None:
            raise ValueError("anneal.fraction > 0 needs a pool: set min_score, domains, paths and/or wikipedia")
        return self


class EvalConfig(StrictModel):
    paths: list[str] = Field(default_factory=list, description="held-out text (.parquet / .jsonl(.gz) / .txt globs)")
    wikipedia: WikipediaConfig | None = Field(
        None, description="also evaluate on real Wikipedia articles fetched once into a local cache (no local eval set needed)"
    )
    interval: int = Field(100, ge=1, description="evaluate every N optimizer steps (and at the end)")
    max_sequences: int = Field(256, ge=1, description="cap on held-out sequences per evaluation")
    batch_size: int = Field(16, ge=1)


class TrainConfig(StrictModel):
    data: TrainDataConfig = TrainDataConfig()
    tokenizer: TokenizerConfig = TokenizerConfig()
    model: ModelConfig = ModelConfig()
    optim: OptimConfig = OptimConfig()
    anneal: AnnealConfig = AnnealConfig()
    eval: EvalConfig = EvalConfig()

    seq_len: int = Field(256, ge=8)
    micro_batch_size: int = Field(16, ge=1, description="sequences per forward pass per process")
    grad_accum: int = Field(1, ge=1)
    tokens: int | None = Field(None, ge=1, description="token budget; steps = ceil(tokens / tokens per step)")
    max_steps: int | None = Field(None, ge=1, description="optimizer steps (when `tokens` is not set)")

    output_dir: str | None = Field(None, description="checkpoints, metrics, final model; default <output.path>/model")
    checkpoint_interval: int = Field(200, ge=1)
    keep_checkpoints: int = Field(2, ge=1)
    log_interval: int = Field(10, ge=1)
    seed: int = 0
    device: Literal["auto", "cpu", "cuda"] = "auto"
    bf16: bool = Field(True, description="bf16 autocast on CUDA (ignored on CPU)")
    compile: bool = Field(False, description="torch.compile the model")
    prefetch: int = Field(4, ge=1, description="batches prepared ahead by the background loader thread")
    progress: bool = Field(True, description="rich progress bar on rank 0")

    @model_validator(mode="after")
    def _budget(self) -> TrainConfig:
        if self.tokens is None and self.max_steps is None:
            raise ValueError("set a budget: `tokens` or `max_steps`")
        if self.tokens is not None and self.max_steps is not None:
            raise ValueError("set only one of `tokens` and `max_steps`")
        return self
