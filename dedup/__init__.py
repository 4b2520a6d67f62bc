"""Global deduplication: exact and MinHash LSH, over the whole run through Ray's shuffle."""

from __future__ import annotations

from curate.dedup.config import DedupConfig
from curate.pipeline.global_stage import GlobalStage


def build_global_stages(cfg: DedupConfig) -> list[GlobalStage]:
    """The enabled global dedup stages, in order (exact before fuzzy)."""
    from curate.dedup.stages import build_stages  # imports Ray Data only when a run needs it

    return build_stages(cfg)


__all__ = ["DedupConfig", "build_global_stages"]
