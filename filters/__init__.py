"""Per-document filters: language ID, heuristic quality (Gopher, C4, FineWeb), URL, PII."""

from __future__ import annotations

from curate.filters.config import FiltersConfig
from curate.pipeline.stage import Stage


def build_stages(cfg: FiltersConfig) -> list[Stage]:
    """The enabled filter stages, in pipeline order (they run after extraction)."""
    return []


__all__ = ["FiltersConfig", "build_stages"]
