"""Per-document filters: language ID, heuristic quality (Gopher, C4, FineWeb), URL, PII."""

from __future__ import annotations

from curate.filters.config import FiltersConfig
from curate.pipeline.stage import Stage


def build_stages(cfg: FiltersConfig) -> list[Stage]:
    """The enabled filter stages, in pipeline order (they run after extraction).

    URL first (cheapest), then language ID (quality rules tokenize per detected language),
    Gopher repetition and quality, C4 (rewrites lines), FineWeb, and PII redaction last so it
    only runs on kept documents.
    """
    from curate.filters.lang import LanguageID
    from curate.filters.pii import PiiRedactor
    from curate.filters.quality import C4Quality, FineWebQuality, GopherQuality, GopherRepetition
    from curate.filters.url import UrlFilter

    order: list[tuple[bool, type, object]] = [
        (cfg.url.enabled, UrlFilter, cfg.url),
        (cfg.language.enabled, LanguageID, cfg.language),
        (cfg.gopher_repetition.enabled, GopherRepetition, cfg.gopher_repetition),
        (cfg.gopher_quality.enabled, GopherQuality, cfg.gopher_quality),
        (cfg.c4.enabled, C4Quality, cfg.c4),
        (cfg.fineweb.enabled, FineWebQuality, cfg.fineweb),
        (cfg.pii.enabled, PiiRedactor, cfg.pii),
    ]
    return [stage_cls(section) for enabled, stage_cls, section in order if enabled]


__all__ = ["FiltersConfig", "build_stages"]
