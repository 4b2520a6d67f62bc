"""The stage registry: every stage of a run, keyed by its YAML section, in pipeline order.

Adding a stage is one module (its `Stage` or `GlobalStage` class and its pydantic config
section) plus one `Entry` in `ENTRIES`. Everything else reads this list: the config
(`curate.config` builds the top-level stage sections and the `filters:`, `classifiers:` and
`dedup:` groups from it), the runner (which stages run, in which order, fused into which actor
pools), and the funnel and report (which stage owns a drop reason).

Order: per-document stages run in the order below on every batch, then the global stages over
the whole run, in their order.
- `extract` first (raw page -> text);
- `filters.url` before anything that reads the text (it decides on the URL alone, the cheapest);
- `filters.language` before the quality rules (they tokenize per detected language);
- Gopher repetition and quality, C4 (rewrites lines), FineWeb;
- `filters.pii` last of the filters, so it redacts only documents the rules kept;
- model-based classifiers (`classifiers.*`) on the filtered, redacted text;
- global: exact dedup before MinHash (cheap exact groups first; MinHash then sees one copy);
  paragraph dedup after both, on the documents they kept: run first, it would cut a copy of a
  page into the lines that differ from the original (a near copy would live on as a fragment,
  and an exact copy would go without its survivor chosen by score); after them it only meets
  lines shared by distinct pages (headers, footers, menus). Then semantic dedup (off by
  default) on the cleaned texts, and the earlier-runs stage last, so the index it writes holds
  what the run keeps.
"""

from __future__ import annotations

import dataclasses
import importlib
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, create_model

from curate.config_base import StrictModel
from curate.dedup.config import DedupSettings, EarlierConfig, ExactConfig, MinHashConfig, ParagraphConfig, SemanticConfig
from curate.filters.config import (
    C4Config,
    FineWebConfig,
    GopherQualityConfig,
    GopherRepetitionConfig,
    LanguageConfig,
    PiiConfig,
    UrlConfig,
)
from curate.pipeline.config import ExtractConfig, ResourcesOverride

if TYPE_CHECKING:
    import pyarrow as pa

    from curate.pipeline.global_stage import GlobalStage
    from curate.pipeline.stage import Resources, Stage


@dataclass(frozen=True)
class Entry:
    """One registered stage."""

    section: str  # dotted YAML path ("filters.language"); a one-part path is a top-level section
    config: type[StrictModel]  # the section's model; an `enabled` field switches the stage
    stage: str  # "module:Class", imported only when a run builds it (config stays light to import)
    kind: Literal["document", "global"] = "document"

    @property
    def group(self) -> str | None:
        return self.section.split(".")[0] if "." in self.section else None

    @property
    def key(self) -> str:
        return self.section.split(".")[-1]

    def load(self) -> type:
        module, _, cls = self.stage.partition(":")
        return getattr(importlib.import_module(module), cls)


ENTRIES: tuple[Entry, ...] = (
    Entry("extract", ExtractConfig, "curate.pipeline.extract:Extract"),
    Entry("filters.url", UrlConfig, "curate.filters.url:UrlFilter"),
    Entry("filters.language", LanguageConfig, "curate.filters.lang:LanguageID"),
    Entry("filters.gopher_repetition", GopherRepetitionConfig, "curate.filters.quality:GopherRepetition"),
    Entry("filters.gopher_quality", GopherQualityConfig, "curate.filters.quality:GopherQuality"),
    Entry("filters.c4", C4Config, "curate.filters.quality:C4Quality"),
    Entry("filters.fineweb", FineWebConfig, "curate.filters.quality:FineWebQuality"),
    Entry("filters.pii", PiiConfig, "curate.filters.pii:PiiRedactor"),
    Entry("dedup.exact", ExactConfig, "curate.dedup.stages:ExactDedup", kind="global"),
    Entry("dedup.minhash", MinHashConfig, "curate.dedup.stages:MinHashDedup", kind="global"),
    Entry("dedup.paragraph", ParagraphConfig, "curate.dedup.paragraph:ParagraphDedup", kind="global"),
    Entry("dedup.semantic", SemanticConfig, "curate.dedup.semantic:SemanticDedup", kind="global"),
    Entry("dedup.earlier", EarlierConfig, "curate.dedup.earlier:EarlierRunsDedup", kind="global"),
)

#: Groups of sections, with the settings they hold besides their stages' sections.
GROUPS: dict[str, type[StrictModel]] = {"filters": StrictModel, "classifiers": StrictModel, "dedup": DedupSettings}


@cache
def section_model(entry: Entry) -> type[StrictModel]:
    """The entry's config model as its YAML section: a per-document stage's section also takes
    `resources:` (ResourcesOverride)."""
    if entry.kind != "document":
        return entry.config
    return create_model(entry.config.__name__, __base__=entry.config, __doc__=entry.config.__doc__,
                        resources=(ResourcesOverride | None, Field(None, description="override what one actor reserves")))


def _field(entry: Entry) -> tuple[type[StrictModel], Any]:
    model = section_model(entry)
    return model, Field(default_factory=model)


@cache
def group_model(group: str) -> type[StrictModel]:
    """The pydantic model of a group section (e.g. `filters:`), one field per registered stage."""
    fields: dict[str, Any] = {e.key: _field(e) for e in ENTRIES if e.group == group}
    name = "".join(part.capitalize() for part in group.split("_")) + "Config"
    return create_model(name, __base__=GROUPS[group], __doc__=f"YAML section `{group}:`", **fields)


def top_level_fields() -> dict[str, Any]:
    """The run config's fields that come from the registry: each group, and each top-level stage."""
    fields: dict[str, Any] = {g: (group_model(g), Field(default_factory=group_model(g))) for g in GROUPS}
    fields.update({e.key: _field(e) for e in ENTRIES if e.group is None})
    return fields


def section_of(cfg: Any, entry: Entry) -> StrictModel:
    """The entry's section in a run config (or in a group config, when `cfg` is one)."""
    if entry.group is None or not hasattr(cfg, entry.group):
        return getattr(cfg, entry.key)
    return getattr(getattr(cfg, entry.group), entry.key)


def enabled_entries(cfg: Any, kind: Literal["document", "global"], group: str | None = None) -> list[Entry]:
    """Entries of `kind` switched on in `cfg` (a run config, or a group config with `group`)."""
    out = []
    for e in ENTRIES:
        if e.kind != kind or (group is not None and e.group != group):
            continue
        if group is None and e.group is not None and not hasattr(cfg, e.group):
            continue
        if getattr(section_of(cfg, e), "enabled", True):
            out.append(e)
    return out


def build_stages(cfg: Any, kind: Literal["document", "global"] = "document", group: str | None = None) -> list[Any]:
    """The enabled stages of `kind`, constructed from their sections, in pipeline order."""
    stages = [e.load()(section_of(cfg, e)) for e in enabled_entries(cfg, kind, group)]
    check_namespaces(stages)
    return stages


def check_namespaces(stages: list[Stage | GlobalStage | type]) -> None:
    """No drop-reason namespace of one stage may equal or contain another stage's: then every
    reason has exactly one owner."""
    seen: list[tuple[str, str]] = []
    for s in stages:
        for ns in s.reason_namespaces:
            for other, ons in seen:
                if other != s.name and (ns == ons or ns.startswith(ons + ":") or ons.startswith(ns + ":")):
                    raise ValueError(f"stages {other!r} and {s.name!r} both claim drop reasons {ons!r} / {ns!r}")
            seen.append((s.name, ns))


def owns(namespaces: tuple[str, ...], reason: str) -> bool:
    """Whether `reason` (`ns:detail` or `error:ns:detail`) falls under one of `namespaces`."""
    bare = reason.removeprefix("error:")
    return any(r == ns or r.startswith(ns + ":") for ns in namespaces for r in (reason, bare))


def run_schema(cfg: Any) -> pa.Schema:
    """DOC_SCHEMA plus every extra column the enabled per-document stages write."""
    from curate import schema

    return schema.with_fields([f for e in enabled_entries(cfg, "document") for f in e.load().output_fields(section_of(cfg, e))])


def reason_owners(cfg: Any) -> list[tuple[str, tuple[str, ...]]]:
    """(stage name, drop-reason namespaces) of every enabled stage, in pipeline order."""
    classes = [e.load() for kind in ("document", "global") for e in enabled_entries(cfg, kind)]
    check_namespaces(classes)
    return [(cls.name, tuple(cls.reason_namespaces)) for cls in classes]


def document_resources(cfg: Any) -> list[tuple[str, Resources]]:
    """(section, resources) of every enabled per-document stage, in order: the stage's own
    declaration, with what its section's `resources:` sets on top."""
    out = []
    for e in enabled_entries(cfg, "document"):
        section = section_of(cfg, e)
        res = e.load().resources(section)
        override = getattr(section, "resources", None)
        if override is not None:
            res = dataclasses.replace(res, **override.model_dump(exclude_none=True))
        out.append((e.section, res))
    return out
