"""Training data: stream documents from their files into per-file token files on disk, then read
packed windows out of those files through memory maps.

Why token files rather than tokenizing while training: tokenization runs once per input file, in
the Rust tokenizer's parallel batch encoder, and is cached under a key of the file's fingerprint
(a resumed run, or a second run on the same shards, tokenizes nothing); afterwards a batch is a
few `numpy` slices of memory-mapped files, so the data path costs microseconds per batch
(`benchmarks/bench_train.py` measures both ways) and exact resume is a single integer.

Memory stays flat in corpus size: a file is read a batch of rows at a time (Parquet row batches,
JSONL lines), tokenized and appended to its `tokens.bin`; only per-document bookkeeping (length,
row, label, weight: tens of bytes a document) is held in RAM. The annealing pool selected by a
row filter (`wiki_score >= 0.9`) is a subset of the same token files, chosen by reading only the
filter's columns, so nothing is tokenized twice. Inputs may be object-store URLs (read through
`curate.pipeline.storage`); token files are always local.

The packed stream is a deterministic function of (seed, pool): documents are visited in seeded
per-epoch permutations (or drawn by mixture weight), joined with EOS and cut into fixed
`seq_len` windows. The stream is generated in fixed-size blocks, so its prefix never depends on
how much of it is asked for: sequence `i` is the same whatever the budget or world size.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import queue
import shutil
import threading
import uuid
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import torch

from curate.pipeline.storage import LOCAL, Storage, is_local
from curate.train.tokenizer import EOS, encode_batch

GROUP_COLUMN = "__group"
WEIGHT_COLUMN = "__weight"
BATCH_ROWS = 1024  # rows read, tokenized and written at a time: bounds the memory of tokenizing


# ----------------------------------------------------------------------------- reading documents


def expand(patterns: Sequence[str], storage: Storage = LOCAL) -> list[str]:
    """Sorted, de-duplicated files matching the globs (local or URLs); a glob that matches
    nothing is an error."""
    files: list[str] = []
    for pattern in patterns:
        pattern = os.path.expanduser(str(pattern))
        hits = [h for h in storage.glob(pattern) if not is_local(h) or os.path.isfile(h)]
        if not hits:
            raise FileNotFoundError(f"no files match {pattern!r}")
        files.extend(hits)
    return list(dict.fromkeys(files))


def file_fingerprint(url: str, storage: Storage = LOCAL) -> str:
    """What identifies one version of a file: its path, size and modification time (or the
    store's ETag / LastModified)."""
    if is_local(url):
        st = os.stat(url)
        return f"{os.path.realpath(url)}|{st.st_size}|{st.st_mtime_ns}"
    fs, path = storage.fs(url)
    info = fs.info(path)
    version = info.get("ETag") or info.get("LastModified") or info.get("mtime") or info.get("generation")
    return f"{url}|{info.get('size')}|{version}"


def files_fingerprint(urls: Sequence[str], storage: Storage = LOCAL) -> str:
    h = hashlib.sha256()
    for url in urls:
        h.update(file_fingerprint(url, storage).encode() + b"\n")
    return h.hexdigest()


def _table_of(columns: dict[str, list], num_rows: int) -> pa.Table:
    if columns:
        return pa.table(columns)
    return pa.table({"_": pa.nulls(num_rows)}).select([])  # no wanted column, the row count kept


def _jsonl_batches(fh: IO[bytes], columns: Sequence[str], batch_rows: int) -> Iterator[pa.Table]:
    lines: list[dict] = []

    def flush() -> pa.Table:
        present = [c for c in columns if any(c in row for row in lines)]
        return _table_of({c: [row.get(c) for row in lines] for c in present}, len(lines))

    for line in io.TextIOWrapper(fh, encoding="utf-8"):
        if line.strip():
            lines.append(json.loads(line))
            if len(lines) == batch_rows:
                yield flush()
                lines = []
    if lines:
        yield flush()


def _text_batches(fh: IO[bytes], text_column: str, batch_rows: int) -> Iterator[pa.Table]:
    # A plain-text file is one document per blank-line-separated block.
    docs: list[str] = []
    block: list[str] = []
    for line in io.TextIOWrapper(fh, encoding="utf-8"):
        if line.strip():
            block.append(line)
            continue
        if block:
            docs.append("".join(block).strip())
            block = []
            if len(docs) == batch_rows:
                yield pa.table({text_column: pa.array(docs, pa.large_string())})
                docs = []
    if block:
        docs.append("".join(block).strip())
    if docs:
        yield pa.table({text_column: pa.array(docs, pa.large_string())})


def iter_batches(url: str, columns: Sequence[str], storage: Storage = LOCAL, batch_rows: int = BATCH_ROWS) -> Iterator[pa.Table]:
    """The rows of one file, in file order, `batch_rows` at a time, holding whichever of
    `columns` the file has (a batch keeps its row count even when it has none of them)."""
    columns = list(dict.fromkeys(columns))
    name = url.rsplit("/", 1)[-1]
    if not name.endswith((".parquet", ".jsonl", ".jsonl.gz", ".json", ".json.gz", ".txt", ".txt.gz")):
        raise ValueError(f"{url}: unsupported file type (want .parquet, .jsonl[.gz], .txt[.gz])")
    with storage.open(url) as raw:
        if name.endswith(".parquet"):
            pf = pq.ParquetFile(raw)
            wanted = [c for c in columns if c in pf.schema_arrow.names]
            for batch in pf.iter_batches(batch_size=batch_rows, columns=wanted):
                yield pa.Table.from_batches([batch])
            return
        fh = gzip.open(raw) if name.endswith(".gz") else raw
        if name.endswith((".txt", ".txt.gz")):
            yield from _text_batches(fh, columns[0], batch_rows)
        else:
            yield from _jsonl_batches(fh, columns, batch_rows)


def nonempty_mask(text: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """Per row: the text is present and not only whitespace (the documents a pool keeps)."""
    text = pc.cast(text, pa.large_string())
    return pc.fill_null(pc.greater(pc.utf8_length(pc.utf8_trim_whitespace(text)), 0), False).to_numpy(zero_copy_only=False)


def read_table(path: str | Path, text_column: str, extra: Sequence[str] = ()) -> pa.Table:
    """One (small) file as a table holding `text` plus whichever of `extra` columns it has."""
    parts = list(iter_batches(str(path), [text_column, *extra]))
    table = pa.concat_tables(parts, promote_options="permissive") if parts else pa.table({})
    if table.num_rows and text_column not in table.column_names:
        raise ValueError(f"{path}: no column {text_column!r}")
    if text_column not in table.column_names:
        table = table.append_column(text_column, pa.nulls(table.num_rows, pa.large_string()))
    return table


@dataclass(frozen=True)
class RowFilter:
    """Selects rows of the training data for the annealing pool (all set conditions must hold)."""

    score_column: str | None = None
    min_score: float | None = None
    domains: tuple[str, ...] | None = None
    domain_column: str = "domain"

    def describe(self) -> str:
        return json.dumps([self.score_column, self.min_score, self.domains, self.domain_column])

    @property
    def columns(self) -> list[str]:
        return [c for c in (self.score_column, self.domain_column if self.domains is not None else None) if c]

    def mask(self, table: pa.Table) -> np.ndarray:
        keep = np.ones(table.num_rows, dtype=bool)
        if self.min_score is not None:
            if self.score_column not in table.column_names:
                return np.zeros(table.num_rows, dtype=bool)
            keep &= pc.fill_null(pc.greater_equal(table[self.score_column], self.min_score), False).to_numpy(zero_copy_only=False)
        if self.domains is not None:
            if self.domain_column not in table.column_names:
                return np.zeros(table.num_rows, dtype=bool)
            keep &= pc.fill_null(pc.is_in(table[self.domain_column], pa.array(list(self.domains))), False).to_numpy(zero_copy_only=False)
        return keep


def read_documents(
    paths: Sequence[str | Path], text_column: str = "text", group_column: str | None = None, row_filter: RowFilter | None = None,
    weight_column: str | None = None,
) -> pa.Table:
    """All non-empty documents of `paths` as one in-memory table (`text`, `__group`, and
    `__weight` when `weight_column` is given: a file without that column is an error), in file
    order. For small sets that are relabelled in memory (the mixture search's proxy pool); the
    trainer streams files into token files instead (`tokenize_file`)."""
    extra = [c for c in (group_column, weight_column, *(row_filter.columns if row_filter else ())) if c]
    out: dict[str, list] = {"text": [], GROUP_COLUMN: [], WEIGHT_COLUMN: []}
    for path in paths:
        table = read_table(path, text_column, extra)
        if row_filter is not None:
            table = table.filter(row_filter.mask(table))
        table = table.filter(nonempty_mask(table[text_column]))
        out["text"] += pc.cast(table[text_column], pa.large_string()).chunks
        has_group = bool(group_column) and group_column in table.column_names
        out[GROUP_COLUMN] += pc.cast(table[group_column], pa.string()).chunks if has_group else [pa.nulls(table.num_rows, pa.string())]
        if weight_column:
            if weight_column not in table.column_names:
                raise ValueError(f"{path}: no column {weight_column!r} (the manifest's per-row sampling weights)")
            out[WEIGHT_COLUMN] += pc.fill_null(pc.cast(table[weight_column], pa.float64()), 0.0).chunks
    types = {"text": pa.large_string(), GROUP_COLUMN: pa.string(), WEIGHT_COLUMN: pa.float64()}
    names = ["text", GROUP_COLUMN] + ([WEIGHT_COLUMN] if weight_column else [])
    return pa.table({n: pa.chunked_array(out[n], types[n]) for n in names})


# ----------------------------------------------------------------------------- token files


def tokenizer_hash(tokenizer) -> str:
    return hashlib.sha256(tokenizer.backend_tokenizer.to_str().encode()).hexdigest()


class Segment:
    """The token file of one input: tokens.bin (uint16 or uint32, each document followed by EOS),
    docs.npz (per document: length, source row, label id, text bytes and, when the input has
    them, sampling weight), meta.json (key, dtype, labels). Written once under a temp name."""

    def __init__(self, folder: Path):
        meta = json.loads((folder / "meta.json").read_text())
        self.folder, self.key, self.source = folder, meta["key"], meta.get("source")
        self.groups: list[str | None] = meta["groups"]
        docs = np.load(folder / "docs.npz")
        self.lengths: np.ndarray = docs["lengths"]
        self.rows: np.ndarray = docs["rows"]
        self.group_ids: np.ndarray = docs["group_ids"]
        self.text_bytes: np.ndarray = docs["text_bytes"]
        self.weights: np.ndarray | None = docs["weights"] if "weights" in docs.files else None
        self.starts = np.concatenate([[0], np.cumsum(self.lengths)[:-1]]).astype(np.int64) if len(self.lengths) else np.zeros(0, np.int64)
        n = int(self.lengths.sum())
        dtype = np.dtype(meta["dtype"])
        self.tokens = np.memmap(folder / "tokens.bin", dtype=dtype, mode="r", shape=(n,)) if n else np.zeros(0, dtype)

    @staticmethod
    def write(folder: Path, key: str, batches: Iterable[pa.Table], tokenizer, *, text_column: str = "text",
              group_column: str | None = None, weight_column: str | None = None, source: str | None = None) -> Segment:
        """Tokenize the non-empty rows of `batches` (one file's rows, in order) into `folder`,
        unless a segment with this key is already there."""
        if (folder / "meta.json").is_file() and json.loads((folder / "meta.json").read_text()).get("key") == key:
            return Segment(folder)
        eos = tokenizer.convert_tokens_to_ids(EOS)
        dtype = np.uint16 if len(tokenizer) <= np.iinfo(np.uint16).max else np.uint32
        tmp = folder.with_name(f".{folder.name}.{uuid.uuid4().hex}.tmp")
        tmp.mkdir(parents=True)
        lengths, rows, labels, text_bytes, weights = [], [], [], [], []
        row0 = 0
        with open(tmp / "tokens.bin", "wb") as out:
            for batch in batches:
                if batch.num_rows and text_column not in batch.column_names:
                    raise ValueError(f"{source}: no column {text_column!r}")
                if weight_column and batch.num_rows and weight_column not in batch.column_names:
                    raise ValueError(f"{source}: no column {weight_column!r} (the manifest's per-row sampling weights)")
                keep = nonempty_mask(batch[text_column]) if batch.num_rows else np.zeros(0, bool)
                picked = np.flatnonzero(keep)
                rows.append(row0 + picked)
                row0 += batch.num_rows
                if not len(picked):
                    continue
                batch = batch.take(pa.array(picked))
                texts = pc.cast(batch[text_column], pa.large_string())
                for ids in encode_batch(tokenizer, texts.to_pylist()):
                    arr = np.empty(len(ids) + 1, dtype=dtype)
                    arr[:-1], arr[-1] = ids, eos
                    out.write(arr.tobytes())
                    lengths.append(len(arr))
                text_bytes.append(pc.binary_length(pc.cast(texts, pa.large_binary())).to_numpy(zero_copy_only=False))
                has_group = bool(group_column) and group_column in batch.column_names
                labels += pc.cast(batch[group_column], pa.string()).to_pylist() if has_group else [None] * batch.num_rows
                if weight_column:
                    weights.append(pc.fill_null(pc.cast(batch[weight_column], pa.float64()), 0.0).to_numpy(zero_copy_only=False))
        groups = sorted({g for g in labels if g is not None}) + ([None] if None in labels else [])
        index = {g: i for i, g in enumerate(groups)}
        per_doc = {
            "lengths": np.asarray(lengths, np.int64),
            "rows": np.concatenate(rows).astype(np.int64) if rows else np.zeros(0, np.int64),
            "group_ids": np.asarray([index[g] for g in labels], np.int32),
            "text_bytes": np.concatenate(text_bytes).astype(np.int64) if text_bytes else np.zeros(0, np.int64),
        }
        if weight_column:
            per_doc["weights"] = np.concatenate(weights) if weights else np.zeros(0)
        np.savez(tmp / "docs.npz", **per_doc)
        (tmp / "meta.json").write_text(json.dumps({"key": key, "dtype": np.dtype(dtype).name, "groups": groups, "source": source}))
        shutil.rmtree(folder, ignore_errors=True)  # a stale segment of another key
        try:
            os.replace(tmp, folder)
        except OSError:  # another process published the same key first: same content
            shutil.rmtree(tmp, ignore_errors=True)
        return Segment(folder)


def tokenize_file(cache: Path, url: str, tokenizer, storage: Storage = LOCAL, *, text_column: str = "text",
                  group_column: str | None = None, weight_column: str | None = None, tok_hash: str | None = None) -> Segment:
    """The token file of `url` under `cache`, keyed by the file's fingerprint and everything the
    tokens depend on; built (streaming the file) only when absent."""
    key = hashlib.sha256(json.dumps([file_fingerprint(url, storage), text_column, group_column, weight_column,
                                     tok_hash or tokenizer_hash(tokenizer)]).encode()).hexdigest()[:24]
    columns = [text_column, *(c for c in (group_column, weight_column) if c)]
    return Segment.write(cache / key, key, iter_batches(url, columns, storage), tokenizer, text_column=text_column,
                         group_column=group_column, weight_column=weight_column, source=url)


def select_documents(segment: Segment, url: str, row_filter: RowFilter, storage: Storage = LOCAL) -> np.ndarray:
    """Indices of the segment's documents whose source rows pass `row_filter`, reading only the
    filter's columns of `url`."""
    masks = [row_filter.mask(batch) for batch in iter_batches(url, row_filter.columns, storage)]
    passed = np.concatenate(masks) if masks else np.zeros(0, bool)
    return np.flatnonzero(passed[segment.rows]) if len(segment.rows) else np.zeros(0, np.int64)


# ----------------------------------------------------------------------------- token pool


class TokenPool:
    """Documents of one or more segments (each whole, or a subset of its documents), as one
    sequence of documents; tokens are read through the segments' memory maps.

    Per-document arrays (global document index): `lengths`, `group_ids` into `groups`, and
    `weights` (expected repeats per epoch) when every segment has them and `with_weights`."""

    def __init__(self, segments: Sequence[Segment], selections: Sequence[np.ndarray | None] | None = None, name: str = "pool",
                 with_weights: bool = True):
        selections = list(selections) if selections is not None else [None] * len(segments)
        self.name, self.segments = name, list(segments)
        picks = [np.arange(len(s.lengths)) if sel is None else np.asarray(sel, np.int64) for s, sel in zip(segments, selections)]
        labels = {g for s, p in zip(segments, picks) for g in np.asarray(s.groups, dtype=object)[np.unique(s.group_ids[p])]} if segments else set()
        self.groups: list[str | None] = sorted(g for g in labels if g is not None) + ([None] if None in labels else [])
        index = {g: i for i, g in enumerate(self.groups)}

        def cat(parts: list[np.ndarray], dtype) -> np.ndarray:
            return np.concatenate(parts).astype(dtype) if parts else np.zeros(0, dtype)

        self.segment_of = cat([np.full(len(p), k, np.int32) for k, p in enumerate(picks)], np.int32)
        self.starts = cat([s.starts[p] for s, p in zip(segments, picks)], np.int64)  # within its segment
        self.lengths = cat([s.lengths[p] for s, p in zip(segments, picks)], np.int64)
        self.group_ids = cat([np.asarray([index.get(g, -1) for g in s.groups], np.int32)[s.group_ids[p]] if len(p) else np.zeros(0, np.int32)
                              for s, p in zip(segments, picks)], np.int32)
        self.weights: np.ndarray | None = None
        if with_weights and segments and all(s.weights is not None for s in segments):
            self.weights = cat([s.weights[p] for s, p in zip(segments, picks)], np.float64)
        self.text_bytes = int(sum(int(s.text_bytes[p].sum()) for s, p in zip(segments, picks)))
        self.key = hashlib.sha256(json.dumps([[s.key, None if sel is None else hashlib.sha256(np.asarray(sel, np.int64).tobytes()).hexdigest()]
                                              for s, sel in zip(segments, selections)]).encode()).hexdigest()[:16]

    @property
    def num_docs(self) -> int:
        return len(self.lengths)

    @property
    def num_tokens(self) -> int:
        return int(self.lengths.sum())

    def read(self, doc: int, offset: int, count: int) -> np.ndarray:
        """`count` tokens of document `doc` from `offset` (a view of the memory map)."""
        start = int(self.starts[doc]) + offset
        return self.segments[int(self.segment_of[doc])].tokens[start : start + count]

    def document(self, doc: int) -> np.ndarray:
        return self.read(doc, 0, int(self.lengths[doc]))

    @classmethod
    def build(cls, folder: Path, key: str, docs: pa.Table, tokenizer, name: str | None = None) -> TokenPool:
        """A one-segment pool of an in-memory table (`text`, `__group`, optional `__weight`),
        tokenized into `folder` unless a segment with `key` is there."""
        weight = WEIGHT_COLUMN if WEIGHT_COLUMN in docs.column_names else None
        segment = Segment.write(folder, key, docs.to_batches(BATCH_ROWS), tokenizer, group_column=GROUP_COLUMN,
                                weight_column=weight, source=name)
        return cls([segment], name=name or str(folder))

    @classmethod
    def open(cls, folder: Path, name: str | None = None) -> TokenPool:
        return cls([Segment(folder)], name=name or str(folder))


# ----------------------------------------------------------------------------- packed stream


class PackedStream:
    """Sequence `i` = tokens [i*L, (i+1)*L) of a deterministic, endless document stream.

    Document order: with `doc_weights` (the pool's per-document weights, expected repeats per
    epoch) each epoch holds document d floor(w_d) times plus once more when a seeded draw falls
    below the fraction, in a seeded permutation, so token shares over an epoch follow the
    weights; with `weights` (group -> target token share) each slot draws a group with
    probability proportional to weight / mean document length, then takes that group's next
    document in its seeded per-epoch permutation; without either, whole-pool seeded per-epoch
    permutations (or file order when `shuffle` is false, e.g. for evaluation).
    """

    BLOCK = 4096  # document draws per generation block (prefix stability)

    def __init__(self, pool: TokenPool, seq_len: int, seed: int, weights: dict[str, float] | None = None, shuffle: bool = True,
                 doc_weights: bool = False):
        if pool.num_docs == 0 or pool.num_tokens < 2:
            raise ValueError(f"no training text in {pool.name}")
        if doc_weights and (pool.weights is None or float(pool.weights.sum()) <= 0):
            raise ValueError(f"{pool.name}: per-document weights requested but the pool has none above 0")
        self.pool, self.seq_len, self.seed, self.shuffle = pool, seq_len, seed, shuffle
        self.doc_weights = doc_weights
        self.group_probs = self._group_probs(weights) if weights else None
        self._order: list[np.ndarray] = []  # generated blocks of document ids
        self._cum = np.zeros(0, np.int64)  # cumulative tokens at the end of each stream document
        self._group_cursor: dict[int, int] = {}
        self._epoch_cursor = 0

    def _group_probs(self, weights: dict[str, float]) -> np.ndarray:
        probs = np.zeros(len(self.pool.groups))
        for gi, name in enumerate(self.pool.groups):
            members = self.pool.group_ids == gi
            w = float(weights.get(name, 0.0)) if name is not None else 0.0
            if w > 0 and members.any():
                probs[gi] = w / self.pool.lengths[members].mean()
        if probs.sum() <= 0:
            raise ValueError("mixture weights select no documents of the pool (no domain in common)")
        return probs / probs.sum()

    def _members(self, gi: int, epoch: int) -> np.ndarray:
        ids = np.flatnonzero(self.pool.group_ids == gi)
        return np.random.default_rng([self.seed, 1, gi, epoch]).permutation(ids)

    def _weighted_epoch(self, epoch: int) -> np.ndarray:
        w = self.pool.weights
        whole = np.floor(w)
        extra = np.random.default_rng([self.seed, 3, epoch]).random(len(w)) < (w - whole)
        ids = np.repeat(np.arange(len(w), dtype=np.int64), (whole + extra).astype(np.int64))
        return np.random.default_rng([self.seed, 4, epoch]).permutation(ids)

    def _next_block(self) -> np.ndarray:
        b = len(self._order)
        if self.doc_weights:
            while not len(block := self._weighted_epoch(self._epoch_cursor)):  # all-fractional weights can draw nothing
                self._epoch_cursor += 1
            self._epoch_cursor += 1
            return block
        if self.group_probs is None:
            n = self.pool.num_docs
            if not self.shuffle:
                return np.arange(n, dtype=np.int64)
            return np.random.default_rng([self.seed, 0, b]).permutation(n).astype(np.int64)
        draws = np.random.default_rng([self.seed, 2, b]).choice(len(self.group_probs), size=self.BLOCK, p=self.group_probs)
        block = np.empty(self.BLOCK, dtype=np.int64)
        for gi in np.unique(draws):
            slots = np.flatnonzero(draws == gi)
            size = int((self.pool.group_ids == gi).sum())
            cursor = self._group_cursor.get(int(gi), 0)
            picked = []
            need = len(slots)
            while need:
                epoch, off = divmod(cursor, size)
                take = min(need, size - off)
                picked.append(self._members(int(gi), epoch)[off : off + take])
                cursor += take
                need -= take
            self._group_cursor[int(gi)] = cursor
            block[slots] = np.concatenate(picked)
        return block

    def _ensure(self, n_tokens: int) -> None:
        while len(self._cum) == 0 or self._cum[-1] < n_tokens:
            block = self._next_block()
            self._order.append(block)
            base = self._cum[-1] if len(self._cum) else 0
            self._cum = np.concatenate([self._cum, base + np.cumsum(self.pool.lengths[block])])

    def doc_tokens(self, n_tokens: int) -> np.ndarray:
        """Tokens each pool document contributes to the first `n_tokens` of the stream (its
        realised mixture over a budget)."""
        self._ensure(n_tokens)
        order = np.concatenate(self._order)
        before = np.concatenate([[0], self._cum[:-1]])
        take = np.clip(n_tokens - before, 0, self.pool.lengths[order])
        return np.bincount(order, weights=take, minlength=self.pool.num_docs)

    def sequence(self, i: int) -> np.ndarray:
        lo, hi = i * self.seq_len, (i + 1) * self.seq_len
        self._ensure(hi)
        order = np.concatenate(self._order) if len(self._order) > 1 else self._order[0]
        if len(self._order) > 1:  # keep one flat array so later lookups stay O(log n)
            self._order = [order]
        out = np.empty(self.seq_len, dtype=np.int64)
        j = int(np.searchsorted(self._cum, lo, side="right"))
        pos = lo
        while pos < hi:
            doc = int(order[j])
            doc_start_in_stream = self._cum[j] - self.pool.lengths[doc]
            off = int(pos - doc_start_in_stream)
            take = min(hi - pos, int(self.pool.lengths[doc] - off))
            out[pos - lo : pos - lo + take] = self.pool.read(doc, off, take)
            pos += take
            j += 1
        return out

    def batch(self, first: int, count: int) -> np.ndarray:
        return np.stack([self.sequence(first + k) for k in range(count)])


# ----------------------------------------------------------------------------- step plan + loader


@dataclass(frozen=True)
class StepPlan:
    """Which stream and which sequences every (step, micro-batch, rank) reads.

    The global batch of a step is the same for any world size with equal
    world_size * micro_batch_size * grad_accum, so a run can resume on a different GPU count.
    """

    total_steps: int
    anneal_steps: int
    micro_batch_size: int
    grad_accum: int
    world_size: int

    @property
    def pretrain_steps(self) -> int:
        return self.total_steps - self.anneal_steps

    @property
    def sequences_per_step(self) -> int:
        return self.micro_batch_size * self.grad_accum * self.world_size

    def locate(self, step: int, micro: int, rank: int) -> tuple[bool, int]:
        """(is_anneal, index of the first sequence) for this micro-batch of this rank."""
        anneal = step >= self.pretrain_steps
        local_step = step - self.pretrain_steps if anneal else step
        first = (local_step * self.grad_accum + micro) * self.world_size * self.micro_batch_size + rank * self.micro_batch_size
        return anneal, first


class BatchLoader:
    """Yields (step, micro, input_ids) from `start_step` on, prepared by a background thread.

    The thread keeps `prefetch` batches ready (pinned when feeding a GPU), so the model never
    waits on data; order is fixed by the plan, not by thread timing.
    """

    def __init__(
        self,
        plan: StepPlan,
        main: PackedStream,
        anneal: PackedStream | None,
        start_step: int,
        rank: int = 0,
        prefetch: int = 4,
        pin_memory: bool = False,
    ):
        if plan.anneal_steps and anneal is None:
            raise ValueError("plan has annealing steps but no annealing stream")
        self.plan, self.main, self.anneal, self.rank = plan, main, anneal, rank
        self.start_step, self.pin = start_step, pin_memory
        self._queue: queue.Queue = queue.Queue(maxsize=prefetch)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._produce, name="curate-train-loader", daemon=True)
        self._thread.start()

    def _put(self, item) -> bool:
        """Block until there is room or the loader is closed (False: stop producing)."""
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _produce(self) -> None:
        try:
            for step in range(self.start_step, self.plan.total_steps):
                for micro in range(self.plan.grad_accum):
                    is_anneal, first = self.plan.locate(step, micro, self.rank)
                    stream = self.anneal if is_anneal else self.main
                    batch = torch.from_numpy(stream.batch(first, self.plan.micro_batch_size))
                    if self.pin:
                        batch = batch.pin_memory()
                    if not self._put((step, micro, batch)):
                        return
            self._put(None)
        except BaseException as err:  # surface loader failures in the training thread
            self._put(err)

    def __iter__(self) -> Iterator[tuple[int, int, torch.Tensor]]:
        while True:
            item = self._queue.get()
            if item is None:
                return
            if isinstance(item, BaseException):
                raise item
            yield item

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
