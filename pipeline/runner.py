"""The stage graph: read -> extract -> filters (per document, streaming on Ray Data) ->
global stages (dedup) -> shards, with resume and a funnel that must add up.

Layout under `output.path`:
  work/config.json           the deciding settings and per-document prefix fingerprints of the last run
  work/read/<input>.json     per-input completion marker (what reading found, rows emitted, the
                             fingerprint of the per-document stages its docs went through)
  work/docs/<input>/*.parquet  every row of that input after the per-document stages
  work/cache/extract-<fp>/<input>/  every row after extraction (+ _SUCCESS), see `resume.py`
  work/global/<k>-<name>/     each global stage's materialized output (+ _SUCCESS, its fingerprint)
  shards/ rejected/ stats.json manifest.json report.md funnel.png

Resume: an input is finished when its marker exists, names this config's per-document
fingerprint, and its part files hold exactly the rows the marker counts; anything else about it
is redone, from the extraction cache when that holds the input under this config's extraction
fingerprint (so a changed filter threshold re-runs only the filters). A global stage is reused
when its fingerprint (its settings and its input's) is the one it was committed with. Shards
are rewritten from the sorted rows, so a resumed run yields byte-identical shards to an
uninterrupted one.
"""

from __future__ import annotations

import json
import logging
import os
import time
import warnings
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from curate import schema
from curate.config import Config, RayConfig
from curate.pipeline.domain_counts import DomainCounts
from curate.pipeline.progress import RunProgress
from curate.pipeline.resume import (
    CACHE_COMPRESSION,
    CACHED_STAGE,
    DocumentPlan,
    ExtractionCache,
    ReadCached,
    cache_schema,
    changed_settings,
    docs_marker,
    document_fingerprints,
    first_changed,
    global_fingerprints,
)
from curate.pipeline.shards import write_table_atomic
from curate.pipeline.sources import InputFile, RetryPolicy, TransferError, open_input, resolve_inputs
from curate.pipeline.stage import Resources, Stage
from curate.pipeline.storage import COMMIT_MARKER, LOCAL, Storage, basename, is_local, join
from curate.pipeline.store_pages import release_object_store_pages

log = logging.getLogger(__name__)


# ---------------------------------------------------------------------------------------------
# Per-document phase (runs inside Ray workers)


class ReadWarcs:
    """map_batches fn: a batch of input URIs -> batches of raw document rows."""

    def __init__(self, cfg: Config, read_dir: str, storage: Storage = LOCAL, docs_fingerprint: str = "") -> None:
        from curate.pipeline.warc import WarcReader

        self.reader = WarcReader(cfg.read)
        self.read_dir = str(read_dir)
        self.storage = storage
        self.docs_fingerprint = docs_fingerprint
        self.policy = RetryPolicy.of(cfg.input)

    def __call__(self, batch: pa.Table):
        from curate.pipeline.warc import ReadReport

        for uri, crawl in zip(batch.column("uri").to_pylist(), batch.column("crawl").to_pylist()):
            source = InputFile(uri, crawl)
            report = ReadReport(uri)
            t0, c0 = time.perf_counter(), time.process_time()
            try:
                stream = open_input(uri, self.policy, self.storage)
            except TransferError as err:  # retries ran out before the first byte
                report.error, report.error_detail = "warc:transfer_failed", str(err)[:300]
            except Exception as err:  # noqa: BLE001 -- a missing/unreachable file is a counted fault
                report.error, report.error_detail = f"warc:open_error:{type(err).__name__}", str(err)[:300]
            else:
                with stream:
                    rows = self.reader.read(source, stream, report)
                    while (block := next(rows, None)) is not None:
                        # Time spent reading, not waiting for downstream to take the block.
                        report.seconds += time.perf_counter() - t0
                        report.cpu_seconds += time.process_time() - c0
                        yield block
                        t0, c0 = time.perf_counter(), time.process_time()
                        # The blocks put so far are the store's now: out of this actor's RSS.
                        release_object_store_pages()
            report.seconds += time.perf_counter() - t0
            report.cpu_seconds += time.process_time() - c0
            # Written last: rows of this input are all emitted once the marker exists.
            self.storage.write_json(join(self.read_dir, f"{source.key}.json"), docs_marker(report.to_json(), self.docs_fingerprint))


MODEL_PATH_FIELDS = ("model_path", "head")


def _with_local_models(section: Any, storage: Storage) -> Any:
    """The stage's section with every model file it names on an object store (`model_path`,
    `head`) replaced by a local copy fetched once per node: fastText and numpy load from paths."""
    remote = {f: getattr(section, f) for f in MODEL_PATH_FIELDS
              if isinstance(getattr(section, f, None), str) and not is_local(getattr(section, f))}
    if not remote:
        return section
    return section.model_copy(update={f: storage.local_copy(url) for f, url in remote.items()})


class StageGroup:
    """Actor: a run of consecutive per-document stages with equal resources, fused (as Ray
    fuses task operators) so a batch is not copied through the object store between cheap
    stages, and models load once per actor.

    A batch is processed per input file. The last group writes the rows as part files of their
    input (so they never travel again), each carrying in its footer the seconds, counters and
    drops of every stage that made it: the funnel then sums exactly the work behind the rows
    that exist, across interrupted and resumed invocations alike. An earlier group hands its
    reports on in the REPORT_COLUMN of one row per input, which the next group merges.

    The group that runs the cached prefix's last stage (extraction) also writes every row after
    it to the extraction cache, as part files with the report of the work so far.
    """

    def __init__(self, cfg: Config, sections: list[str], docs_dir: str | None, run_schema: pa.Schema,
                 storage: Storage = LOCAL, cache: ExtractionCache | None = None) -> None:
        from curate.pipeline import registry

        entries = {e.path: e for e in registry.ENTRIES}
        self.stages: list[Stage] = [
            entries[s].load()(_with_local_models(registry.section_of(cfg, entries[s]), storage)) for s in sections
        ]
        self.cache = cache if cache is not None and CACHED_STAGE in sections else None
        self.cache_after = sections.index(CACHED_STAGE) if self.cache is not None else None
        self.cache_schema = cache_schema(cfg)
        self.docs_dir = str(docs_dir) if docs_dir is not None else None
        self.storage = storage
        self.schema = run_schema
        self.compression = cfg.output.compression
        self._prev: dict[str, dict[str, float]] = {}
        self.worker = f"{os.uname().nodename}:{os.getpid()}"  # which actor made a part (for load balance)
        self.node = _ray_node_id()  # and on which node of a cluster (hosts may share a name)

    def __call__(self, batch: pa.Table) -> pa.Table:
        # Earlier batches' store pages (read zero-copy, or output put) out of this actor's RSS.
        release_object_store_pages()
        paths = batch.column(schema.WARC_PATH)
        handed_on = _take_reports(batch)
        batch = batch.drop_columns([REPORT_COLUMN]) if REPORT_COLUMN in batch.column_names else batch
        out = []
        for uri in pc.unique(paths).to_pylist():
            part = batch.filter(pc.equal(paths, uri))
            report = {"seconds": {}, "cpu_seconds": {}, "dropped": {}, "flow": {}}
            cached_counters: dict[str, dict[str, float]] = {}
            for k, stage in enumerate(self.stages):
                before = schema.active_mask(part)
                rows_in, active_in = part.num_rows, pc.sum(before).as_py() or 0
                t0, c0 = time.perf_counter(), time.process_time()
                part = stage(part)
                if part.num_rows != rows_in:  # stages mark rows, never remove or add them
                    from curate.pipeline.report import AccountingError

                    raise AccountingError(f"stage {stage.name!r}: {rows_in} rows in, {part.num_rows} out")
                report["seconds"][stage.name] = time.perf_counter() - t0
                report["cpu_seconds"][stage.name] = time.process_time() - c0
                report["dropped"][stage.name] = _new_drops(stage, before, part)
                # Counted here, apart from the drops: the end-of-run accounting compares them.
                report["flow"][stage.name] = {"in": rows_in, "out": part.num_rows, "active_in": active_in,
                                              "active_out": pc.sum(schema.active_mask(part)).as_py() or 0}
                if k == self.cache_after:
                    cached_counters = self._write_cached(part, uri, handed_on.get(uri, []), report)
            report["counters"] = {**cached_counters, **self._counter_deltas()}
            report["worker"] = self.worker
            report["node"] = self.node
            report["workers"] = {stage.name: self.worker for stage in self.stages}
            report = merge_reports([*handed_on.get(uri, []), report])
            if self.docs_dir is None:
                out.append(_with_report(schema.conform(part, self.schema), report))
            else:
                write_part(part, join(self.docs_dir, InputFile(uri).key), self.compression, report, self.schema, self.storage)
        if self.docs_dir is None:
            return pa.concat_tables(out) if out else _with_report(schema.empty(self.schema), None)
        return pa.table({"rows": [batch.num_rows]})

    def _write_cached(self, part: pa.Table, uri: str, handed_on: list[dict], report: dict) -> dict[str, dict[str, float]]:
        """Write the rows after the cached prefix, with the report of the work behind them, to the
        extraction cache; return the prefix stages' counters taken for it."""
        assert self.cache is not None and self.cache_after is not None
        done = self.stages[: self.cache_after + 1]
        counters = self._counter_deltas(done)
        so_far = {**{k: dict(v) for k, v in report.items()}, "counters": counters,
                  "worker": self.worker, "node": self.node, "workers": {s.name: self.worker for s in done}}
        write_part(part, self.cache.of(InputFile(uri)), CACHE_COMPRESSION, merge_reports([*handed_on, so_far]),
                   self.cache_schema, self.storage)
        return counters

    def _counter_deltas(self, stages: list[Stage] | None = None) -> dict[str, dict[str, float]]:
        """Stage counters are cumulative per actor; keep only what changed since the last part."""
        deltas: dict[str, dict[str, float]] = {}
        for stage in self.stages if stages is None else stages:
            now = _flatten(stage.stats())
            before = self._prev.get(stage.name, {})
            d = {k: v - before.get(k, 0) for k, v in now.items() if v != before.get(k, 0)}
            if d:
                deltas[stage.name] = d
            self._prev[stage.name] = now
        return deltas


def _ray_node_id() -> str | None:
    import ray

    return ray.get_runtime_context().get_node_id() if ray.is_initialized() else None


# Stage reports of an earlier group ride along with the rows: one row per input carries them.
REPORT_COLUMN = "_stage_report"


def _with_report(table: pa.Table, report: dict | None) -> pa.Table:
    col = [None] * table.num_rows
    if table.num_rows and report is not None:
        col[0] = json.dumps(report)
    return table.append_column(REPORT_COLUMN, pa.array(col, pa.string()))


def _take_reports(batch: pa.Table) -> dict[str, list[dict]]:
    if REPORT_COLUMN not in batch.column_names:
        return {}
    has = pc.is_valid(batch.column(REPORT_COLUMN))
    rows = batch.filter(has)
    out: dict[str, list[dict]] = defaultdict(list)
    for uri, rep in zip(rows.column(schema.WARC_PATH).to_pylist(), rows.column(REPORT_COLUMN).to_pylist()):
        out[uri].append(json.loads(rep))
    return out


def _new_drops(stage: Stage, before: pa.ChunkedArray, after: pa.Table) -> dict[str, int]:
    """Rows this stage dropped, by reason; a reason outside the stage's namespaces is a bug."""
    from curate.pipeline.registry import owns

    new = pc.and_(before, pc.is_valid(after.column(schema.DROP_REASON)))
    counts = pc.value_counts(after.column(schema.DROP_REASON).filter(new)).to_pylist()
    dropped = {c["values"]: c["counts"] for c in counts}
    stray = [r for r in dropped if not owns(stage.reason_namespaces, r)]
    if stray:
        raise RuntimeError(f"stage {stage.name!r} set drop reasons {stray} outside its namespaces {stage.reason_namespaces}")
    return dropped


def merge_reports(reports: list[dict]) -> dict:
    """One report for the rows of one part: the sum of the reports of the work that made them
    (an earlier group's batches may reach this part in pieces, each with its own report)."""
    stats = StageStats()
    workers: dict[str, str] = {}
    for r in reports:
        stats.add(r)
        workers.update(r.get("workers", {}))
    # `worker`: the actor that wrote the part; `workers`: the actor each stage ran in.
    return {**stats.snapshot(), "worker": reports[-1].get("worker"), "node": reports[-1].get("node"), "workers": workers}


def plan_pools(stages: list[tuple[str, Resources]], num_cpus: float, num_gpus: float) -> list[tuple[list[str], Resources, int]]:
    """Consecutive stages with equal resources as one pool each: (sections, resources, actors).
    GPU pools get one actor per GPU share; the CPUs left are split so that every actor of every
    pool can run at once (a pool waiting for CPUs that another pool holds would hang): each later
    CPU pool gets one actor, the first (extraction, the expensive one) the rest."""
    groups: list[tuple[list[str], Resources]] = []
    for section, r in stages:
        if groups and groups[-1][1] == r:
            groups[-1][0].append(section)
        else:
            groups.append(([section], r))
    sizes = [max(1, int(num_gpus // r.num_gpus)) if r.num_gpus > 0 else 1 for _, r in groups]
    cpu_pools = [i for i, (_, r) in enumerate(groups) if r.num_gpus == 0]
    left = num_cpus - sum(n * r.num_cpus for n, (_, r) in zip(sizes, groups) if r.num_gpus > 0)
    left -= sum(groups[i][1].num_cpus for i in cpu_pools[1:])
    if cpu_pools:
        first = groups[cpu_pools[0]][1].num_cpus
        sizes[cpu_pools[0]] = max(1, int(left // first)) if first > 0 else max(1, int(num_cpus))
    return [(g, r, n) for (g, r), n in zip(groups, sizes)]


WORKER_LOSS_ATTEMPTS = 3


def _worker_lost(err: BaseException) -> BaseException | None:
    """The worker-loss error (an actor, worker process or node died) behind `err`, if any; a
    stage that raises is a bug, not a loss, and is not retried."""
    import ray.exceptions as rex

    lost = (rex.RayActorError, rex.WorkerCrashedError, rex.NodeDiedError, rex.ObjectLostError)
    seen: BaseException | None = err
    for _ in range(10):
        if seen is None:
            return None
        if isinstance(seen, lost):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None




def _wait_for_free_cpus(timeout_s: float = 60.0) -> None:
    """Ray releases the actor pools of a finished dataset asynchronously; the next dataset started
    before that sees no free CPU (and Ray Data warns that it will hang). Wait for them."""
    import ray

    deadline = time.monotonic() + timeout_s
    while not ray.available_resources().get("CPU") and time.monotonic() < deadline:
        time.sleep(0.2)


def _flatten(d: dict, prefix: str = "") -> dict[str, float]:
    out: dict[str, float] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(_flatten(v, key + "."))
        elif isinstance(v, (int, float)) and not isinstance(v, bool):
            out[key] = v
    return out


PART_STATS_KEY = b"curate.stage_stats"
# Largest block handed from reading to extraction (a reader batch is ~64 pages, a few MiB).
READ_BLOCK_BYTES = 8 << 20
# Object-store budget of the per-document phase (ray.per_document_object_store_mb overrides it):
# enough blocks in flight that no actor waits for the readers (a reader holds one input file's
# blocks). Measured (bench_memory.py throughput): 32 MiB in all starved one extraction actor
# (10 docs/s against 24-26 at 64-256 MiB); two actors ran as fast at 128 MiB as at 256.
PER_DOC_OBJECT_STORE_PER_CPU = 64 << 20
PER_DOC_OBJECT_STORE_MIN = 128 << 20
# Readers per CPU of the run: reading a WARC costs ~5% of the CPU its pages take downstream
# (0.6 of ~14 s for real-pages.warc.gz), so one reader per 8 CPUs keeps every actor fed, and a
# small machine does not spend seconds of a core starting a second reader it cannot use.
CPUS_PER_READER = 8
# How long a pool's actors may take to start (load their models) before the run fails.
ACTOR_START_TIMEOUT_S = 600
# Least seconds between two lookups of the inputs' completion markers for the progress line.
MARKER_LOOKUP_INTERVAL_S = 1.0


def per_document_object_store_budget(cfg: RayConfig, num_cpus: int) -> int:
    """Bytes of object store the per-document phase may hold: constant in input size."""
    if cfg.per_document_object_store_mb is not None:
        return cfg.per_document_object_store_mb << 20
    return max(PER_DOC_OBJECT_STORE_MIN, PER_DOC_OBJECT_STORE_PER_CPU * num_cpus)


def write_part(part: pa.Table, folder: Path | str, compression: str, report: dict, run_schema: pa.Schema = schema.DOC_SCHEMA,
               storage: Storage = LOCAL) -> None:
    """One part file of an input, sorted by offset, with the stage report in its footer (so
    rows and their statistics are written, or lost, together)."""
    table = schema.conform(part, run_schema)
    table = table.take(pc.sort_indices(table, sort_keys=[(schema.WARC_OFFSET, "ascending")]))
    table = table.replace_schema_metadata({PART_STATS_KEY: json.dumps(report).encode()})
    storage.mkdir(str(folder))
    # Named by its first record: a batch done again (its worker was lost after writing) replaces
    # its part instead of adding a second copy of the rows.
    first = table.column(schema.WARC_OFFSET)[0].as_py() if table.num_rows else 0
    write_table_atomic(table, join(folder, f"part-{first:015d}.parquet"), compression, storage)


class StageStats:
    """Seconds and counters per stage, summed over the reports in the part files."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        # CPU time of the worker process: below `seconds` when other processes took the core.
        self.cpu_seconds: dict[str, float] = defaultdict(float)
        self.counters: dict[str, Counter] = defaultdict(Counter)
        # Rows each stage dropped, by reason, counted where it dropped them.
        self.dropped: dict[str, Counter] = defaultdict(Counter)
        # Rows (and still active rows) into and out of each stage.
        self.flow: dict[str, Counter] = defaultdict(Counter)
        # Rows a stage's earlier work was taken for from the extraction cache, and its seconds then.
        self.reused: dict[str, Counter] = defaultdict(Counter)

    def add(self, report: dict) -> None:
        for k, v in report["seconds"].items():
            self.seconds[k] += v
        for k, v in report.get("cpu_seconds", {}).items():
            self.cpu_seconds[k] += v
        for stage, d in report.get("counters", {}).items():
            self.counters[stage].update(d)
        for stage, d in report.get("dropped", {}).items():
            self.dropped[stage].update(d)
        for stage, d in report.get("flow", {}).items():
            self.flow[stage].update(d)
        for stage, d in report.get("reused", {}).items():
            self.reused[stage].update(d)

    def snapshot(self) -> dict:
        return {"seconds": dict(self.seconds), "cpu_seconds": dict(self.cpu_seconds),
                "counters": {k: dict(v) for k, v in self.counters.items()},
                "dropped": {k: dict(v) for k, v in self.dropped.items()},
                "flow": {k: dict(v) for k, v in self.flow.items()},
                "reused": {k: dict(v) for k, v in self.reused.items()}}


# ---------------------------------------------------------------------------------------------
# Driver side


@dataclass
class RunResult:
    output: Path | str  # a Path for a local output, else its URL
    stats: dict
    manifest: dict
    dashboard_url: str | None = None
    skipped_inputs: int = 0
    processed_inputs: int = 0


class Runner:
    def __init__(self, cfg: Config, *, progress: bool = False, console=None) -> None:
        self.cfg = cfg
        self.storage = Storage.of(cfg.storage)
        self.out = cfg.output.path
        self.work = join(self.out, "work")
        self.read_dir = join(self.work, "read")
        self.docs_dir = join(self.work, "docs")
        self.global_dir = join(self.work, "global")
        self.plan = DocumentPlan.of(cfg)
        self.cache = ExtractionCache(join(self.work, "cache"), self.plan.cached, self.storage) if cfg.output.cache_extraction else None
        self.resume: dict = {}  # what the fingerprint check found, for stats.json
        self.progress = progress
        self.console = console
        self._prog = RunProgress(False)
        self.ids_made_distinct = 0
        self.written: dict[str, int] = {}  # rows the shard writes returned, and the rows planned

    def _say(self, msg: str) -> None:
        if self.console is not None:
            self.console.print(msg)
        else:
            log.info(msg)

    def _parquet_rows(self, files: list[str]) -> int:
        return sum(pq.ParquetFile(self.storage.open(f)).metadata.num_rows for f in files)

    # -- resume bookkeeping ------------------------------------------------------------------
    def _check_fingerprint(self) -> None:
        """Adopt the folder of an earlier run (of this config or another: each stored result is
        reused only where its own prefix fingerprint still holds), naming what changed."""
        fp_path = join(self.work, "config.json")
        fp = self.cfg.fingerprint()
        stages = document_fingerprints(self.cfg)
        if self.storage.exists(fp_path):
            old = self.storage.read_json(fp_path)
            if old.get("fingerprint") != fp:
                changed = changed_settings(old.get("config", {}), self.cfg.deciding_settings())
                redo = first_changed(old.get("stages"), stages)
                self.resume = {"changed": changed, "redo_from": redo}
                self._say(f"the config changed since the run in {self.out} (fingerprint {old.get('fingerprint')} -> {fp}): "
                          + "; ".join(changed or ["(settings not recorded by that run)"])
                          + (f"; per-document stages redone from {redo}" if redo else "; per-document results reused"))
        elif self.storage.glob(join(self.out, "*")):
            # Never adopt (and later replace shards/ and rejected/ in) a folder curate did not make.
            raise RuntimeError(f"output.path: {self.out} is not empty and was not made by curate; "
                               "choose a new or empty folder")
        self.storage.mkdir(self.work)
        self.storage.write_json(fp_path, {"fingerprint": fp, "config": self.cfg.deciding_settings(), "stages": stages})

    def _finished(self, inp: InputFile) -> dict | None:
        marker = join(self.read_dir, f"{inp.key}.json")
        if not self.storage.exists(marker):
            return None
        report = self.storage.read_json(marker)
        if report.get("fingerprint") != self.plan.docs:  # made by per-document stages of other settings
            return None
        d = join(self.docs_dir, inp.key)
        rows = sum(pq.ParquetFile(self.storage.open(p)).metadata.num_rows for p in self.storage.glob(join(d, "part-*.parquet")))
        return report if rows == report["rows"] else None

    # -- phases ------------------------------------------------------------------------------
    def _run_per_document(self, pending: list[InputFile], num_cpus: int, wait_for_actors: bool = True) -> None:
        """Every pending input into part files: read, extracted and filtered, or, where the
        extraction cache holds it, taken from the cache through the stages after extraction."""
        from curate.pipeline import registry

        for inp in pending:  # partial leftovers of an interrupted attempt, or docs of other settings
            self.storage.rmtree(join(self.docs_dir, inp.key))
            self.storage.unlink(join(self.read_dir, f"{inp.key}.json"))
        self.storage.mkdir(self.read_dir)
        self.storage.mkdir(self.docs_dir)
        cached = [i for i in pending if self.cache is not None and self.cache.report(i) is not None]
        fresh = [i for i in pending if i not in cached]
        stages = registry.document_resources(self.cfg)
        if fresh:
            for inp in fresh if self.cache is not None else ():
                self.cache.clear(inp)
            try:
                self._run_stages(fresh, num_cpus, wait_for_actors, stages, ReadWarcs,
                                 {"cfg": self.cfg, "read_dir": self.read_dir, "storage": self.storage,
                                  "docs_fingerprint": self.plan.docs})
            finally:  # also the inputs that finished before a worker was lost
                for inp in fresh if self.cache is not None else ():
                    if (report := self._finished(inp)) is not None:
                        self.cache.commit(inp, {k: v for k, v in report.items() if k not in ("fingerprint", "docs_id")})
        if cached:
            assert self.cache is not None
            _wait_for_free_cpus()  # the pools of the fresh inputs release their CPUs asynchronously
            self._say(f"{len(cached)} inputs from the extraction cache: reading and extraction skipped")
            after = [(path, res) for path, res in stages if path in self.plan.after_cache]
            self._run_stages(cached, num_cpus, wait_for_actors, after, ReadCached,
                             {"cache": self.cache, "read_dir": self.read_dir, "docs_fingerprint": self.plan.docs,
                              "cache_schema": cache_schema(self.cfg)})

    def _run_stages(self, pending: list[InputFile], num_cpus: int, wait_for_actors: bool, stages: list[tuple[str, Resources]],
                    source: type, source_kwargs: dict) -> None:
        """`source` (a map_batches class: input URIs -> rows) through the per-document `stages`,
        whose last actor pool writes each input's part files."""
        import ray
        import ray.data

        from curate.pipeline import registry

        items = [{"uri": i.uri, "crawl": i.crawl} for i in pending]
        ds = ray.data.from_items(items, override_num_blocks=len(items))
        # Ray Data coalesces a map's outputs into blocks of up to target_max_block_size (128 MiB),
        # and a block is one task downstream: a WARC's pages would reach a single extraction actor.
        # Small blocks keep each reader batch its own block, so one file spreads over every actor.
        # The setting is this dataset's own context (its maps share it), not the process-wide one.
        ds.context.target_max_block_size = READ_BLOCK_BYTES
        # The readers hold no CPU, so without a budget they read every input ahead of extraction
        # into the object store (its peak grew with the input: 61 MiB at 1x, 494 MiB at 8x).
        # A fixed budget keeps it flat in input size; Ray Data then pauses the readers.
        limits = ds.context.execution_options.resource_limits
        ds.context.execution_options.resource_limits = limits.copy(object_store_memory=per_document_object_store_budget(self.cfg.ray, num_cpus))
        # Every actor of a fixed pool is up before the first batch is handed out: otherwise the
        # actor that starts first (on a cluster, often on one node) takes the whole of a small run.
        # Not on a redo after a lost worker: the lost attempt's actors may still hold their CPUs
        # while Ray tears them down, and a blocking wait for the new pool would then never end.
        if wait_for_actors:
            ds.context.wait_for_min_actors_s = ACTOR_START_TIMEOUT_S
        with warnings.catch_warnings():
            # Ray 2.60 takes `max_restarts` only among the "ray_remote_args" it deprecates (no
            # named parameter yet); the restarts must be off (see _run_per_document_surviving).
            warnings.filterwarnings("ignore", message="`ray_remote_args` is deprecated")
            ds = ds.map_batches(
                source,
                fn_constructor_kwargs=source_kwargs,
                batch_size=1,
                batch_format="pyarrow",
                # Reading is I/O and gunzip: light enough to share cores with extraction.
                num_cpus=0,
                max_restarts=0,  # a lost worker is handled by the runner; see _run_per_document_surviving
                compute=ray.data.ActorPoolStrategy(min_size=1, max_size=max(1, min(len(items), -(-num_cpus // CPUS_PER_READER)))),
            )
            # No stage after the cache: one pool still writes the cached rows as the input's parts.
            pools = plan_pools(stages, num_cpus, ray.cluster_resources().get("GPU", 0)) or [([], Resources(), max(1, num_cpus))]
            run_schema = registry.run_schema(self.cfg)
            for k, (sections, res, actors) in enumerate(pools):
                last = k == len(pools) - 1
                ds = ds.map_batches(
                    StageGroup,
                    fn_constructor_kwargs={"cfg": self.cfg, "sections": sections, "run_schema": run_schema,
                                           "docs_dir": self.docs_dir if last else None, "storage": self.storage,
                                           "cache": self.cache},
                    batch_size=res.batch_size or self.cfg.ray.batch_size,
                    batch_format="pyarrow",
                    num_cpus=res.num_cpus,
                    num_gpus=res.num_gpus or None,
                    memory=int(res.memory_gb * 2**30) if res.memory_gb else None,
                    # Ray Data passes an actor its function through the object store; restartable
                    # actors with such arguments make Ray core log an error for every pool. A lost
                    # worker is handled by the runner instead (_run_per_document_surviving).
                    max_restarts=0,
                    # A fixed pool (an autoscaling one stayed at 1 actor on a 2-CPU budget), and at most two
                    # batches queued per actor so no actor sits on a backlog while another runs dry.
                    compute=ray.data.ActorPoolStrategy(size=actors, max_tasks_in_flight_per_actor=2),
                )
        # The actors write the rows; iterating drives the execution and feeds the progress line.
        docs, t0 = 0, time.perf_counter()
        unfinished, next_look = [i.key for i in pending], 0.0
        self._prog.start("docs", "read, extract, filter", total=len(pending), info="inputs")
        with warnings.catch_warnings():
            # Ray Data warns that the extraction pool sees few inputs when there are fewer WARC
            # files than actors; each file is read as many blocks, so every actor is busy anyway.
            warnings.filterwarnings("ignore", message="The minimum number of concurrent actors", category=UserWarning)
            for out in ds.iter_batches(batch_format="pyarrow", batch_size=None):
                docs += int(pc.sum(out.column("rows")).as_py() or 0)
                # The markers of the inputs not yet finished, at most once a second: on an object store
                # each lookup is a request, and batches come far more often than inputs finish.
                if (now := time.perf_counter()) >= next_look:
                    unfinished = [k for k in unfinished if not self.storage.exists(join(self.read_dir, f"{k}.json"))]
                    next_look = now + MARKER_LOOKUP_INTERVAL_S
                self._prog.update("docs", completed=len(pending) - len(unfinished),
                                  info=f"inputs, {docs:,} documents ({docs / (time.perf_counter() - t0):.0f}/s)")
        self._prog.finish("docs")

    def _run_per_document_surviving(self, pending: list[InputFile], num_cpus: int) -> None:
        """The per-document phase, redone for the inputs a lost worker (or node) left unfinished:
        their parts are deleted and written anew, so the output is exactly a clean run's."""
        todo = pending
        for attempt in range(1, WORKER_LOSS_ATTEMPTS + 1):
            try:
                self._run_per_document(todo, num_cpus, wait_for_actors=attempt == 1)
            except Exception as err:
                if attempt == WORKER_LOSS_ATTEMPTS or not _worker_lost(err):
                    raise
                self._say(f"a worker was lost ({type(_worker_lost(err)).__name__}); redoing the inputs it left unfinished")
            todo = [i for i in pending if self._finished(i) is None]
            if not todo:
                return

    def _stage_stats(self, inputs: list[InputFile]) -> dict:
        """Seconds and counters per stage, summed from the footers of every part file."""
        stats = StageStats()
        for path in self._doc_files(inputs):
            meta = pq.read_schema(self.storage.open(path)).metadata or {}
            if PART_STATS_KEY in meta:
                stats.add(json.loads(meta[PART_STATS_KEY]))
        return stats.snapshot()

    def _doc_files(self, inputs: list[InputFile]) -> list[str]:
        files: list[str] = []
        for inp in inputs:
            files += self.storage.glob(join(self.docs_dir, inp.key, "part-*.parquet"))
        return files

    def _run_global(self, files: list[str], fingerprints: list[tuple[str, str]], num_cpus: int) -> tuple[list[str], dict]:
        """Each global stage over the output of the one before; one committed in an earlier run
        under the same fingerprint (its settings and its input's) is reused."""
        import ray.data

        from curate.pipeline import registry
        from curate.pipeline.global_stage import GlobalContext

        stats: dict[str, dict] = {}
        stages = registry.build_stages(self.cfg, "global")
        run_schema = registry.run_schema(self.cfg)
        folders = [join(self.global_dir, f"{k}-{stage.name}") for k, stage in enumerate(stages)]
        for stale in self.storage.glob(join(self.global_dir, "*")):  # stages no longer in the run
            if basename(stale) not in {basename(f) for f in folders}:  # glob's paths are absolute, the config's may not be
                self.storage.rmtree(stale)
        current = files
        for stage, d, (_, fp) in zip(stages, folders, fingerprints):
            _wait_for_free_cpus()
            self._prog.start(stage.name, stage.name, total=1)
            if self.storage.committed(d) and (done := self.storage.read_json(join(d, COMMIT_MARKER))).get("fingerprint") == fp:
                stats[stage.name] = {**done, "reused": True}
                current = self.storage.glob(join(d, "*.parquet"))
                self._prog.finish(stage.name, info="done in an earlier run, reused")
                continue
            self.storage.rmtree(d)
            tmp = self.storage.staging(d)
            self.storage.rmtree(tmp)
            self.storage.mkdir(join(tmp, "work"))
            ctx = GlobalContext(work_dir=join(tmp, "work"), num_cpus=num_cpus, input_files=list(current),
                                rows_per_partition=self.cfg.dedup.rows_per_partition, schema=run_schema, storage=self.storage,
                                run_dir=self.out)
            t0 = time.perf_counter()
            read_fs, read_paths = self.storage.arrow_paths(current)
            ds = (ray.data.read_parquet(read_paths, schema=run_schema, filesystem=read_fs) if current
                  else ray.data.from_arrow(schema.empty(run_schema)))
            out = stage.run(ds, ctx)
            _wait_for_free_cpus()  # the stage's own tasks may still hold them for a moment
            write_fs, write_path = self.storage.arrow_filesystem(tmp)
            out.write_parquet(write_path, filesystem=write_fs, min_rows_per_file=max(1, self.cfg.output.rows_per_shard))
            self.storage.rmtree(join(tmp, "work"))
            # Rows in and out, from the files' own metadata, for the end-of-run accounting.
            ctx.stats["rows_in"] = self._parquet_rows(current)
            ctx.stats["rows_out"] = self._parquet_rows(self.storage.glob(join(tmp, "*.parquet")))
            ctx.stats["total_seconds"] = round(time.perf_counter() - t0, 3)
            ctx.stats["fingerprint"] = fp
            self.storage.publish(tmp, d, ctx.stats)
            stats[stage.name] = ctx.stats
            current = self.storage.glob(join(d, "*.parquet"))
            self._prog.finish(stage.name, info=f"{ctx.stats['total_seconds']:.1f} s")
        return current, stats

    def _write_outputs(self, files: list[str]) -> tuple[list[dict], list[dict], Counter, DomainCounts, int]:
        """Fixed-size shards of the kept and the rejected rows, in (warc_path, warc_offset) order."""
        from curate.pipeline import registry
        from curate.pipeline.shards import plan_shards, write_shards

        if not self.storage.exists(join(self.work, "config.json")):  # the marker of a folder curate made
            raise RuntimeError(f"refusing to replace shards/ and rejected/ in {self.out}: not a curate output folder")
        for sub in ("shards", "rejected"):
            self.storage.rmtree(join(self.out, sub))
            self.storage.mkdir(join(self.out, sub))
        out = self.cfg.output
        # Labelled runs write shards by topic, so a trainer or a user can take one topic's files.
        partition = schema.TOPIC if self.cfg.classifiers.topics.enabled else None
        pii = self.cfg.filters.pii
        plan = plan_shards(files, self.out, out.rows_per_shard, out.compression, out.rejected_text, registry.run_schema(self.cfg),
                           self.storage, partition_by=partition, redact_rejected=pii if pii.enabled else None)
        specs = plan.kept + plan.rejected
        self._prog.start("shards", "write shards", total=len(specs), info="files")
        written = write_shards(specs, on_done=lambda _: self._prog.update("shards", advance=1))
        kept, rejected = written[: len(plan.kept)], written[len(plan.kept):]
        self.ids_made_distinct = plan.ids_made_distinct
        self.written = {"kept": sum(e["rows"] for e in kept), "rejected": sum(e["rows"] for e in rejected),
                        "planned_kept": plan.reasons.get(None, 0), "planned_rejected": plan.rows - plan.reasons.get(None, 0)}
        domain_tokens = DomainCounts()  # bounded: a crawl's millions of domains never all reach the driver
        for entry in kept:
            domain_tokens.merge(entry["domain_tokens"])
        for entry in written:
            del entry["domain_tokens"]
        return kept, rejected, plan.reasons, domain_tokens, plan.rows

    def _resume_stats(self, snap: dict, global_stats: dict) -> dict:
        """What this run took from earlier runs, what changed, and what the extraction cache holds."""
        out = {**self.resume, "reused_from_cache": snap.get("reused", {}),
               "global_reused": [name for name, g in global_stats.items() if g.get("reused")]}
        if self.cache is not None:
            size, rows = self.cache.bytes_and_rows()
            out["extraction_cache"] = {"bytes": size, "rows": rows, "bytes_per_1000_docs": round(1000 * size / rows) if rows else 0}
        return out

    # -- the whole run -----------------------------------------------------------------------
    def run(self, num_cpus: int, dashboard_url: str | None = None) -> RunResult:
        from curate.pipeline import registry
        from curate.pipeline.report import build_stats, check_accounting, write_report

        t_start = time.perf_counter()
        self._check_fingerprint()
        if self.cache is not None:
            self.cache.drop_others()
        else:  # switched off: the disk it took is freed
            self.storage.rmtree(join(self.work, "cache"))
        inputs = resolve_inputs(self.cfg.input, self.storage)
        done = {i.key: r for i in inputs if (r := self._finished(i)) is not None}
        pending = [i for i in inputs if i.key not in done]
        self._say(f"inputs: {len(inputs)} ({len(done)} finished earlier, {len(pending)} to process)")
        with RunProgress(self.progress, self.console) as self._prog:
            t0 = time.perf_counter()
            if pending:
                self._run_per_document_surviving(pending, num_cpus)
                for i in pending:
                    r = self._finished(i)
                    if r is None:
                        raise RuntimeError(f"input {i.uri} did not finish (marker/rows mismatch)")
                    done[i.key] = r
            per_doc_seconds = time.perf_counter() - t0
            snap = self._stage_stats(inputs)
            snap["seconds"]["read"] = sum(done[i.key].get("seconds", 0.0) for i in inputs)
            snap["cpu_seconds"]["read"] = sum(done[i.key].get("cpu_seconds", 0.0) for i in inputs)
            docs_ids = {i.key: done[i.key].get("docs_id", "") for i in inputs}
            files, global_stats = self._run_global(self._doc_files(inputs), global_fingerprints(self.cfg, self.plan.docs, docs_ids),
                                                   num_cpus=num_cpus)
            t1 = time.perf_counter()
            shards, rejected, reasons, domain_tokens, total = self._write_outputs(files)
            write_seconds = time.perf_counter() - t1
        reports = [done[i.key] for i in inputs]
        check_accounting(sum(r["rows"] for r in reports), [e.load().name for e in registry.enabled_entries(self.cfg, "document")],
                         snap.get("flow", {}), global_stats, self.written)
        stats = build_stats(
            self.cfg, reports, reasons, snap, global_stats, total,
            seconds={"per_document": per_doc_seconds, "write": write_seconds, "total": time.perf_counter() - t_start},
            processed_inputs=len(pending),
        )
        stats["ids_made_distinct"] = self.ids_made_distinct  # pages sharing a WARC-Record-ID with another
        stats["resume"] = self._resume_stats(snap, global_stats)
        manifest = write_report(self.cfg, self.out, stats, reports, shards, rejected, domain_tokens, self.storage)
        output = Path(self.out) if is_local(self.out) else self.out
        return RunResult(output, stats, manifest, dashboard_url, skipped_inputs=len(inputs) - len(pending), processed_inputs=len(pending))
