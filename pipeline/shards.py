"""Fixed-size Parquet shards in (warc_path, warc_offset) order, written in parallel by Ray tasks.

The rows of a run live in many Parquet files (per-input parts, or a global stage's output). The
driver reads only their sort keys and drop reasons, computes the global order once, and cuts it
into shards of exactly `rows_per_shard` rows (the last may be shorter). Each shard is then one
Ray task that reads just the rows it needs and writes its file atomically. No global shuffle or
sort runs and no row text passes through the driver, so the same code writes 300 rows locally
or a crawl on a cluster. Same rows give byte-identical shards however the files were split.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from curate import schema
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
    storage: Storage = LOCAL  # where the sources are read and the shard is written


@dataclass
class ShardPlan:
    kept: list[ShardSpec]
    rejected: list[ShardSpec]
    reasons: Counter  # drop_reason -> rows (None = kept)
    rows: int


def _read_keys(files: Sequence[str], storage: Storage = LOCAL) -> pa.Table:
    parts = []
    for i, f in enumerate(files):
        t = pq.read_table(storage.open(f), columns=[*SORT_KEYS, schema.DROP_REASON])
        n = t.num_rows
        parts.append(t.append_column("_file", pa.array(np.full(n, i, np.int32)))
                      .append_column("_row", pa.array(np.arange(n, dtype=np.int64))))
    if not parts:
        return pa.table({**{k: pa.array([], schema.DOC_SCHEMA.field(k).type) for k in [*SORT_KEYS, schema.DROP_REASON]},
                         "_file": pa.array([], pa.int32()), "_row": pa.array([], pa.int64())})
    return pa.concat_tables(parts)


def _specs(files: Sequence[str], file_idx: np.ndarray, rows: np.ndarray, folder: str, prefix: str,
           rows_per_shard: int, compression: str, blank_text: bool, columns: pa.Schema, storage: Storage) -> list[ShardSpec]:
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
        specs.append(spec)
    return specs


def plan_shards(files: Sequence[str], out: Path | str, rows_per_shard: int, compression: str, rejected_text: bool,
                columns: pa.Schema = schema.DOC_SCHEMA, storage: Storage = LOCAL) -> ShardPlan:
    """Read the sort keys of every row and cut the kept and rejected rows into shard specs."""
    keys = _read_keys(files, storage)
    keys = keys.take(pc.sort_indices(keys, sort_keys=[(k, "ascending") for k in SORT_KEYS]))
    reason = keys.column(schema.DROP_REASON)
    reasons = Counter({r["values"]: r["counts"] for r in pc.value_counts(reason).to_pylist()})
    kept = pc.is_null(reason).to_numpy(zero_copy_only=False)
    file_idx, rows = keys.column("_file").to_numpy(), keys.column("_row").to_numpy()
    return ShardPlan(
        kept=_specs(files, file_idx[kept], rows[kept], join(out, "shards"), "shard", rows_per_shard, compression, False, columns,
                    storage),
        rejected=_specs(files, file_idx[~kept], rows[~kept], join(out, "rejected"), "rejected", rows_per_shard, compression,
                        not rejected_text, columns, storage),
        reasons=reasons,
        rows=keys.num_rows,
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
    tokens = count_tokens(table.column(schema.TEXT))
    if spec.blank_text:
        table = schema.set_column(table, schema.TEXT, pa.nulls(table.num_rows, pa.large_string()))
    path = join(spec.folder, spec.name)
    write_table_atomic(table.combine_chunks(), path, spec.compression, spec.storage)
    domains: Counter = Counter()
    for dom, t in zip(table.column(schema.DOMAIN).to_pylist(), tokens):
        domains[dom or "<none>"] += t
    return {
        "path": f"{basename(spec.folder)}/{spec.name}",
        "rows": table.num_rows,
        "tokens": int(sum(tokens)),
        "bytes": spec.storage.size(path),
        "domain_tokens": dict(domains),
    }


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
