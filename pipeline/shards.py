"""Fixed-size Parquet shards in (warc_path, warc_offset) order, written in parallel by Ray tasks.

The rows of a run live in many Parquet files (per-input parts, or a global stage's output). No
row's key ever reaches the driver, so its memory does not grow with the rows of a run:
1. one task per file counts its rows per (warc_path, kept or rejected, partition value, drop
   reason), and hands its ids on, bucketed by a hash of the id, to a few tasks that find the ids
   two different pages share (what comes back is one row per renamed id: rare);
2. the driver lays the counts out in warc_path order: every input's rows form one run of ranks
   in the output, so the shards of `rows_per_shard` rows (the last may be shorter) are cuts
   through those runs: a shard is a list of (warc_path, first rank, last rank) segments;
3. each shard is one Ray task that reads the key columns of the files holding its segments,
   orders each input's rows by (warc_offset, id), reads just the rows it needs and writes its
   file atomically.
What the driver holds is O(inputs x files holding each), never O(rows). The same rows give
byte-identical shards however the files were split.
"""

from __future__ import annotations

import re
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from math import ceil
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from curate import schema
from curate.filters.config import PiiConfig
from curate.pipeline.domain_counts import DomainCounts
from curate.pipeline.storage import LOCAL, Storage, basename, join

# Words and punctuation marks: a tokenizer-free token count, close to a GPT-2 pre-tokenizer's.
TOKEN_PATTERN = r"\w+|[^\w\s]"
# Total order of the output: the position in the crawl, then the id for the impossible tie.
SORT_KEYS = [schema.WARC_PATH, schema.WARC_OFFSET, schema.ID]
_ROW_GROUP_ROWS = 2048
# Id buckets: one per this many files, at most ID_BUCKETS_MAX, so the objects between the two
# steps grow linearly with the files (files x buckets) and no bucket task holds every id.
FILES_PER_ID_BUCKET = 32
ID_BUCKETS_MAX = 64
_KEPT, _VALUE, _REASON, _ROWS, _FILE, _ROW = "_kept", "_value", "_reason", "_rows", "_file", "_row"
# Of a file's rows of one input and kind: the first and last offset, and rows without one.
_FIRST, _LAST, _NULLS = "_first_offset", "_last_offset", "_null_offsets"


def count_tokens(texts: pa.ChunkedArray | pa.Array) -> list[int]:
    return pc.count_substring_regex(pc.fill_null(texts, ""), TOKEN_PATTERN).to_pylist()


def write_table_atomic(table: pa.Table, path: Path | str, compression: str, storage: Storage = LOCAL) -> None:
    """Readers never see a half-written file (see `Storage.write_parquet`)."""
    storage.write_parquet(table, str(path), compression=None if compression == "none" else compression,
                          row_group_size=_ROW_GROUP_ROWS)


@dataclass(frozen=True)
class Segment:
    """The rows of one input ranked lo..hi-1 (in (warc_offset, id) order) among that input's
    rows of the shard's kind, found in `files` ((index in the run's file list, path))."""

    warc_path: str
    lo: int
    hi: int
    files: tuple[tuple[int, str], ...]


@dataclass
class ShardSpec:
    """One output file: which rows (segments of inputs, in output order) of which kind."""

    folder: str
    name: str
    compression: str
    blank_text: bool  # rejected rows without their text (output.rejected_text: false)
    columns: pa.Schema = schema.DOC_SCHEMA  # the run's schema (DOC_SCHEMA plus extra stage columns)
    kept: bool = True  # kept rows, or rejected ones
    segments: list[Segment] = field(default_factory=list)
    partition_by: str | None = None  # kept rows whose `partition_by` column (null = "") is...
    partition_value: str = ""  # ...this value
    # (warc_path, warc_offset, id) -> new id, for rows whose id an earlier row already has.
    new_ids: dict[tuple[str, int, str], str] = field(default_factory=dict)
    # Rejected rows dropped before the PII stage still hold their PII: redacted with this config.
    redact: PiiConfig | None = None
    storage: Storage = LOCAL  # where the sources are read and the shard is written

    @property
    def partition(self) -> str | None:
        """The value of the partition column all its rows share, if partitioned."""
        return (self.partition_value or None) if self.partition_by else None


@dataclass
class ShardPlan:
    kept: list[ShardSpec]
    rejected: list[ShardSpec]
    reasons: Counter  # drop_reason -> rows (None = kept)
    rows: int
    ids_made_distinct: int = 0  # rows that got a derived id because another row had theirs


# Below these sizes the plan is made and the shards are written in the driver, not in Ray
# tasks: once the per-document actors are gone a task starts on a cold worker, which costs ~1.5 s
# of process start and imports per worker (3 s for two on 2 CPUs), far more than summarizing a
# few part files or writing a few thousand rows takes in the driver (~0.2 s for 3,000 rows).
# The limits are constants, so what the driver holds stays bounded whatever the input size.
INLINE_MAX_FILES = 128
INLINE_MAX_ROWS = 5_000


class _Calls:
    """Runs the planning steps as Ray tasks in a Ray session, else (or `inline`) in this
    process: same functions, same results."""

    def __init__(self, inline: bool = False) -> None:
        import ray

        self.ray = ray if ray.is_initialized() and not inline else None
        self._remote: dict[Callable, Any] = {}

    def submit(self, fn: Callable, *args: Any, num_returns: int = 1) -> Any:
        if self.ray is None:
            return fn(*args)
        if fn not in self._remote:
            self._remote[fn] = self.ray.remote(num_cpus=1, max_retries=3)(fn)
        return self._remote[fn].options(num_returns=num_returns).remote(*args)

    def get(self, values: list) -> list:
        return values if self.ray is None else self.ray.get(values)


def _key_columns(partition_by: str | None) -> list[str]:
    return [*SORT_KEYS, schema.DROP_REASON, *([partition_by] if partition_by else [])]


def _group_columns(table: pa.Table, partition_by: str | None) -> tuple[pa.Array, pa.Array]:
    """(kept, partition value) of every row; the value is "" for null or without partitioning."""
    kept = pc.is_null(table.column(schema.DROP_REASON))
    if partition_by is None:
        return kept, pa.array([""] * table.num_rows, pa.string())
    return kept, pc.fill_null(table.column(partition_by), "")


def _id_bucket(ids: pa.ChunkedArray | pa.Array, buckets: int) -> np.ndarray:
    from curate.dedup.text import hash_strings

    return (hash_strings(ids) % np.uint64(buckets)).astype(np.int64)


def _summarize(index: int, path: str, partition_by: str | None, buckets: int, storage: Storage) -> tuple:
    """One file: its row counts per (warc_path, kept, partition value, drop reason), then its
    rows' (id, where read, capture digest) in `buckets` pieces by a hash of the id."""
    from curate.dedup.text import digest_strings

    t = pq.read_table(storage.open(path), columns=[*_key_columns(partition_by), schema.URL, schema.FETCH_TIME])
    kept, value = _group_columns(t, partition_by)
    counts = (pa.table({schema.WARC_PATH: t.column(schema.WARC_PATH), _KEPT: kept, _VALUE: value,
                        _REASON: t.column(schema.DROP_REASON), schema.WARC_OFFSET: t.column(schema.WARC_OFFSET)})
              .group_by([schema.WARC_PATH, _KEPT, _VALUE, _REASON], use_threads=False)
              .aggregate([([], "count_all"), (schema.WARC_OFFSET, "min"), (schema.WARC_OFFSET, "max"),
                          (schema.WARC_OFFSET, "count", pc.CountOptions(mode="only_null"))])
              .rename_columns([schema.WARC_PATH, _KEPT, _VALUE, _REASON, _ROWS, _FIRST, _LAST, _NULLS]))
    counts = counts.append_column(_FILE, pa.array(np.full(counts.num_rows, index, np.int32)))
    # One capture (url, fetch time) tells one page from another under a shared id.
    capture = pc.binary_join_element_wise(pc.fill_null(t.column(schema.URL), ""),
                                          pc.fill_null(t.column(schema.FETCH_TIME).cast(pa.string()), ""), "\x00")
    digest = digest_strings(capture)
    ids = t.select(SORT_KEYS).append_column("_c0", pa.array(digest[:, 0])).append_column("_c1", pa.array(digest[:, 1]))
    bucket = _id_bucket(t.column(schema.ID), buckets)
    pieces = [ids.filter(pa.array(bucket == b)) for b in range(buckets)]
    return (counts, *pieces)


def distinct_id(doc_id: str, warc_path: str, warc_offset: int) -> str:
    """The id of a row whose id an earlier row holds: derived from where it was read, so the same
    input gives the same id on every run."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"{doc_id}|{warc_path}#{warc_offset}"))


def _renames(*pieces: pa.Table) -> pa.Table:
    """(warc_path, warc_offset, id, new id) of each row whose id an earlier row (in output order)
    holds for a different page: two inputs with different pages under one WARC-Record-ID. The
    same record read through two inputs (same URL and fetch time: one capture, whatever later
    stages did to each copy's text) keeps its id. One bucket of ids: an id meets all its rows."""
    t = pa.concat_tables(pieces)
    counts = pc.value_counts(t.column(schema.ID))
    repeated = counts.field("values").filter(pc.greater(counts.field("counts"), 1))
    out: dict[str, list] = {schema.WARC_PATH: [], schema.WARC_OFFSET: [], schema.ID: [], "new_id": []}
    if len(repeated):
        t = t.filter(pc.is_in(t.column(schema.ID), value_set=repeated))
        t = t.take(pc.sort_indices(t, sort_keys=[(k, "ascending") for k in SORT_KEYS]))
        first: dict[str, tuple] = {}
        for row in t.to_pylist():  # in output order, so the first holder keeps its id
            doc_id, capture = row[schema.ID], (row["_c0"], row["_c1"])
            if first.setdefault(doc_id, capture) != capture:
                for k in SORT_KEYS:
                    out[k].append(row[k])
                out["new_id"].append(distinct_id(doc_id, row[schema.WARC_PATH], row[schema.WARC_OFFSET]))
    return pa.table(out, schema=pa.schema([(schema.WARC_PATH, pa.string()), (schema.WARC_OFFSET, pa.int64()),
                                           (schema.ID, pa.string()), ("new_id", pa.string())]))


def partition_slug(value: str | None) -> str:
    """A file-name-safe form of a partition value ("Science & Tech." -> "science-tech")."""
    return re.sub(r"[^a-z0-9]+", "-", (value or "none").lower()).strip("-") or "none"


def _cut(counts: pa.Table, files: Sequence[str], rows_per_shard: int, make: Callable[[int], ShardSpec]) -> list[ShardSpec]:
    """Cut the rows counted in `counts` (one kind) into shards of `rows_per_shard` rows in
    warc_path order; `make(k)` gives the k-th (empty) spec."""
    per_file = (counts.group_by([schema.WARC_PATH, _FILE], use_threads=False)
                .aggregate([(_ROWS, "sum"), (_FIRST, "min"), (_LAST, "max"), (_NULLS, "sum")])
                .sort_by([(schema.WARC_PATH, "ascending"), (f"{_FIRST}_min", "ascending"), (_FILE, "ascending")]))
    paths = per_file.column(schema.WARC_PATH).to_pylist()
    holders = list(zip(per_file.column(_FILE).to_pylist(), per_file.column(f"{_ROWS}_sum").to_pylist(),
                       per_file.column(f"{_FIRST}_min").to_pylist(), per_file.column(f"{_LAST}_max").to_pylist(),
                       per_file.column(f"{_NULLS}_sum").to_pylist()))
    specs: list[ShardSpec] = []
    filled = rows_per_shard
    start = 0
    while start < len(paths):
        end = start + 1
        while end < len(paths) and paths[end] == paths[start]:
            end += 1
        path, held = paths[start], holders[start:end]
        rows = sum(h[1] for h in held)
        lo = 0
        while lo < rows:
            if filled == rows_per_shard:
                specs.append(make(len(specs)))
                filled = 0
            hi = min(rows, lo + rows_per_shard - filled)
            specs[-1].segments.append(_segment(path, lo, hi, held, files))
            filled += hi - lo
            lo = hi
        start = end
    return specs


def _segment(path: str, lo: int, hi: int, held: list[tuple], files: Sequence[str]) -> Segment:
    """Ranks lo..hi-1 of `path`'s rows held in files (index, rows, first offset, last offset,
    rows without an offset), sorted by first offset. When the files hold disjoint offset ranges
    (an input's part files), their rows rank file after file, so the segment names only the
    files it needs."""
    disjoint = all(h[4] == 0 for h in held) and all(a[3] < b[2] for a, b in zip(held, held[1:]))
    if not disjoint:
        return Segment(path, lo, hi, tuple(sorted((h[0], files[h[0]]) for h in held)))
    needed, base, seen = [], None, 0
    for i, n, *_ in held:
        if seen < hi and seen + n > lo:
            base = seen if base is None else base
            needed.append((i, files[i]))
        seen += n
    return Segment(path, lo - base, hi - base, tuple(sorted(needed)))


def plan_shards(files: Sequence[str], out: Path | str, rows_per_shard: int, compression: str, rejected_text: bool,
                columns: pa.Schema = schema.DOC_SCHEMA, storage: Storage = LOCAL, partition_by: str | None = None,
                redact_rejected: PiiConfig | None = None) -> ShardPlan:
    """Count the rows of every file (in Ray tasks when a Ray session is up) and cut the kept and
    rejected rows into shard specs. `partition_by`: a column whose values get shard runs of their
    own (kept rows); `redact_rejected`: the PII settings to apply to rejected rows that never
    reached the PII stage."""
    out = str(out)
    calls = _Calls(inline=len(files) <= INLINE_MAX_FILES)
    buckets = max(1, min(ID_BUCKETS_MAX, ceil(len(files) / FILES_PER_ID_BUCKET)))
    summaries = [calls.submit(_summarize, i, f, partition_by, buckets, storage, num_returns=1 + buckets)
                 for i, f in enumerate(files)]
    renames = calls.get([calls.submit(_renames, *[s[1 + b] for s in summaries]) for b in range(buckets)]) if files else []
    parts = calls.get([s[0] for s in summaries])
    counts = pa.concat_tables(parts) if parts else _summarize_empty()
    renamed = pa.concat_tables(renames) if renames else _renames(_renames_input_empty())
    reasons = Counter()
    for r in counts.group_by(_REASON, use_threads=False).aggregate([(_ROWS, "sum")]).to_pylist():
        reasons[r[_REASON]] += r[f"{_ROWS}_sum"]
    new_ids = _new_ids_by_path(renamed)

    def spec(folder: str, name: str, kept: bool, value: str = "", by: str | None = None) -> ShardSpec:
        return ShardSpec(join(out, folder), name, compression, blank_text=not kept and not rejected_text, columns=columns,
                         kept=kept, partition_by=by, partition_value=value, storage=storage,
                         redact=None if kept else redact_rejected)

    kept_mask = counts.column(_KEPT)
    rejected = _cut(counts.filter(pc.invert(kept_mask)), files, rows_per_shard,
                    lambda k: spec("rejected", f"rejected-{k:05d}.parquet", kept=False))
    kept_counts = counts.filter(kept_mask)
    kept: list[ShardSpec] = []
    if partition_by is None:
        kept = _cut(kept_counts, files, rows_per_shard, lambda k: spec("shards", f"shard-{k:05d}.parquet", kept=True))
    else:  # one run of shards per value (`shard-<value>-00000.parquet`, values in sorted order)
        for value in sorted(set(kept_counts.column(_VALUE).to_pylist())):
            slug = partition_slug(value or None)
            kept += _cut(kept_counts.filter(pc.equal(kept_counts.column(_VALUE), value)), files, rows_per_shard,
                         lambda k, v=value, s=slug: spec("shards", f"shard-{s}-{k:05d}.parquet", True, v, partition_by))
    for s in kept + rejected:
        for seg in s.segments:
            s.new_ids.update(new_ids.get(seg.warc_path, {}))
    return ShardPlan(kept=kept, rejected=rejected, reasons=reasons, rows=int(pc.sum(counts.column(_ROWS)).as_py() or 0),
                     ids_made_distinct=renamed.num_rows)


def _summarize_empty() -> pa.Table:
    return pa.table({schema.WARC_PATH: pa.array([], pa.string()), _KEPT: pa.array([], pa.bool_()),
                     _VALUE: pa.array([], pa.string()), _REASON: pa.array([], pa.string()),
                     _ROWS: pa.array([], pa.int64()), _FIRST: pa.array([], pa.int64()), _LAST: pa.array([], pa.int64()),
                     _NULLS: pa.array([], pa.int64()), _FILE: pa.array([], pa.int32())})


def _renames_input_empty() -> pa.Table:
    return pa.table({schema.WARC_PATH: pa.array([], pa.string()), schema.WARC_OFFSET: pa.array([], pa.int64()),
                     schema.ID: pa.array([], pa.string()), "_c0": pa.array([], pa.uint64()), "_c1": pa.array([], pa.uint64())})


def _new_ids_by_path(renamed: pa.Table) -> dict[str, dict[tuple[str, int, str], str]]:
    by_path: dict[str, dict[tuple[str, int, str], str]] = {}
    for r in renamed.to_pylist():
        by_path.setdefault(r[schema.WARC_PATH], {})[(r[schema.WARC_PATH], r[schema.WARC_OFFSET], r[schema.ID])] = r["new_id"]
    return by_path


def _read_rows(path: str, rows: np.ndarray, columns: pa.Schema, storage: Storage = LOCAL) -> pa.Table:
    """`rows` of one Parquet file, reading only the row groups that hold them."""
    pf = pq.ParquetFile(storage.open(path))  # the file closes with `pf`
    md = pf.metadata
    bounds = np.cumsum([0] + [md.row_group(i).num_rows for i in range(md.num_row_groups)])
    first = int(np.searchsorted(bounds, rows.min(), side="right") - 1)
    last = int(np.searchsorted(bounds, rows.max(), side="right") - 1)
    table = pf.read_row_groups(list(range(first, last + 1)))
    return schema.conform(table.take(pa.array(rows - bounds[first])), columns)


def _segment_rows(spec: ShardSpec, seg: Segment, keys: dict[int, pa.Table]) -> tuple[np.ndarray, np.ndarray]:
    """(file index, row) of the segment's rows in output order. `keys` caches each file's key
    columns for the shard (a file may hold several of its segments)."""
    found = []
    for index, path in seg.files:
        if index not in keys:
            t = pq.read_table(spec.storage.open(path), columns=_key_columns(spec.partition_by))
            keys[index] = t.append_column(_FILE, pa.array(np.full(t.num_rows, index, np.int32))).append_column(
                _ROW, pa.array(np.arange(t.num_rows, dtype=np.int64)))
        t = keys[index]
        kept, value = _group_columns(t, spec.partition_by)
        mask = pc.and_(pc.equal(t.column(schema.WARC_PATH), seg.warc_path), kept if spec.kept else pc.invert(kept))
        if spec.kept and spec.partition_by:
            mask = pc.and_(mask, pc.equal(value, spec.partition_value))
        found.append(t.filter(mask))
    rows = pa.concat_tables(found)
    # The file list's order, then the row, breaks ties as one stable sort of all rows would.
    order = pc.sort_indices(rows, sort_keys=[(k, "ascending") for k in (schema.WARC_OFFSET, schema.ID, _FILE, _ROW)])
    rows = rows.take(order.slice(seg.lo, seg.hi - seg.lo))
    return rows.column(_FILE).to_numpy(), rows.column(_ROW).to_numpy()


def _shard_rows(spec: ShardSpec) -> pa.Table:
    keys: dict[int, pa.Table] = {}
    located = [_segment_rows(spec, seg, keys) for seg in spec.segments]
    if not located:
        return schema.empty(spec.columns)
    file_idx = np.concatenate([f for f, _ in located])
    rows = np.concatenate([r for _, r in located])
    paths = {i: p for seg in spec.segments for i, p in seg.files}
    by_file = np.argsort(file_idx, kind="stable")  # rows of one file together, still in output order
    uniq, starts = np.unique(file_idx[by_file], return_index=True)
    ends = np.append(starts[1:], file_idx.size)
    parts = [_read_rows(paths[int(u)], rows[by_file[s:e]], spec.columns, spec.storage) for u, s, e in zip(uniq, starts, ends)]
    order = np.empty(file_idx.size, np.int64)
    order[by_file] = np.arange(file_idx.size)
    return pa.concat_tables(parts).take(pa.array(order))


def write_shard(spec: ShardSpec) -> dict:
    """Build and write one shard; returns its manifest entry plus kept tokens per domain (bounded:
    see `DomainCounts`)."""
    table = _shard_rows(spec)
    if spec.new_ids:
        keys = zip(*(table.column(k).to_pylist() for k in SORT_KEYS))
        ids = [spec.new_ids.get(key, key[2]) for key in keys]
        table = schema.set_column(table, schema.ID, ids)
    tokens = count_tokens(table.column(schema.TEXT))
    if spec.blank_text:
        table = schema.set_column(table, schema.TEXT, pa.nulls(table.num_rows, pa.large_string()))
    elif spec.redact is not None:
        table = _redact_unredacted(table, spec.redact)
    path = join(spec.folder, spec.name)
    write_table_atomic(table.combine_chunks(), path, spec.compression, spec.storage)
    domains = DomainCounts()
    domains.add_pairs(table.column(schema.DOMAIN).to_pylist(), tokens)
    entry = {
        "path": f"{basename(spec.folder)}/{spec.name}",
        "rows": table.num_rows,
        "tokens": int(sum(tokens)),
        "bytes": spec.storage.size(path),
        "domain_tokens": domains.to_json(),
    }
    if spec.partition is not None:
        entry["partition"] = spec.partition
    return entry
def _redact_unredacted(table: pa.Table, cfg: PiiConfig) -> pa.Table:
    """Redact the text of rows the PII stage never saw (no pii_counts): dropped before it."""
    from curate.filters.pii import PiiFinder

    finder = PiiFinder(cfg)
    texts = table.column(schema.TEXT).to_pylist()
    counts = table.column(schema.PII_COUNTS).to_pylist()
    for i, (text, seen) in enumerate(zip(texts, counts)):
        if text and seen is None:
            texts[i], found = finder.redact(text)
            counts[i] = [{"kind": k, "count": n} for k, n in sorted(found.items())]  # as the others read back
    table = schema.set_column(table, schema.TEXT, texts)
    return schema.set_column(table, schema.PII_COUNTS, counts)


def write_shards(specs: Sequence[ShardSpec], on_done: Callable[[dict], None] | None = None) -> list[dict]:
    """Write every shard as a Ray task (one CPU each), or in this process when they are few
    rows or no Ray session is up; results in spec order."""
    import ray

    if not ray.is_initialized() or sum(seg.hi - seg.lo for s in specs for seg in s.segments) <= INLINE_MAX_ROWS:
        results = []
        for s in specs:
            results.append(entry := write_shard(s))
            if on_done is not None:
                on_done(entry)
        return results
    task = ray.remote(num_cpus=1, max_retries=3)(write_shard)
    pending = {task.remote(s): i for i, s in enumerate(specs)}
    results: list[dict | None] = [None] * len(specs)
    while pending:
        done, _ = ray.wait(list(pending), num_returns=1)
        for ref in done:
            results[pending.pop(ref)] = entry = ray.get(ref)
            if on_done is not None:
                on_done(entry)
    return results  # type: ignore[return-value]
