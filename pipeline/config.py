"""YAML section `extract:` (main-text extraction, the first per-document stage)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from curate.config_base import StrictModel


class ExtractConfig(StrictModel):
    engine: Literal["trafilatura", "resiliparse"] = "trafilatura"
    favor_precision: bool = True
    include_comments: bool = False
    include_tables: bool = True
    timeout_s: float = Field(10.0, gt=0, description="per-document limit; a page over it is dropped as error:extract_timeout")
    min_text_chars: int = Field(1, ge=0, description="shorter extractions are dropped as extract:empty")
    reuse_by_digest: bool = Field(
        True, description="a record whose WARC-Payload-Digest (and size, charset) this actor already extracted reuses that result"
    )
    reuse_cache_entries: int = Field(4096, ge=1, description="results kept per actor for reuse_by_digest (least recently used go first)")
    fast_prune: bool = Field(
        True, json_schema_extra={"output_neutral": True},
        description="evaluate trafilatura's pruning XPaths in Python (pipeline/fast_prune.py): the same text, ~1.35x faster",
    )
    repair_mojibake: bool = Field(True, description="repair UTF-8 read as Latin-1/cp1252 in the text (schÃ¶n -> schön, ftfy); counted")


class ResourcesOverride(StrictModel):
    """`resources:` of a per-document stage's section: what one actor of it reserves, over the
    stage's own defaults. A stage whose resources differ from its neighbours' runs in its own
    actor pool (e.g. more memory for a model, or a GPU)."""

    num_cpus: float | None = Field(None, ge=0)
    num_gpus: float | None = Field(None, ge=0)
    memory_gb: float | None = Field(None, gt=0)
    batch_size: int | None = Field(None, ge=1, description="documents per batch; default ray.batch_size")
