"""YAML section `classifiers:` -- one sub-section per fastText classifier stage.

`classifiers.wiki_quality` is the Wikipedia-reference classifier (the shipped model by default);
`classifiers.dclm` takes any other binary fastText classifier (e.g. DCLM's). Each writes its own
score column, and both may run in one pipeline. A section keeps documents either above
`min_score` or, as a global stage over the whole run, the `top_fraction` with the highest scores
(or neither: it only scores).
"""

from __future__ import annotations

import re

from pydantic import Field, field_validator, model_validator

from curate.classifiers.normalize import DEFAULT_MAX_WORDS
from curate.config_base import StrictModel

_NAME_RE = re.compile(r"^[a-z][a-z0-9_]*$")
DEFAULT_SCORE_COLUMN = "wiki_score"


class ClassifierConfig(StrictModel):
    """One fastText binary classifier scoring every kept document."""

    enabled: bool = True
    model_path: str | None = Field(
        None, description="a fastText .bin/.ftz classifier; default: the shipped Wikipedia-reference model"
    )
    positive_label: str = Field("wiki", description="the model's label (without __label__) whose probability is the score")
    score_column: str = Field(DEFAULT_SCORE_COLUMN, description="float32 column the score is written to")
    max_words: int = Field(
        DEFAULT_MAX_WORDS, ge=0, description="tokens of each document the model sees (0 = all); must match how it was trained"
    )
    min_score: float | None = Field(None, ge=0.0, le=1.0, description="drop documents scoring below this")
    top_fraction: float | None = Field(
        None, gt=0.0, le=1.0, description="keep this fraction of the run's kept documents with the highest scores (global)"
    )
    batch_size: int = Field(256, ge=1, description="documents per fastText predict call")
    histogram_bins: int = Field(20, ge=2, le=1000, description="bins over [0, 1] of the score histogram in the stats")

    @field_validator("score_column")
    @classmethod
    def _column_name(cls, v: str) -> str:
        if not _NAME_RE.match(v):
            raise ValueError("must be lower_snake_case (letters, digits, _), starting with a letter")
        return v

    @model_validator(mode="after")
    def _one_rule(self) -> ClassifierConfig:
        if self.min_score is not None and self.top_fraction is not None:
            raise ValueError("set min_score or top_fraction, not both")
        return self

    @property
    def keeps_top_fraction(self) -> bool:
        """Whether the section's global top-fraction stage runs."""
        return self.enabled and self.top_fraction is not None


class WikiQualityConfig(ClassifierConfig):
    """`classifiers.wiki_quality`: the Wikipedia-reference classifier; the shipped model unless
    `model_path`."""

    enabled: bool = False


class DclmConfig(ClassifierConfig):
    """`classifiers.dclm`: DCLM's OpenHermes/ELI5 fastText quality model (labels `hq` / `cc`),
    or any other binary fastText classifier: download it and set `model_path`."""

    enabled: bool = False
    positive_label: str = "hq"
    score_column: str = "dclm_score"

    @model_validator(mode="after")
    def _model_given(self) -> DclmConfig:
        if self.enabled and self.model_path is None:
            raise ValueError("model_path is required (no DCLM model ships with curate)")
        return self


class ClassifiersSettings(StrictModel):
    """YAML section `classifiers:`: one sub-section per registered classifier."""

    @model_validator(mode="after")
    def _distinct_columns(self) -> ClassifiersSettings:
        columns: dict[str, str] = {}
        for name in type(self).model_fields:
            section = getattr(self, name)
            if getattr(section, "enabled", False) and hasattr(section, "score_column"):
                if section.score_column in columns:
                    raise ValueError(f"classifiers {columns[section.score_column]} and {name} both write "
                                     f"score_column {section.score_column!r}")
                columns[section.score_column] = name
        return self


class FastTextTrainConfig(StrictModel):
    """`curate classifier train`: fastText supervised settings and the held-out split."""

    positive_label: str = "wiki"
    negative_label: str = "cc"
    held_out_fraction: float = Field(0.3, gt=0.0, lt=1.0, description="share of registered domains held out for evaluation")
    train_only_domains: list[str] = Field(
        default_factory=list,
        description="domains always on the training side (a one-site reference corpus such as wikipedia.org)",
    )
    seed: int = 0
    balance: bool = Field(True, description="repeat the rarer label's training rows until both labels are equally frequent")
    max_words: int = Field(DEFAULT_MAX_WORDS, ge=0)
    epoch: int = Field(25, ge=1)
    lr: float = Field(0.2, gt=0)
    dim: int = Field(16, ge=2)
    word_ngrams: int = Field(2, ge=1)
    minn: int = Field(0, ge=0, description="shortest character n-gram of a word's subword features (0 = off, with maxn 0)")
    maxn: int = Field(0, ge=0, description="longest character n-gram (0 = off)")
    max_rows_per_domain: int = Field(
        0, ge=0, description="training rows kept per domain, a seeded sample (0 = all): stops one big site dominating a label"
    )
    min_count: int = Field(2, ge=1)
    bucket: int = Field(200_000, ge=1000, description="hash buckets for word n-grams")
    quantize_cutoff: int = Field(10_000, ge=0, description="words/n-grams kept by quantization (0 = all)")
    quantize_retrain: bool = Field(True, description="fine-tune the kept embeddings after the cutoff (at lr / 4)")
    threshold: float = Field(0.5, gt=0.0, lt=1.0, description="score at which precision/recall/F1 are reported")

    @model_validator(mode="after")
    def _char_ngrams(self) -> FastTextTrainConfig:
        if (self.minn > 0) != (self.maxn > 0) or self.maxn < self.minn:
            raise ValueError("character n-grams need 1 <= minn <= maxn, or minn = maxn = 0 (off)")
        return self
