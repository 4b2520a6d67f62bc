"""`curate classifier build-data CONFIG`: a labelled training set for the Wikipedia-reference
quality classifier, from Wikipedia's citations and a Common Crawl crawl.

- Positives (label `wiki`, source `wikipedia_cited`): URLs Wikipedia cites (an
  `enwiki-*-externallinks.sql.gz` dump or a URL list), N sampled with a seed (optionally one per
  registered domain), each looked up in the crawl's CDX index and fetched as its single WARC
  record by HTTP Range.
- Negatives (label `cc`, source `cc_random`): random response records of random WARC files of the
  same crawl (`warc.paths.gz`).
- Both go through the pipeline's own WARC reading, extraction and the configured `filters:`
  stages, so the classifier learns on text exactly as the pipeline will score it.

Output under `output.path`: `data.parquet` (`text, label, url, domain, source` and where the
record lives: `crawl, warc_filename, warc_offset, warc_length`) and `counts.json`: per class,
how many were asked, found (in the index / in the random windows), fetched, kept after each step, the faults by kind and
the requests made. Work runs as Ray tasks, one per chunk of URLs (or of random records of one
WARC file); a chunk's results are committed by a marker, and a rerun redoes only the chunks
without one.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import random
import shutil
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from pydantic import Field, model_validator

from curate import schema
from curate.config import (
    COMMONCRAWL_HTTPS,
    CommonCrawlInput,
    ConfigError,
    ExtractConfig,
    FiltersConfig,
    RayConfig,
    ReadConfig,
    RemoteInput,
    read_yaml_mapping,
    validate_section,
)
from curate.config_base import StrictModel
from curate.pipeline.sources import RangeIgnored, RetryPolicy, TransferError

log = logging.getLogger(__name__)

LABEL = "label"
SOURCE = "source"
POSITIVE_SOURCE = "wikipedia_cited"
NEGATIVE_SOURCE = "cc_random"

OUTPUT_SCHEMA = pa.schema([
    pa.field(schema.TEXT, pa.large_string()),
    pa.field(LABEL, pa.string()),  # the fastText label: `wiki` (cited by Wikipedia) or `cc` (random page)
    pa.field(schema.URL, pa.string()),  # the captured URL (WARC-Target-URI)
    pa.field(schema.DOMAIN, pa.string()),
    pa.field(SOURCE, pa.string()),
    pa.field(schema.LANG, pa.string()),
    pa.field(schema.CRAWL, pa.string()),
    pa.field("warc_filename", pa.string()),
    pa.field("warc_offset", pa.int64()),
    pa.field("warc_length", pa.int64()),
])


# ---------------------------------------------------------------------------------------------
# Config


class PositivesConfig(StrictModel):
    """Where the cited URLs come from and how many to take."""

    externallinks: str | None = Field(None, description="enwiki-<date>-externallinks.sql(.gz): path, https:// or s3:// URL")
    url_list: str | None = Field(None, description="instead: a file of URLs, one per line (.gz allowed)")
    count: int = Field(10_000, ge=1, description="URLs to sample (before index lookup and filters)")
    seed: int = 0
    one_per_domain: bool = Field(True, description="at most one URL per registered domain")
    label: str = Field("wiki", pattern=r"^\S+$", description="the label of these rows (the classifier's positive label)")

    @model_validator(mode="after")
    def _one_source(self) -> PositivesConfig:
        if (self.externallinks is None) == (self.url_list is None):
            raise ValueError("give exactly one of externallinks, url_list")
        return self


class NegativesConfig(StrictModel):
    """Random records of the same crawl."""

    count: int | None = Field(None, ge=1, description="records to sample; default: positives.count")
    warc_files: int = Field(20, ge=1, description="random WARC files of the crawl's warc.paths.gz to sample from")
    seed: int = 0
    window_bytes: int = Field(1 << 19, ge=4096, description="bytes read at each random offset; records larger than this are never picked")
    per_window: int = Field(1, ge=1, description="records taken from one window (neighbours often share a site)")
    label: str = Field("cc", pattern=r"^\S+$", description="the label of these rows")


class CommonCrawlIndexConfig(RemoteInput):
    """The crawl, its CDX index server and the data endpoint, with their rate limits."""

    crawl: str = Field(pattern=r"^CC-MAIN-\d{4}-\d{2}$", description="crawl id, e.g. CC-MAIN-2024-10")
    index: Literal["cdx", "columnar"] = Field("cdx", description="look URLs up in the CDX server API, or in the columnar index (Parquet)")
    cdx_url: str = Field("https://index.commoncrawl.org/", description="CDX server API base (the crawl's `<crawl>-index` below it)")
    columnar_url: str = Field("s3://commoncrawl/cc-index/table/cc-main/warc/",
                              description="root of the columnar index table (hive partitions crawl=/subset=); s3:// needs AWS credentials")
    data_url: str = Field(COMMONCRAWL_HTTPS, description="where `filename`s of the index (and warc.paths.gz) are served")
    cdx_requests_per_s: float | None = Field(1.0, gt=0, description="index lookups a second, all workers together; null: no limit")
    data_requests_per_s: float | None = Field(20.0, gt=0, description="Range requests a second, all workers together; null: no limit")


class BuildOutputConfig(StrictModel):
    path: str = Field(description="folder for data.parquet, counts.json and the work/ of chunks")
    compression: str = Field("zstd", pattern="^(zstd|snappy|gzip|none)$")


class BuildDataConfig(StrictModel):
    positives: PositivesConfig
    negatives: NegativesConfig = NegativesConfig()
    common_crawl: CommonCrawlIndexConfig
    output: BuildOutputConfig
    read: ReadConfig = ReadConfig()
    extract: ExtractConfig = ExtractConfig()
    filters: FiltersConfig = FiltersConfig()
    ray: RayConfig = RayConfig()
    chunk_size: int = Field(50, ge=1, description="URLs (or random records) per Ray task")
    concurrency: int = Field(4, ge=1, description="tasks at once; the request rates are split over them")

    def fingerprint(self) -> str:
        """Hash of what decides the data (not where or how fast it runs)."""
        data = self.model_dump(mode="json", exclude={"ray", "concurrency", "output"})
        for key in ("cdx_requests_per_s", "data_requests_per_s", "retries", "backoff_s", "timeout_s"):
            data["common_crawl"].pop(key)
        return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]

    @property
    def negative_count(self) -> int:
        return self.negatives.count or self.positives.count


def parse_build_config(data: dict) -> BuildDataConfig:
    return validate_section(BuildDataConfig, data)


def load_build_config(path: str | Path) -> BuildDataConfig:
    return parse_build_config(read_yaml_mapping(path, "positives, common_crawl, output, ..."))


# ---------------------------------------------------------------------------------------------
# One chunk: fetched records -> reading, extraction, filters -> labelled rows


@dataclass
class FetchedRecord:
    data: bytes  # one WARC record (a gzip member)
    filename: str  # in the crawl, relative to data_url
    offset: int
    length: int


@dataclass
class ChunkCounts:
    """What happened to one chunk; summed over chunks into counts.json."""

    asked: int = 0
    found: int = 0  # positives: URLs with a 200 capture in the index; negatives: records in the windows
    fetched: int = 0  # records fetched whole
    steps: dict[str, int] = field(default_factory=dict)  # documents left after each step, in order
    kept: int = 0
    faults: Counter = field(default_factory=Counter)  # kind -> count (index, fetch, read faults)
    dropped: Counter = field(default_factory=Counter)  # drop_reason -> documents
    requests: Counter = field(default_factory=Counter)  # cdx, cdx_retries, data, waited_s
    seconds: float = 0.0

    def to_json(self) -> dict:
        return {"asked": self.asked, "found": self.found, "fetched": self.fetched, "steps": self.steps,
                "kept": self.kept, "faults": dict(sorted(self.faults.items())), "dropped": dict(self.dropped.most_common()),
                "requests": {k: round(v, 3) for k, v in sorted(self.requests.items())}, "seconds": round(self.seconds, 3)}


class RecordPipeline:
    """The pipeline's reading, extraction and heuristic filters over single fetched records."""

    def __init__(self, cfg: BuildDataConfig) -> None:
        from curate.pipeline import registry
        from curate.pipeline.extract import Extract
        from curate.pipeline.warc import WarcReader

        self.crawl = cfg.common_crawl.crawl
        self.data_url = cfg.common_crawl.data_url
        self.reader = WarcReader(cfg.read)
        # The registry's `filters:` stages in their order; never `classifiers:` (this data trains them).
        self.stages = [Extract(cfg.extract), *registry.build_stages(cfg.filters, group="filters")]

    def run(self, records: list[FetchedRecord], label: str, source: str, counts: ChunkCounts) -> pa.Table:
        from curate.pipeline.sources import InputFile
        from curate.pipeline.warc import ReadReport

        tables, where = [], []
        for rec in records:
            report = ReadReport(rec.filename)
            src = InputFile(f"{self.data_url.rstrip('/')}/{rec.filename}", self.crawl)
            got = list(self.reader.read(src, io.BytesIO(rec.data), report))
            if report.error:
                counts.faults[f"read:{report.error}"] += 1
            rows = sum(t.num_rows for t in got)
            if rows == 0 and not report.error:
                counts.faults["read:no_response_record"] += 1  # e.g. the index pointed at a revisit
            tables += got
            where += [rec] * rows
        if not tables:
            counts.steps.update({step: 0 for step in ("read", *(s.name for s in self.stages))})
            return OUTPUT_SCHEMA.empty_table()
        batch = pa.concat_tables(tables)
        counts.steps["read"] = _active(batch)
        for stage in self.stages:
            batch = stage(batch)
            counts.steps[stage.name] = _active(batch)
        counts.dropped.update(r for r in batch.column(schema.DROP_REASON).to_pylist() if r is not None)
        keep = schema.active_mask(batch)
        kept_where = [w for w, k in zip(where, keep.to_pylist()) if k]
        kept = batch.filter(keep)
        counts.kept += kept.num_rows
        return pa.table({
            schema.TEXT: kept.column(schema.TEXT),
            LABEL: pa.array([label] * kept.num_rows, pa.string()),
            schema.URL: kept.column(schema.URL),
            schema.DOMAIN: kept.column(schema.DOMAIN),
            SOURCE: pa.array([source] * kept.num_rows, pa.string()),
            schema.LANG: kept.column(schema.LANG),
            schema.CRAWL: pa.array([self.crawl] * kept.num_rows, pa.string()),
            "warc_filename": pa.array([w.filename for w in kept_where], pa.string()),
            "warc_offset": pa.array([w.offset for w in kept_where], pa.int64()),
            "warc_length": pa.array([w.length for w in kept_where], pa.int64()),
        }).cast(OUTPUT_SCHEMA)


def _active(batch: pa.Table) -> int:
    return int(pc.sum(schema.active_mask(batch)).as_py() or 0)


def _fetch_fault(err: Exception) -> str:
    if isinstance(err, RangeIgnored):
        return "fetch:range_ignored"
    if isinstance(err, TransferError):
        return "fetch:transfer_failed"
    if isinstance(err, FileNotFoundError):
        return "fetch:not_found"
    return f"fetch:error:{type(err).__name__}"


def positive_chunk(cfg: BuildDataConfig, urls: list[str]) -> tuple[pa.Table, dict]:
    """Look up, fetch and process one chunk of cited URLs."""
    import requests

    from curate.pipeline.cc_index import CdxClient, CdxError, TokenBucket, best_capture, fetch_record

    t0 = time.perf_counter()
    cc = cfg.common_crawl
    policy = RetryPolicy.of(cc)
    counts = ChunkCounts(asked=len(urls))
    session = requests.Session()
    cdx = CdxClient(cc.cdx_url, cc.crawl, policy, TokenBucket(TokenBucket.per_worker(cc.cdx_requests_per_s, cfg.concurrency)), session)
    data_bucket = TokenBucket(TokenBucket.per_worker(cc.data_requests_per_s, cfg.concurrency))
    records: list[FetchedRecord] = []
    columnar = _columnar_hits(cc, urls, counts) if cc.index == "columnar" else None
    for url in urls:
        try:
            hits = cdx.lookup(url) if columnar is None else columnar.get(url, [])
        except CdxError as err:
            counts.faults[f"index:{err.kind}"] += 1
            continue
        hit = best_capture(hits)
        if hit is None:
            counts.faults["index:not_found" if not hits else "index:no_200_capture"] += 1
            continue
        counts.found += 1
        try:
            data, attempts = fetch_record(cc.data_url, hit, policy, session=session, throttle=data_bucket.acquire)
        except (OSError, ValueError) as err:
            counts.faults[_fetch_fault(err)] += 1
            continue
        counts.requests["data"] += attempts
        counts.fetched += 1
        records.append(FetchedRecord(data, hit.filename, hit.offset, hit.length))
    counts.requests.update({"cdx": cdx.requests, "cdx_retries": cdx.retries})
    counts.requests["waited_s"] += cdx.limiter.waited_s + data_bucket.waited_s
    table = RecordPipeline(cfg).run(records, cfg.positives.label, POSITIVE_SOURCE, counts)
    counts.seconds = time.perf_counter() - t0
    return table, counts.to_json()


def _columnar_hits(cc: CommonCrawlIndexConfig, urls: list[str], counts: ChunkCounts) -> dict[str, list]:
    """The chunk's captures from the columnar index, in one scan."""
    from curate.pipeline.cc_index import ColumnarIndex
    from curate.pipeline.warc import _domain_extractor, registered_domain

    extractor = _domain_extractor()
    domains = sorted({d for u in urls if (d := registered_domain(u, extractor))})
    index = ColumnarIndex(cc.columnar_url, cc.crawl)
    found = index.lookup_many(urls, domains)
    counts.requests["columnar_scans"] += index.scans
    return found


def negative_chunk(cfg: BuildDataConfig, warc_filename: str, n: int, seed: str) -> tuple[pa.Table, dict]:
    """`n` random records of one WARC file of the crawl, processed."""
    import requests

    from curate.pipeline.cc_index import SampleStats, TokenBucket, sample_records

    t0 = time.perf_counter()
    cc = cfg.common_crawl
    counts = ChunkCounts(asked=n)
    bucket = TokenBucket(TokenBucket.per_worker(cc.data_requests_per_s, cfg.concurrency))
    stats = SampleStats()
    records: list[FetchedRecord] = []
    try:
        sampled = sample_records(f"{cc.data_url.rstrip('/')}/{warc_filename}", n, random.Random(seed), RetryPolicy.of(cc),
                                 window_bytes=cfg.negatives.window_bytes, per_window=cfg.negatives.per_window,
                                 session=requests.Session(), throttle=bucket.acquire, stats=stats)
    except (OSError, ValueError) as err:  # the file as a whole: missing, Range ignored, gave up
        counts.faults[_fetch_fault(err)] += 1
    else:
        records = [FetchedRecord(rec.data, warc_filename, rec.offset, len(rec.data)) for rec in sampled]
        if len(records) < n:  # the windows ran out before n distinct records turned up
            counts.faults["sample:short"] += n - len(records)
    counts.found = counts.fetched = len(records)
    counts.requests.update({"data": stats.requests, "windows": stats.windows, "empty_windows": stats.empty_windows,
                            "waited_s": bucket.waited_s})
    table = RecordPipeline(cfg).run(records, cfg.negatives.label, NEGATIVE_SOURCE, counts)
    counts.seconds = time.perf_counter() - t0
    return table, counts.to_json()


# ---------------------------------------------------------------------------------------------
# Driver: sample, plan chunks, run the missing ones as Ray tasks, gather


def read_cited_urls(cfg: PositivesConfig) -> tuple[list[str], dict]:
    """The sampled cited URLs and what the input held (rows, urls, not_http)."""
    from curate.classifiers.externallinks import externallinks_urls, maybe_gunzip, sample_urls, url_list
    from curate.pipeline.sources import open_input
    from curate.pipeline.warc import _domain_extractor, registered_domain

    counts: Counter = Counter()
    name = cfg.externallinks or cfg.url_list
    assert name is not None  # the config validator guarantees one
    extractor = _domain_extractor()
    group_of: Callable[[str], str | None] | None = (lambda u: registered_domain(u, extractor)) if cfg.one_per_domain else None
    with open_input(name) as raw:
        stream = maybe_gunzip(raw, name)
        urls = externallinks_urls(stream, counts) if cfg.externallinks else url_list(stream, counts)
        sample = sample_urls(urls, cfg.count, cfg.seed, group_of)
    return sample, {"input": name, **counts, "sampled": len(sample)}


@dataclass
class Chunk:
    name: str  # pos-00000 / neg-00000: its files under work/chunks/
    positive: bool
    urls: list[str] = field(default_factory=list)  # positives
    warc_filename: str = ""  # negatives
    n: int = 0
    seed: str = ""


def plan_negatives(cfg: BuildDataConfig) -> list[Chunk]:
    """The negative chunks: the wanted count spread evenly over random WARC files of the crawl
    (chosen by the pipeline's own seeded pick from warc.paths.gz), at most chunk_size each."""
    from curate.pipeline.sources import resolve_inputs

    cc = cfg.common_crawl
    listing = CommonCrawlInput(source="commoncrawl", crawl=cc.crawl, files=cfg.negatives.warc_files, seed=cfg.negatives.seed,
                               base_url=cc.data_url, retries=cc.retries, backoff_s=cc.backoff_s, timeout_s=cc.timeout_s)
    files = [f.uri[len(cc.data_url.rstrip("/")) + 1:] for f in resolve_inputs(listing)]
    total = cfg.negative_count
    chunks: list[Chunk] = []
    for i, filename in enumerate(files):
        share = total // len(files) + (1 if i < total % len(files) else 0)
        for part, start in enumerate(range(0, share, cfg.chunk_size)):
            chunks.append(Chunk(f"neg-{len(chunks):05d}", False, warc_filename=filename, n=min(cfg.chunk_size, share - start),
                                seed=f"{cfg.negatives.seed}:{filename}:{part}"))
    return chunks


def _run_chunk(cfg: BuildDataConfig, chunk: Chunk, chunk_dir: str) -> dict:
    """Ray task body: process a chunk, write its rows, then its counts (the completion marker)."""
    if chunk.positive:
        table, counts = positive_chunk(cfg, chunk.urls)
    else:
        table, counts = negative_chunk(cfg, chunk.warc_filename, chunk.n, chunk.seed)
    folder = Path(chunk_dir)
    from curate.pipeline.shards import write_table_atomic

    write_table_atomic(table, folder / f"{chunk.name}.parquet", cfg.output.compression)
    _atomic_write_json(counts, folder / f"{chunk.name}.json")
    return counts


def _atomic_write_json(obj: Any, path: Path) -> None:
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    tmp.write_text(json.dumps(obj, indent=2, default=str))
    os.replace(tmp, path)


def _sum_into(total: dict, part: dict) -> None:
    for k, v in part.items():
        if isinstance(v, dict):
            _sum_into(total.setdefault(k, {}), v)
        else:
            total[k] = round(total.get(k, 0) + v, 3)


@dataclass
class BuildResult:
    output: Path
    counts: dict
    rows: int
    chunks_run: int
    chunks_reused: int


class DataBuilder:
    """Plans the chunks of a build, runs the unfinished ones on Ray and writes the output."""

    def __init__(self, cfg: BuildDataConfig, say: Callable[[str], None] = log.info) -> None:
        self.cfg = cfg
        self.out = Path(cfg.output.path)
        self.work = self.out / "work"
        self.chunk_dir = self.work / "chunks"
        self.say = say

    def _check_fingerprint(self) -> None:
        path = self.work / "config.json"
        fp = self.cfg.fingerprint()
        if path.exists():
            old = json.loads(path.read_text())["fingerprint"]
            if old != fp:
                raise ConfigError(f"{self.out} holds a build of a different config (fingerprint {old} != {fp}); "
                                  "choose another output.path or delete that folder")
        else:
            self.chunk_dir.mkdir(parents=True, exist_ok=True)
            _atomic_write_json({"fingerprint": fp, "config": self.cfg.model_dump(mode="json")}, path)

    def _positives(self) -> tuple[list[str], dict]:
        """The sampled URLs, computed once (a dump pass takes minutes) and kept in work/."""
        import ray

        path = self.work / "positives.json"
        if path.exists():
            saved = json.loads(path.read_text())
            return saved["urls"], saved["input"]
        # A task, so the dump is read where the workers are (and the driver stays light).
        urls, info = ray.get(ray.remote(read_cited_urls).options(num_cpus=1).remote(self.cfg.positives))
        _atomic_write_json({"urls": urls, "input": info}, path)
        return urls, info

    def _done(self, chunk: Chunk) -> dict | None:
        marker = self.chunk_dir / f"{chunk.name}.json"
        if marker.exists() and (self.chunk_dir / f"{chunk.name}.parquet").exists():
            return json.loads(marker.read_text())
        return None

    def run(self) -> BuildResult:
        import ray

        t0 = time.perf_counter()
        self._check_fingerprint()
        urls, source_info = self._positives()
        self.say(f"positives: {len(urls):,} URLs sampled from {source_info['input']} ({source_info.get('urls', 0):,} http(s) URLs read)")
        size = self.cfg.chunk_size
        chunks = [Chunk(f"pos-{i // size:05d}", True, urls=urls[i:i + size]) for i in range(0, len(urls), size)]
        chunks += plan_negatives(self.cfg)
        done = {c.name: r for c in chunks if (r := self._done(c)) is not None}
        pending = [c for c in chunks if c.name not in done]
        self.say(f"chunks: {len(chunks)} ({len(done)} finished earlier, {len(pending)} to run, {self.cfg.concurrency} at once)")
        task = ray.remote(_run_chunk).options(num_cpus=1, max_retries=2)
        in_flight: dict[Any, Chunk] = {}
        queue = list(pending)
        while queue or in_flight:
            while queue and len(in_flight) < self.cfg.concurrency:
                chunk = queue.pop(0)
                in_flight[task.remote(self.cfg, chunk, str(self.chunk_dir))] = chunk
            ready, _ = ray.wait(list(in_flight), num_returns=1)
            chunk = in_flight.pop(ready[0])
            done[chunk.name] = ray.get(ready[0])
            self.say(f"  {chunk.name}: {done[chunk.name]['kept']} kept of {done[chunk.name]['asked']} asked "
                     f"({len(done)}/{len(chunks)} chunks)")
        rows, duplicates = self._write_output(chunks)
        counts = self._counts(chunks, done, source_info, rows, duplicates, time.perf_counter() - t0, len(pending))
        _atomic_write_json(counts, self.out / "counts.json")
        return BuildResult(self.out, counts, rows, len(pending), len(chunks) - len(pending))

    def _write_output(self, chunks: list[Chunk]) -> tuple[int, int]:
        """data.parquet: the chunks in plan order, one in memory at a time; a URL already taken
        for its label (two windows hit one record, or a page captured twice) is left out."""
        seen: set[tuple[bool, str]] = set()
        rows = duplicates = 0
        tmp = self.out / f".data.parquet.{uuid.uuid4().hex}.tmp"
        compression = None if self.cfg.output.compression == "none" else self.cfg.output.compression
        with pq.ParquetWriter(tmp, OUTPUT_SCHEMA, compression=compression) as writer:
            for chunk in chunks:
                table = pq.read_table(self.chunk_dir / f"{chunk.name}.parquet")
                keep = []
                for url in table.column(schema.URL).to_pylist():
                    key = (chunk.positive, url)
                    keep.append(key not in seen)
                    seen.add(key)
                duplicates += keep.count(False)
                table = table.filter(pa.array(keep, pa.bool_()))
                writer.write_table(table)
                rows += table.num_rows
        os.replace(tmp, self.out / "data.parquet")
        return rows, duplicates

    def _counts(self, chunks: list[Chunk], done: dict[str, dict], source_info: dict, rows: int, duplicates: int,
                seconds: float, chunks_run: int) -> dict:
        per_class: dict[str, dict] = {}
        for chunk in chunks:
            name = "positives" if chunk.positive else "negatives"
            _sum_into(per_class.setdefault(name, {}), done[chunk.name])
        for c in per_class.values():  # the most common reasons first
            c["dropped"] = dict(sorted(c.get("dropped", {}).items(), key=lambda kv: -kv[1]))
        return {
            "crawl": self.cfg.common_crawl.crawl,
            "positives_input": source_info,
            **per_class,
            "duplicates_left_out": duplicates,
            "rows": rows,
            "chunks": len(chunks),
            "chunks_run": chunks_run,
            "seconds": round(seconds, 2),
        }


def remove_work(out: str | Path) -> None:
    """Delete a build's chunks (`--fresh`)."""
    shutil.rmtree(Path(out) / "work", ignore_errors=True)
