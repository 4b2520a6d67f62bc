"""YAML section `dedup:`: exact (normalised text hash, optional URL) and MinHash LSH fuzzy dedup."""

from __future__ import annotations

from pydantic import Field

from curate.config_base import StrictModel


class ExactConfig(StrictModel):
    """Exact dedup on a hash of the normalised text (and optionally of the normalised URL)."""

    enabled: bool = True
    lowercase: bool = Field(True, description="compare texts case-insensitively")
    collapse_whitespace: bool = Field(True, description="runs of whitespace count as one space; ends trimmed")
    strip_punctuation: bool = Field(False, description="ignore Unicode punctuation and symbols")
    url: bool = Field(False, description="also drop later copies of the same normalised URL as dup:url")


class MinHashConfig(StrictModel):
    """MinHash LSH near-duplicate detection (defaults: FineWeb's 5-grams, 14 bands x 8 rows)."""

    enabled: bool = True
    ngram: int = Field(5, ge=1, description="words per shingle")
    num_bands: int = Field(14, ge=1)
    rows_per_band: int = Field(8, ge=1)
    seed: int = Field(1, ge=0, description="seed of the permutations (same seed = same signatures as datasketch)")
    verify_jaccard: float | None = Field(
        0.7, ge=0.0, le=1.0,
        description="keep a candidate pair only if the Jaccard estimated from 8-bit sketches reaches this; null = trust LSH",
    )
    max_iterations: int = Field(64, ge=1, description="connected-components rounds before giving up")

    @property
    def num_perm(self) -> int:
        return self.num_bands * self.rows_per_band


class DedupSettings(StrictModel):
    """What the `dedup:` section holds besides its stages' sections (those come from the registry)."""

    rows_per_partition: int = Field(
        10_000, ge=1, description="documents per shuffle partition (at least 2 partitions per CPU): bounds one task's memory"
    )
