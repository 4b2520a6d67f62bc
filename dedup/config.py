"""YAML section `dedup:`: paragraph, exact (normalised text hash, optional URL), MinHash LSH,
semantic, and against earlier runs."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from curate.config_base import StrictModel


class TextKey(StrictModel):
    """How a text is normalised before its exact hash."""

    lowercase: bool = Field(True, description="compare texts case-insensitively")
    collapse_whitespace: bool = Field(True, description="runs of whitespace count as one space; ends trimmed")
    strip_punctuation: bool = Field(False, description="ignore Unicode punctuation and symbols")


class ExactConfig(TextKey):
    """Exact dedup on a hash of the normalised text (and optionally of the normalised URL)."""

    enabled: bool = True
    url: bool = Field(False, description="also drop later copies of the same normalised URL as dup:url")


class MinHashKeys(StrictModel):
    """MinHash signatures, LSH bands and candidate verification (defaults: FineWeb's 5-grams, 14 bands x 8 rows)."""

    ngram: int = Field(5, ge=1, description="words per shingle")
    num_bands: int = Field(14, ge=1)
    rows_per_band: int = Field(8, ge=1)
    seed: int = Field(1, ge=0, description="seed of the permutations (same seed = same signatures as datasketch)")
    verify_jaccard: float | None = Field(
        0.7, ge=0.0, le=1.0,
        description="keep a candidate pair only if the Jaccard estimated from 8-bit sketches reaches this; null = trust LSH",
    )
    verify_leaders: int = Field(
        1000, ge=1,
        description="with verification, each member of a band bucket is checked against every earlier member among "
                    "the bucket's first this many (all pairs of smaller buckets)",
    )

    @property
    def num_perm(self) -> int:
        return self.num_bands * self.rows_per_band


class MinHashConfig(MinHashKeys):
    """MinHash LSH near-duplicate detection over the run."""

    enabled: bool = True
    max_iterations: int = Field(64, ge=1, description="connected-components rounds before giving up")


class ParagraphConfig(StrictModel):
    """Paragraph (line) exact dedup, CCNet / Dolma style: repeated headers, footers, menus and
    cookie banners are cut out of the text; a document left too short is dropped."""

    enabled: bool = True
    separator: str = Field("\n", min_length=1, description="paragraph separator (trafilatura puts one line per paragraph)")
    mode: Literal["all_but_first", "threshold"] = Field(
        "all_but_first",
        description="all_but_first: keep only the first occurrence in crawl order (warc_path, warc_offset), as Dolma's BFF; "
                    "threshold: remove every occurrence of a paragraph seen at least min_occurrences times in the run, as CCNet",
    )
    min_occurrences: int = Field(3, ge=2, description="threshold mode: occurrences in the run from which a paragraph is removed")
    lowercase: bool = Field(True, description="compare paragraphs case-insensitively")
    strip_punctuation: bool = Field(True, description="ignore Unicode punctuation and symbols")
    collapse_whitespace: bool = Field(True, description="runs of whitespace count as one space; ends trimmed")
    digits_to_zero: bool = Field(True, description="every digit counts as 0 (dates, counters, prices in footers), as CCNet")
    min_chars: int = Field(
        100, ge=0, description="a document left with fewer characters (ends trimmed) is dropped as dup:paragraph",
    )


class EarlierConfig(StrictModel):
    """Dedup against earlier runs: every run writes `<output>/dedup-index/` (hashes and band keys of
    the documents it kept); documents duplicate to what a listed run kept are dropped as
    `dup:earlier:<that run's folder name>`."""

    enabled: bool = True
    runs: list[str] = Field(default_factory=list, description="output folders (or dedup-index folders) of earlier runs")
    write_index: bool = Field(True, description="write this run's index into its output folder")
    # The index's own key settings (an index is only compared with indexes of the same ones).
    text: TextKey = TextKey()
    minhash: MinHashKeys = MinHashKeys()


class SemanticConfig(StrictModel):
    """Semantic dedup (SemDedup-style): embeddings from the bundled all-MiniLM-L6-v2, spherical
    k-means through Ray, pairwise cosine within each cluster; off by default (the embedding costs
    a transformer forward pass per document)."""

    enabled: bool = False
    threshold: float = Field(0.95, gt=0.0, le=1.0, description="cosine from which a document duplicates a better-scored one")
    num_clusters: int | None = Field(None, ge=1, description="k-means clusters; null = sqrt(documents)")
    iterations: int = Field(10, ge=1, description="k-means iterations at most")
    max_tokens: int = Field(128, ge=8, le=512, description="tokens of each text the model reads")
    batch_size: int = Field(32, ge=1, description="texts per forward pass")


class DedupSettings(StrictModel):
    """What the `dedup:` section holds besides its stages' sections (those come from the registry)."""

    rows_per_partition: int = Field(
        10_000, ge=1, description="documents per shuffle partition (at least 2 partitions per CPU): bounds one task's memory"
    )
