"""Fixed-size Parquet shards in (warc_path, warc_offset) order, written in parallel by Ray tasks.

The rows of a run live in many Parquet files (per-input parts, or a global stage's output). The
driver reads only their sort keys and drop reasons, computes the global order once, and cuts it
into shards of exactly `rows_per_shard` rows (the last may be shorter). Each shard is then one
Ray task that reads just the rows it needs and writes its file atomically. No global shuffle or
sort runs and no row text passes through the driver, so the same code writes 300 rows locally
or a crawl on a cluster. Same rows give byte-identical shards however the files were split.
"""

from __future__ import annotations

import re
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from curate import schema
from curate.filters.config import PiiConfig
from curate.pipeline.storage import LOCAL, Storage, basename, join

# Words and punctuation marks: a tokenizer-free token count, close to a GPT-2 pre-tokenizer's.
TOKEN_PATTERN = r"\w+|[^\w\s]"
# Total order of the output: the position in the crawl, then the id for the impossible tie.
SORT_KEYS = [schema.WARC_PATH, schema.WARC_OFFSET, schema.ID]
_ROW_GROUP_ROWS = 2048


def count_tokens(texts: pa.ChunkedArray | pa.Array) -> list[int]:
    return pc.count_substring_regex(pc.fill_null(texts, ""), TOKEN_PATTERN).to_pylist()


def write_table_atomic(table: pa.Table, path: Path | str, compression: str, storage: Storage = LOCAL) -> None:
    """Readers never see a half-written file (see `Storage.write_parquet`)."""
    storage.write_parquet(table, str(path), compression=None if compression == "none" else compression,
                          row_group_size=_ROW_GROUP_ROWS)


@dataclass
class ShardSpec:
    """One output file: which rows of which source files, and in what order."""

    folder: str
    name: str
    compression: str
    blank_text: bool  # rejected rows without their text (output.rejected_text: false)
    columns: pa.Schema = schema.DOC_SCHEMA  # the run's schema (DOC_SCHEMA plus extra stage columns)
    # (source file, row indices in it); concatenated in this order they give the shard's rows...
    sources: list[tuple[str, np.ndarray]] = field(default_factory=list)
    # ...and `order` puts them into output order.
    order: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    partition: str | None = None  # the value of the partition column all its rows share, if partitioned
    # Output position -> new id, for rows whose id an earlier row (in output order) already has.
    new_ids: dict[int, str] = field(default_factory=dict)
    # Rejected rows dropped before the PII stage still hold their PII: redacted with this config.
    redact: PiiConfig | None = None
    storage: Storage = LOCAL  # where the sources are read and the shard is written


@dataclass
class ShardPlan:
    kept: list[ShardSpec]
    rejected: list[ShardSpec]
    reasons: Counter  # drop_reason -> rows (None = kept)
    rows: int
    ids_made_distinct: int = 0  # rows that got a derived id because another row had theirs


def _read_keys(files: Sequence[str], extra: Sequence[str] = (), storage: Storage = LOCAL) -> pa.Table:
    parts = []
    for i, f in enumerate(files):
        t = pq.read_table(storage.open(f), columns=[*SORT_KEYS, schema.DROP_REASON, *extra])
        n = t.num_rows
        parts.append(t.append_column("_file", pa.array(np.full(n, i, np.int32)))
                      .append_column("_row", pa.array(np.arange(n, dtype=np.int64))))
    if not parts:
        return pa.table({**{k: pa.array([], schema.DOC_SCHEMA.field(k).type) for k in [*SORT_KEYS, schema.DROP_REASON, *extra]},
                         "_file": pa.array([], pa.int32()), "_row": pa.array([], pa.int64())})
    return pa.concat_tables(parts)


def distinct_id(doc_id: str, warc_path: str, warc_offset: int) -> str:
    """The id of a row whose id an earlier row holds: derived from where it was read, so the same
    input gives the same id on every run."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"{doc_id}|{warc_path}#{warc_offset}"))


def _repeated_ids(files: Sequence[str], keys: pa.Table, storage: Storage = LOCAL) -> dict[int, str]:
    """Sorted-key position -> new id for each row whose id an earlier row (in output order) holds
    for a different page: two inputs with different pages under one WARC-Record-ID. The same
    record read through two inputs (same URL and fetch time: one capture, whatever later stages did
    to each copy's text) keeps its id."""
    ids = keys.column(schema.ID)
    counts = pc.value_counts(ids)
    repeated = counts.field("values").filter(pc.greater(counts.field("counts"), 1))
    if len(repeated) == 0:
        return {}
    positions = np.flatnonzero(pc.is_in(ids, value_set=repeated).to_numpy(zero_copy_only=False))
    capture = _captures(files, keys, positions, storage)
    first: dict[str, tuple] = {}
    renamed = {}
    paths, offsets = keys.column(schema.WARC_PATH), keys.column(schema.WARC_OFFSET)
    for i in positions.tolist():  # in output order, so the first holder keeps its id
        doc_id = ids[i].as_py()
        if first.setdefault(doc_id, capture[i]) != capture[i]:
            renamed[i] = distinct_id(doc_id, paths[i].as_py(), offsets[i].as_py())
    return renamed


def _captures(files: Sequence[str], keys: pa.Table, positions: np.ndarray, storage: Storage) -> dict[int, tuple]:
    """(url, fetch time) of the few rows at `positions`: what tells one capture from another."""
    file_idx, rows = keys.column("_file").to_numpy()[positions], keys.column("_row").to_numpy()[positions]
    out: dict[int, tuple] = {}
    for f in np.unique(file_idx):
        sel = file_idx == f
        cols = pq.read_table(storage.open(files[int(f)]), columns=[schema.URL, schema.FETCH_TIME])
        for pos, row in zip(positions[sel].tolist(), cols.take(pa.array(rows[sel])).to_pylist()):
            out[pos] = (row[schema.URL], row[schema.FETCH_TIME])
    return out


def _specs(files: Sequence[str], file_idx: np.ndarray, rows: np.ndarray, folder: str, prefix: str,
           rows_per_shard: int, compression: str, blank_text: bool, columns: pa.Schema,
           new_ids: dict[int, str], storage: Storage) -> list[ShardSpec]:
    """`new_ids`: position in `rows` -> new id."""
    specs = []
    for k, lo in enumerate(range(0, file_idx.size, rows_per_shard)):
        f, r = file_idx[lo:lo + rows_per_shard], rows[lo:lo + rows_per_shard]
        by_file = np.argsort(f, kind="stable")  # rows of one file together, still in output order
        spec = ShardSpec(str(folder), f"{prefix}-{k:05d}.parquet", compression, blank_text, columns, storage=storage)
        uniq, starts = np.unique(f[by_file], return_index=True)
        ends = np.append(starts[1:], f.size)
        spec.sources = [(files[u], r[by_file[s:e]]) for u, s, e in zip(uniq, starts, ends)]
        spec.order = np.empty(f.size, np.int64)
        spec.order[by_file] = np.arange(f.size)
        spec.new_ids = {i - lo: v for i, v in new_ids.items() if lo <= i < lo + rows_per_shard}
        specs.append(spec)
    return specs


def partition_slug(value: str | None) -> str:
    """A file-name-safe form of a partition value ("Science & Tech." -> "science-tech")."""
    return re.sub(r"[^a-z0-9]+", "-", (value or "none").lower()).strip("-") or "none"


def _kept_specs(files: Sequence[str], keys: pa.Table, kept: np.ndarray, out: str, rows_per_shard: int,
                compression: str, columns: pa.Schema, partition_by: str | None, new_ids: dict[int, str],
                storage: Storage) -> list[ShardSpec]:
    """Kept rows in output order; with `partition_by`, one run of shards per value of that column
    (`shard-<value>-00000.parquet`, values in sorted order), so a shard holds one value.
    `new_ids`: position among the kept rows -> new id."""
    file_idx, rows = keys.column("_file").to_numpy()[kept], keys.column("_row").to_numpy()[kept]
    if partition_by is None:
        return _specs(files, file_idx, rows, join(out, "shards"), "shard", rows_per_shard, compression, False, columns, new_ids,
                      storage)
    values = np.asarray(pc.fill_null(keys.column(partition_by), "").to_numpy(zero_copy_only=False)[kept], dtype=object)
    specs = []
    for value in sorted(set(values)):
        sel = values == value
        rank = np.cumsum(sel) - 1  # position among this value's rows
        part = _specs(files, file_idx[sel], rows[sel], join(out, "shards"), f"shard-{partition_slug(value or None)}",
                      rows_per_shard, compression, False, columns,
                      {int(rank[i]): v for i, v in new_ids.items() if sel[i]}, storage)
        for spec in part:
            spec.partition = value or None
        specs += part
    return specs


def plan_shards(files: Sequence[str], out: Path | str, rows_per_shard: int, compression: str, rejected_text: bool,
                columns: pa.Schema = schema.DOC_SCHEMA, storage: Storage = LOCAL, partition_by: str | None = None,
                redact_rejected: PiiConfig | None = None) -> ShardPlan:
    """Read the sort keys of every row and cut the kept and rejected rows into shard specs.
    `partition_by`: a column whose values get shard runs of their own (kept rows);
    `redact_rejected`: the PII settings to apply to rejected rows that never reached the PII stage."""
    out = str(out)
    keys = _read_keys(files, [partition_by] if partition_by else [], storage)
    keys = keys.take(pc.sort_indices(keys, sort_keys=[(k, "ascending") for k in SORT_KEYS]))
    reason = keys.column(schema.DROP_REASON)
    reasons = Counter({r["values"]: r["counts"] for r in pc.value_counts(reason).to_pylist()})
    kept = pc.is_null(reason).to_numpy(zero_copy_only=False)
    file_idx, rows = keys.column("_file").to_numpy(), keys.column("_row").to_numpy()
    renamed = _repeated_ids(files, keys, storage)
    # Positions in the sorted keys -> positions among the kept or among the rejected rows.
    rank = np.empty(keys.num_rows, np.int64)
    rank[kept], rank[~kept] = np.arange(int(kept.sum())), np.arange(int((~kept).sum()))
    new_kept = {int(rank[i]): v for i, v in renamed.items() if kept[i]}
    new_rejected = {int(rank[i]): v for i, v in renamed.items() if not kept[i]}
    rejected = _specs(files, file_idx[~kept], rows[~kept], join(out, "rejected"), "rejected", rows_per_shard, compression,
                      not rejected_text, columns, new_rejected, storage)
    for spec in rejected:
        spec.redact = redact_rejected
    return ShardPlan(
        kept=_kept_specs(files, keys, kept, out, rows_per_shard, compression, columns, partition_by, new_kept, storage),
        rejected=rejected,
        reasons=reasons,
        rows=keys.num_rows,
        ids_made_distinct=len(renamed),
    )


def _read_rows(path: str, rows: np.ndarray, columns: pa.Schema, storage: Storage = LOCAL) -> pa.Table:
    """`rows` of one Parquet file, reading only the row groups that hold them."""
    pf = pq.ParquetFile(storage.open(path))  # the file closes with `pf`
    md = pf.metadata
    bounds = np.cumsum([0] + [md.row_group(i).num_rows for i in range(md.num_row_groups)])
    first = int(np.searchsorted(bounds, rows.min(), side="right") - 1)
    last = int(np.searchsorted(bounds, rows.max(), side="right") - 1)
    table = pf.read_row_groups(list(range(first, last + 1)))
    return schema.conform(table.take(pa.array(rows - bounds[first])), columns)


def write_shard(spec: ShardSpec) -> dict:
    """Build and write one shard; returns its manifest entry plus kept tokens per domain."""
    parts = [_read_rows(path, rows, spec.columns, spec.storage) for path, rows in spec.sources]
    table = pa.concat_tables(parts).take(pa.array(spec.order)) if parts else schema.empty(spec.columns)
    if spec.new_ids:
        ids = table.column(schema.ID).to_pylist()
        for i, v in spec.new_ids.items():
            ids[i] = v
        table = schema.set_column(table, schema.ID, ids)
    tokens = count_tokens(table.column(schema.TEXT))
    if spec.blank_text:
        table = schema.set_column(table, schema.TEXT, pa.nulls(table.num_rows, pa.large_string()))
    elif spec.redact is not None:
        table = _redact_unredacted(table, spec.redact)
    path = join(spec.folder, spec.name)
    write_table_atomic(table.combine_chunks(), path, spec.compression, spec.storage)
    domains: Counter = Counter()
    for dom, t in zip(table.column(schema.DOMAIN).to_pylist(), tokens):
        domains[dom or "<none>"] += t
    entry = {
        "path": f"{basename(spec.folder)}/{spec.name}",
        "rows": table.num_rows,
        "tokens": int(sum(tokens)),
        "bytes": spec.storage.size(path),
        "domain_tokens": dict(domains),
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
    """Write every shard as a Ray task (one CPU each); results in spec order."""
    import ray

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
