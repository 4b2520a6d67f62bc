"""Finer resume: a fingerprint per stage prefix, so that a rerun with changed settings starts
from the longest prefix whose result is stored, and says what changed.

Per-document stages run in registry order. The fingerprint of a prefix hashes the fingerprint
of the prefix before it with the next stage's own settings (its section without `resources:`,
plus its group's shared settings), starting from the reader's settings. Two prefixes are kept:
- the extraction prefix (reading up to and including `extract`, 80%+ of a run's cost): every row
  of each input after extraction, before the filters decide, as zstd Parquet under
  `work/cache/extract-<fingerprint>/<input>/`, committed per input by a marker that holds the
  reader's report (so a rerun needs neither the WARC nor trafilatura);
- all per-document stages: `work/docs/<input>/`, whose read marker names their fingerprint.
A global stage's fingerprint hashes its own settings onto its input's: the per-document prefix
and which docs each input has (an id written with them), or the global stage before it.
"""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from dataclasses import dataclass
from typing import Any, Iterator

import pyarrow as pa
import pyarrow.parquet as pq

from curate import schema
from curate.pipeline import registry
from curate.pipeline.sources import InputFile
from curate.pipeline.storage import COMMIT_MARKER, Storage, basename, join
from curate.pipeline.store_pages import release_object_store_pages

#: The last stage of the cached prefix: the expensive one.
CACHED_STAGE = "extract"
CACHE_COMPRESSION = "zstd"
_MISSING = "<absent>"


def _digest(*parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


def stage_settings(cfg: Any, entry: registry.Entry) -> dict[str, Any]:
    """What decides a stage's output: its section (not the resources an actor reserves, nor
    output-neutral fields) and the settings its group shares among its stages (e.g.
    `dedup.rows_per_partition`)."""
    section_cfg = registry.section_of(cfg, entry)
    # Fields marked output-neutral (e.g. extract.fast_prune: the same text, faster) change no row.
    neutral = {name for name, f in type(section_cfg).model_fields.items()
               if isinstance(f.json_schema_extra, dict) and f.json_schema_extra.get("output_neutral")}
    section = section_cfg.model_dump(mode="json", exclude={"resources"} | neutral)
    shared: dict[str, Any] = {}
    if entry.group is not None:
        stage_keys = {e.key for e in registry.ENTRIES if e.group == entry.group}
        shared = getattr(cfg, entry.group).model_dump(mode="json", exclude=stage_keys)
    return {"section": section, "shared": shared}


def document_fingerprints(cfg: Any) -> list[tuple[str, str]]:
    """(entry path, fingerprint of the prefix that ends with it) of every enabled per-document
    stage, in order, after ("read", the reader's own)."""
    fp = _digest("read", cfg.read.model_dump(mode="json"))
    out = [("read", fp)]
    for e in registry.enabled_entries(cfg, "document"):
        fp = _digest(fp, e.path, stage_settings(cfg, e))
        out.append((e.path, fp))
    return out


def global_fingerprints(cfg: Any, docs_fingerprint: str, docs_ids: dict[str, str]) -> list[tuple[str, str]]:
    """(entry path, fingerprint) of every enabled global stage, in order; `docs_ids`: input key
    -> the id of the docs written for it (a redone input gets a new one)."""
    fp = _digest(docs_fingerprint, sorted(docs_ids.items()), cfg.output.rows_per_shard)
    out = []
    for e in registry.enabled_entries(cfg, "global"):
        fp = _digest(fp, e.path, stage_settings(cfg, e))
        out.append((e.path, fp))
    return out


@dataclass(frozen=True)
class DocumentPlan:
    """The per-document stages split at the cached prefix."""

    docs: str  # fingerprint of all per-document stages
    cached: str  # fingerprint of the extraction prefix (reading up to CACHED_STAGE)
    after_cache: tuple[str, ...]  # entry paths of the stages after it

    @classmethod
    def of(cls, cfg: Any) -> DocumentPlan:
        fps = document_fingerprints(cfg)
        paths = [p for p, _ in fps]
        cut = paths.index(CACHED_STAGE)
        return cls(docs=fps[-1][1], cached=fps[cut][1], after_cache=tuple(paths[cut + 1:]))


def changed_settings(old: Any, new: Any, prefix: str = "") -> list[str]:
    """Dotted keys whose values differ between two config dumps, as `key: old -> new`."""
    if isinstance(old, dict) and isinstance(new, dict):
        out: list[str] = []
        for k in sorted(set(old) | set(new)):
            out += changed_settings(old.get(k, _MISSING), new.get(k, _MISSING), f"{prefix}{k}.")
        return out
    return [] if old == new else [f"{prefix.rstrip('.')}: {old!r} -> {new!r}"]


def first_changed(old: list[list[str]] | None, new: list[tuple[str, str]]) -> str | None:
    """The first stage whose prefix fingerprint differs from the earlier run's (None: none)."""
    before = dict(map(tuple, old or []))
    for path, fp in new:
        if before.get(path) != fp:
            return path
    return None


def docs_marker(read_report: dict, docs_fingerprint: str) -> dict:
    """An input's read marker: the reader's report, the fingerprint of the stages its docs went
    through, and a new id for those docs (global stages over them are redone when it changes)."""
    return {**read_report, "fingerprint": docs_fingerprint, "docs_id": uuid.uuid4().hex}


# ---------------------------------------------------------------------------------------------
# The extraction cache


def as_reused(report: dict) -> dict:
    """A cached part's stage report as the work behind rows a later run takes from the cache:
    the rows' flow and drops stay (the funnel and its accounting are the same as a clean run's),
    the seconds and counters become `reused` (this run did not spend them)."""
    reused = {stage: {"rows": flow.get("in", 0), "seconds": report.get("seconds", {}).get(stage, 0.0)}
              for stage, flow in report.get("flow", {}).items()}
    return {"seconds": {}, "cpu_seconds": {}, "counters": {}, "dropped": report.get("dropped", {}),
            "flow": report.get("flow", {}), "reused": reused, "workers": report.get("workers", {}),
            "worker": report.get("worker"), "node": report.get("node")}


@dataclass(frozen=True)
class ExtractionCache:
    """Every row of each input after the extraction prefix, under one fingerprint."""

    root: str  # work/cache
    fingerprint: str
    storage: Storage

    @property
    def folder(self) -> str:
        return join(self.root, f"extract-{self.fingerprint}")

    def of(self, inp: InputFile) -> str:
        return join(self.folder, inp.key)

    def parts(self, inp: InputFile) -> list[str]:
        return self.storage.glob(join(self.of(inp), "part-*.parquet"))

    def report(self, inp: InputFile) -> dict | None:
        """The reader's report of a committed input (same crawl label), else None."""
        marker = join(self.of(inp), COMMIT_MARKER)
        if not self.storage.exists(marker):
            return None
        report = self.storage.read_json(marker)
        return report if report.get("crawl") == inp.crawl else None

    def clear(self, inp: InputFile) -> None:
        self.storage.rmtree(self.of(inp))

    def commit(self, inp: InputFile, read_report: dict) -> bool:
        """Commit an input whose parts hold every row the reader emitted; False if they do not
        (a part was lost with its worker): then it is not cached."""
        rows = sum(pq.ParquetFile(self.storage.open(p)).metadata.num_rows for p in self.parts(inp))
        if rows != read_report["rows"]:
            self.clear(inp)
            return False
        self.storage.write_json(join(self.of(inp), COMMIT_MARKER), {**read_report, "crawl": inp.crawl})
        return True

    def drop_others(self) -> None:
        """One generation is kept: the caches of other extraction settings go."""
        for folder in self.storage.glob(join(self.root, "extract-*")):
            if basename(folder) != basename(self.folder):  # glob's paths are absolute, the config's may not be
                self.storage.rmtree(folder)

    def bytes_and_rows(self) -> tuple[int, int]:
        files = self.storage.glob(join(self.folder, "*", "part-*.parquet"))
        rows = sum(pq.ParquetFile(self.storage.open(p)).metadata.num_rows for p in files)
        return sum(self.storage.size(p) for p in files), rows


class ReadCached:
    """map_batches fn, in place of reading and extraction: a batch of input URIs -> the rows
    the extraction cache holds for them, one block per cached part whose first row carries the
    part's report (as reused work); then each input's read marker, as ReadWarcs writes it."""

    def __init__(self, cache: ExtractionCache, read_dir: str, docs_fingerprint: str, cache_schema: pa.Schema) -> None:
        self.cache = cache
        self.read_dir = read_dir
        self.docs_fingerprint = docs_fingerprint
        self.schema = cache_schema

    def __call__(self, batch: pa.Table) -> Iterator[pa.Table]:
        from curate.pipeline.runner import PART_STATS_KEY, _with_report

        storage = self.cache.storage
        for uri, crawl in zip(batch.column("uri").to_pylist(), batch.column("crawl").to_pylist()):
            inp = InputFile(uri, crawl)
            read_report = self.cache.report(inp)
            if read_report is None:
                raise RuntimeError(f"the extraction cache of {uri} went missing during the run")
            t0, c0, seconds, cpu_seconds = time.perf_counter(), time.process_time(), 0.0, 0.0
            for path in self.cache.parts(inp):
                with storage.open(path) as fh:
                    part = pq.read_table(fh)
                report = json.loads((part.schema.metadata or {})[PART_STATS_KEY])
                part = schema.conform(part, self.schema)
                seconds, cpu_seconds = seconds + time.perf_counter() - t0, cpu_seconds + time.process_time() - c0
                yield _with_report(part, as_reused(report))
                t0, c0 = time.perf_counter(), time.process_time()
                release_object_store_pages()  # the parts put so far are the store's, not this actor's
            report = {**read_report, "seconds": round(seconds + time.perf_counter() - t0, 3),
                      "cpu_seconds": round(cpu_seconds + time.process_time() - c0, 3),
                      "reused_seconds": read_report.get("seconds", 0.0), "from_cache": self.cache.fingerprint}
            report.pop("crawl", None)
            storage.write_json(join(self.read_dir, f"{inp.key}.json"), docs_marker(report, self.docs_fingerprint))


def cache_schema(cfg: Any) -> pa.Schema:
    """The columns of the extraction prefix's rows: DOC_SCHEMA plus what its stages add."""
    paths = [p for p, _ in document_fingerprints(cfg)]
    prefix = set(paths[1: paths.index(CACHED_STAGE) + 1])
    return schema.with_fields([f for e in registry.enabled_entries(cfg, "document") if e.path in prefix
                               for f in e.load().output_fields(registry.section_of(cfg, e))])
